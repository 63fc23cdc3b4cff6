"""
A first network: 8×8 digits, with its learning curves
=====================================================

The network of the tutorials — sigmoid units, squared error, plain SGD — on
scikit-learn's bundled 8×8 digits, the same data and split that the ``bpfast``
command trains on when it is given no arguments (nothing is downloaded).
"""

# %%
# The data: 1,797 images of 8×8 pixels with intensities 0–16, scaled to
# [0, 1]; a fixed stratified quarter is held out for testing.
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import bpfast

digits = load_digits()
X = digits.data / 16.0
X_train, X_test, y_train, y_test = train_test_split(
    X, digits.target, test_size=0.25, random_state=0, stratify=digits.target)
print(X_train.shape, X_test.shape)

# %%
# A 64-32-10 network: 64 inputs (one per pixel), 32 hidden sigmoid units and
# 10 sigmoid outputs, one per digit. Integer labels are one-hot encoded
# against the 10 outputs.
net = bpfast.MLP([64, 32, 10], activation="sigmoid", output="sigmoid", loss="mse", seed=0)
print(net, net.n_params, "parameters")

# %%
# Thirty epochs of minibatch SGD (batch 10, learning rate 3, shuffled with
# seed 0 as the command line does), scored on the
# held-out digits after every epoch. ``fit`` returns a History: one dict per
# epoch.
hist = net.fit(X_train, y_train, epochs=30, lr=3.0, batch_size=10, seed=0,
               validation_data=(X_test, y_test), progress=False)
print(hist.history[-1])
print(net.evaluate(X_test, y_test))

# %%
# The learning curves, drawn by :func:`bpfast.plot.learning_curves` (which
# writes a file: the suffix names the format) and shown here as written.
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

from bpfast import plot

path = plot.learning_curves(hist, Path(tempfile.mkdtemp()) / "curves.png", val_label="test")
image = plt.imread(path)
fig, ax = plt.subplots(figsize=(image.shape[1] / 100, image.shape[0] / 100), dpi=100)
ax.imshow(image)
ax.set_axis_off()
fig.subplots_adjust(0, 0, 1, 1)

# %%
# The trained network classifies new images with ``predict``:
print("predicted:", net.predict(X_test[:10]))
print("true:     ", y_test[:10])
