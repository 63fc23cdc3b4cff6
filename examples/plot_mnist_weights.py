"""
MNIST: one epoch of 784-30-10, and what its hidden units look for
=================================================================

The tutorials' MNIST network — 784 inputs, 30 sigmoid hidden units, 10 sigmoid
outputs, squared error, SGD with batch 10 and learning rate 3 — trained for
one epoch on the first 10,000 training images, then tested on the 10,000 test
images. Each hidden unit's 784 incoming weights are drawn as a 28×28 image by
:func:`bpfast.plot.weight_grid`.

MNIST is read from the four IDX files in ``$BPFAST_MNIST_DIR`` or
``../shared/data/mnist`` beside the repository. Without them the example
falls back to scikit-learn's 8×8 digits (64-30-10) and says so.
"""

# %%
import os
import tempfile
from pathlib import Path

import bpfast


def mnist_folder():
    """The first folder that holds MNIST's four IDX files, or None."""
    here = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
    for folder in (os.environ.get("BPFAST_MNIST_DIR"), here.parent.parent / "shared/data/mnist"):
        if folder and any(Path(folder).glob("train-images*")):
            return Path(folder)
    return None


folder = mnist_folder()
if folder is not None:
    X_train, y_train, X_test, y_test = bpfast.datasets.load_mnist(folder)
    X_train, y_train = X_train[:10_000], y_train[:10_000]
    layers, name = [784, 30, 10], "MNIST"
else:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    print("MNIST was not found: this build uses scikit-learn's 8x8 digits instead.")
    digits = load_digits()
    X_train, X_test, y_train, y_test = train_test_split(
        digits.data / 16.0, digits.target, test_size=0.25, random_state=0,
        stratify=digits.target)
    layers, name = [64, 30, 10], "8x8 digits"
print(f"{name}: {len(X_train)} training and {len(X_test)} test images of {layers[0]} pixels")

# %%
# One epoch of SGD.
net = bpfast.MLP(layers, activation="sigmoid", output="sigmoid", loss="mse", seed=0)
hist = net.fit(X_train, y_train, epochs=1, lr=3.0, batch_size=10,
               validation_data=(X_test, y_test), progress=False)
row = hist.history[-1]
print(f"test accuracy {row['val_accuracy']:.4f} after one epoch "
      f"({row['seconds']:.2f} s, {row['samples_per_s']:,.0f} samples/s)")

# %%
# The first layer's weights, one tile per hidden unit, on one colour scale
# (red positive, blue negative): the strokes each unit has begun to respond to.
import matplotlib.pyplot as plt

from bpfast import plot

path = plot.weight_grid(net, Path(tempfile.mkdtemp()) / "weights.png")
image = plt.imread(path)
fig, ax = plt.subplots(figsize=(image.shape[1] / 100, image.shape[0] / 100), dpi=100)
ax.imshow(image)
ax.set_axis_off()
fig.subplots_adjust(0, 0, 1, 1)
