"""load() fuzzed, and saves killed half-way.

Whatever the bytes of a file, ``bpfast.load`` returns a network or raises
``bpfast.ModelFormatError`` -- never another exception, a crash or a hang, and
never a network that differs from what was saved without saying so:

* every truncation of a real saved model;
* every single-bit flip of it (a zip's CRCs and the format's checks catch
  the flips that matter; the others must load the very same network);
* random bytes, random edits of a real file, and zip files assembled from
  random members: real ones, random .npy arrays of any dtype and shape,
  pickles (whose payload would leave a marker file if it were ever run),
  headers that lie about their shape, mutated JSON metadata.

A saved model survives a process that dies while saving a newer one: killed
at random moments (SIGKILL), killed exactly when the temporary file reaches a
given size (SIGXFSZ), or told the disk is full (EFBIG).  The file then loads
as the old model or, once the rename happened, the new one.
"""

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

import bpfast

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from conftest import HYPOTHESIS_PROFILE  # noqa: E402

PROFILE = settings.get_profile(HYPOTHESIS_PROFILE)   # registered in conftest.py

def tiny_network(dtype="float64"):
    """A small trained network: a model file of about a kilobyte."""
    net = bpfast.MLP([2, 3, 2], activation="tanh", output="softmax", loss="cross_entropy",
                     dtype=dtype, seed=0)
    net.fit(np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]), [0, 1, 1], epochs=3, lr=0.5,
            progress=False)
    return net


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """{dtype: (network, bytes of its model file)}."""
    folder = tmp_path_factory.mktemp("model")
    out = {}
    for dtype in ("float32", "float64"):
        net = tiny_network(dtype)
        net.save(folder / dtype)
        out[dtype] = (net, (folder / dtype).read_bytes())
    return out


def same_network(a, b):
    return (a.layers == b.layers and a.dtype == b.dtype
            and (a.activation, a.output, a.loss_name) == (b.activation, b.output, b.loss_name)
            and all(np.array_equal(x, y) for x, y in zip(a.weights + a.biases,
                                                         b.weights + b.biases)))


def load_bytes(path, data):
    """Write `data` to `path` and load it: the network, or the ModelFormatError raised.

    Any other exception propagates and fails the calling test.
    """
    path.write_bytes(data)
    try:
        return bpfast.load(path)
    except bpfast.ModelFormatError as exc:
        assert str(exc)
        return exc


def assert_sound(net):
    """A loaded network is usable: consistent shapes, finite parameters."""
    sizes = net.layers
    assert len(sizes) >= 2 and all(n >= 1 for n in sizes)
    for l, (W, b) in enumerate(zip(net.weights, net.biases)):
        assert W.shape == (sizes[l + 1], sizes[l]) and b.shape == (sizes[l + 1],)
        assert np.all(np.isfinite(W)) and np.all(np.isfinite(b))
    assert net.forward(np.zeros(sizes[0])).shape == (sizes[-1],)


# ---------------------------------------------------------------- a real file, damaged

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_truncation_is_a_format_error(saved, dtype, tmp_path):
    net, data = saved[dtype]
    path = tmp_path / "truncated.npz"
    for size in range(len(data)):
        outcome = load_bytes(path, data[:size])
        assert isinstance(outcome, bpfast.ModelFormatError), f"truncated to {size} bytes"
    assert same_network(load_bytes(path, data), net)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bit_flips_at_every_byte_are_caught_or_harmless(saved, dtype, tmp_path):
    """Every byte of the file, each with a bit drawn by a seeded generator."""
    net, data = saved[dtype]
    path = tmp_path / "flipped.npz"
    bits = np.random.default_rng(7).integers(0, 8, size=len(data))
    caught = harmless = 0
    for offset, bit in enumerate(bits):
        flipped = bytearray(data)
        flipped[offset] ^= 1 << int(bit)
        outcome = load_bytes(path, bytes(flipped))
        if isinstance(outcome, bpfast.ModelFormatError):
            caught += 1
        else:
            assert same_network(outcome, net), f"bit {bit} of byte {offset} changed the " \
                                               f"network silently"
            harmless += 1
    # Flips in the data and metadata are all caught (CRC-32 of every member);
    # the harmless ones sit in zip fields load does not need.
    assert caught > len(data) // 2, (caught, harmless)


@settings(PROFILE, max_examples=PROFILE.max_examples * 5)
@given(data=st.binary(max_size=4096),
       prefix=st.sampled_from([b"", b"PK\x03\x04", b"PK\x05\x06", b"PK\x01\x02",
                               b"\x93NUMPY\x01\x00", b"\x80\x04"]))
def test_random_bytes_are_a_format_error(data, prefix, tmp_path_factory):
    path = tmp_path_factory.mktemp("random") / "random.npz"
    outcome = load_bytes(path, prefix + data)
    assert isinstance(outcome, bpfast.ModelFormatError)


EDIT = st.one_of(
    st.tuples(st.just("overwrite"), st.integers(0, 2**16), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("insert"), st.integers(0, 2**16), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("delete"), st.integers(0, 2**16), st.integers(1, 64)),
    st.tuples(st.just("duplicate"), st.integers(0, 2**16), st.integers(1, 256)),
)


def apply_edit(data, edit):
    kind, where, what = edit
    where %= len(data) + 1
    if kind == "overwrite":
        return data[:where] + what + data[where + len(what):]
    if kind == "insert":
        return data[:where] + what + data[where:]
    if kind == "delete":
        return data[:where] + data[where + what:]
    return data[:where] + data[where:where + what] + data[where:]


@settings(PROFILE, max_examples=PROFILE.max_examples * 5)
@given(dtype=st.sampled_from(["float32", "float64"]), edits=st.lists(EDIT, min_size=1,
                                                                       max_size=4))
def test_random_edits_of_a_real_file_are_caught_or_harmless(saved, dtype, edits,
                                                            tmp_path_factory):
    net, data = saved[dtype]
    for edit in edits:
        data = apply_edit(data, edit)
    outcome = load_bytes(tmp_path_factory.mktemp("edit") / "edited.npz", data)
    if not isinstance(outcome, bpfast.ModelFormatError):
        assert_sound(outcome)
        assert same_network(outcome, net)


# ---------------------------------------------------------------- zip files of random members

class PickleBomb:
    """Unpickling this creates the file named by `marker`."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def npy_bytes(array, allow_pickle=False):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=allow_pickle)
    return buf.getvalue()


def npy_header_only(shape, descr="<f8", payload=b"\0" * 16):
    """An .npy member whose header claims `shape` whatever data follows."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue() + payload


JSON_VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
              st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8)),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.text(max_size=6), children, max_size=3)),
    max_leaves=10)


@st.composite
def metas(draw, real):
    """The real metadata, mutated, encoded as load might find it."""
    meta = dict(real)
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["set", "delete", "add", "layers", "version"]))
        key = draw(st.sampled_from(sorted(meta) or ["format"]))
        if action == "set":
            meta[key] = draw(JSON_VALUE)
        elif action == "delete":
            meta.pop(key, None)
        elif action == "add":
            meta[draw(st.text(max_size=8))] = draw(JSON_VALUE)
        elif action == "layers":
            meta["layers"] = draw(st.lists(st.one_of(st.integers(-2, 6),
                                                     st.sampled_from([2**24, 2**24 + 1, 2**40])),
                                           max_size=4))
        else:
            meta["format_version"] = draw(st.sampled_from([0, 2, 1.0, "1", True, None]))
    text = json.dumps(meta).encode("utf-8")
    encoding = draw(st.sampled_from(["bytes", "uint8", "unicode", "int", "raw"]))
    if encoding == "bytes":
        return npy_bytes(np.array(text))
    if encoding == "uint8":
        return npy_bytes(np.frombuffer(text, dtype=np.uint8))
    if encoding == "unicode":
        return npy_bytes(np.array(text.decode("utf-8")))
    if encoding == "int":
        return npy_bytes(np.arange(3))
    return text


@st.composite
def member_contents(draw, marker):
    """Bytes for one zip member: random, a random array, a pickle, a lying header."""
    kind = draw(st.sampled_from(["random", "array", "pickle", "header"]))
    if kind == "random":
        return draw(st.binary(max_size=256))
    if kind == "array":
        dtype = draw(st.sampled_from(["<f8", ">f8", "<f4", "<f2", "<i8", "|b1", "<c16",
                                      "|S3", "<U2", "<M8[s]", [("a", "<f8")]]))
        shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
        array = np.zeros(shape, dtype=dtype)
        if array.dtype.kind == "f" and array.size:
            with np.errstate(over="ignore"):        # 1e300 is inf in float16/float32
                array.reshape(-1)[0] = draw(st.sampled_from([np.nan, np.inf, 1e300, 0.5]))
        if draw(st.booleans()):
            array = np.asfortranarray(array)
        return npy_bytes(array)
    if kind == "pickle":
        array = np.empty(draw(st.integers(1, 3)), dtype=object)
        array[:] = [PickleBomb(marker)] * array.size
        return npy_bytes(array, allow_pickle=True)
    shape = tuple(draw(st.lists(st.sampled_from([0, 1, 2, 3, 2**20, 2**31, 2**62]),
                                max_size=3)))
    descr = draw(st.sampled_from(["<f8", "<f4", "|O", "<i8"]))
    return npy_header_only(shape, descr, draw(st.binary(max_size=64)))


REAL_NAMES = ["meta.npy", "W0.npy", "b0.npy", "W1.npy", "b1.npy"]
OTHER_NAMES = ["W2.npy", "b2.npy", "meta", "W0", "b1", "extra.npy", "W0.npy/", "dir/W0.npy",
               "../W0.npy", "/W0.npy", "W0.NPY", "w0.npy", "meta.npy.npy", ""]


@settings(PROFILE, max_examples=PROFILE.max_examples * 5)
@given(data=st.data())
def test_zip_files_of_random_members_are_caught_or_sound(saved, data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("members")
    marker = folder / "pickle-ran"
    _, real_file = saved["float64"]
    with zipfile.ZipFile(io.BytesIO(real_file)) as zf:
        real = {name: zf.read(name) for name in zf.namelist()}
    real_meta = json.loads(np.load(io.BytesIO(real["meta.npy"])).tobytes())

    # Mostly the real members, a few of them changed, a few missing, a few extra.
    changes = st.sampled_from(["real"] * 8 + ["changed", "missing"])
    names = data.draw(st.permutations(REAL_NAMES))
    plan = {name: data.draw(changes) for name in names}
    extra = data.draw(st.lists(st.one_of(st.sampled_from(OTHER_NAMES + REAL_NAMES),
                                         st.text(max_size=10)), max_size=2))
    path = folder / "model.npz"
    compression = data.draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name in [n for n in names if plan[n] != "missing"] + extra:
            if plan.get(name) == "real":
                content = real[name]
            elif name == "meta.npy" and data.draw(st.booleans()):
                content = data.draw(metas(real_meta))
            else:
                content = data.draw(member_contents(marker))
            info = zipfile.ZipInfo(name)            # (cuts the name at a NUL)
            if info.filename in zf.namelist():
                continue            # zipfile warns about duplicates; skip them
            info.compress_type = compression
            zf.writestr(info, content)
    try:
        net = bpfast.load(path)
    except bpfast.ModelFormatError as exc:
        event(f"refused: {str(exc).split(': ', 2)[-1][:40]}")
    else:
        event("loaded")
        assert_sound(net)
    assert not marker.exists(), "load ran code from a pickle in the file"


# ---------------------------------------------------------------- saves that die half-way

# The child process: builds the old and the new network exactly as the parent
# does (same seeds), then saves as told.  PYTHONDONTWRITEBYTECODE keeps it
# from writing anything but the model.
CHILD = textwrap.dedent("""
    import os, resource, signal, sys
    import numpy as np
    import bpfast

    def network(seed, dtype):
        return bpfast.MLP([64, 128, 10], activation="relu", output="softmax",
                          loss="cross_entropy", dtype=dtype, seed=seed)

    mode, path = sys.argv[1], sys.argv[2]
    old, new = network(1, "float64"), network(2, "float32")
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if mode == "loop":                  # save new and old in turn until killed
        print("saving", flush=True)
        while True:
            new.save(path)
            old.save(path)
    limit = int(sys.argv[3])
    # Python ignores SIGXFSZ, so a write past the limit fails with EFBIG (as on a
    # full disk); with the default action the process is killed right there.
    if mode == "sigxfsz":
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    try:
        new.save(path)                  # mode "sigxfsz": killed when the file reaches limit
    except OSError as exc:
        print("OSError", exc.errno, flush=True)
        sys.exit(0)
    print("saved", flush=True)
""")


def child_networks():
    def network(seed, dtype):
        return bpfast.MLP([64, 128, 10], activation="relu", output="softmax",
                          loss="cross_entropy", dtype=dtype, seed=seed)
    return network(1, "float64"), network(2, "float32")


def start_child(*args):
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.Popen([sys.executable, "-c", CHILD, *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def old_model(tmp_path):
    """(path holding the old network, old network, new network, new file size)."""
    old, new = child_networks()
    path = tmp_path / "model.npz"
    new.save(path)
    new_size = path.stat().st_size
    old.save(path)
    return path, old, new, new_size


def loads_as_one_of(path, *nets):
    loaded = bpfast.load(path)
    matches = [k for k, net in enumerate(nets) if same_network(loaded, net)]
    assert matches, "the model file holds neither the old nor the new network"
    return matches[0]


def test_a_save_killed_at_random_moments_leaves_the_old_or_the_new_model(old_model):
    path, old, new, _ = old_model
    rng = np.random.default_rng(0)
    for _ in range(6):
        child = start_child("loop", path)
        assert child.stdout.readline().strip() == "saving", child.stderr.read()
        try:
            child.wait(rng.uniform(0.0, 0.05))                  # saves run meanwhile
        except subprocess.TimeoutExpired:
            pass
        child.kill()                                            # SIGKILL
        child.wait(60)
        child.stdout.close()
        child.stderr.close()
        loads_as_one_of(path, old, new)
    leftovers = [p.name for p in path.parent.iterdir() if p != path]
    assert all(name.startswith(".bpfast-") for name in leftovers), leftovers


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs RLIMIT_FSIZE and SIGXFSZ")
def test_a_save_killed_at_a_given_byte_leaves_the_old_model(old_model):
    """The child is killed (SIGXFSZ) the moment its temporary file would pass
    `limit` bytes: at the start, inside the headers, inside the data."""
    path, old, new, new_size = old_model
    for limit in [0, 1, 30, 100, 600, new_size // 2, new_size - 1]:
        child = start_child("sigxfsz", path, limit)
        out, err = child.communicate(timeout=120)
        assert child.returncode == -signal.SIGXFSZ, (limit, child.returncode, out, err)
        assert loads_as_one_of(path, old, new) == 0, f"killed at byte {limit}"
    child = start_child("sigxfsz", path, new_size + 4096)       # room enough: it completes
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0 and out.strip() == "saved", (out, err)
    assert loads_as_one_of(path, old, new) == 1


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs RLIMIT_FSIZE and SIGXFSZ")
def test_a_save_that_finds_the_disk_full_keeps_the_old_model_and_cleans_up(old_model):
    path, old, new, new_size = old_model
    for limit in [0, 100, new_size // 2]:
        child = start_child("efbig", path, limit)
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0 and out.startswith("OSError 27"), (limit, out, err)
        assert loads_as_one_of(path, old, new) == 0
        assert sorted(p.name for p in path.parent.iterdir()) == [path.name], \
            "the temporary file was left behind"
