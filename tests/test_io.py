"""Model files: save/load round trips, the file format, hostile files, atomic saves, pickling.

Every defective file must raise bpfast.ModelFormatError (a ValueError) and
nothing else; no file may make load execute code (the pickle bomb below
would create a marker file if it were ever unpickled).
"""

import copy
import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest

import bpfast
import bpfast.io

META_KEYS = {"format", "format_version", "bpfast_version", "layers", "activation", "output",
             "loss", "dtype"}

CONFIGS = [
    # layers, hidden activation, output, loss
    ([3, 2], "sigmoid", "sigmoid", "mse"),
    ([4, 5, 3], "sigmoid", "sigmoid", "mse"),
    ([4, 6, 5, 3], "tanh", "softmax", "cross_entropy"),
    ([4, 5, 1], "relu", "sigmoid", "cross_entropy"),
    ([4, 7, 2], "leaky_relu", "identity", "mse"),
    ([4, 3, 3, 3, 2], "identity", "tanh", "mse"),
    ([4, 5, 3], "tanh", "relu", "mse"),
]
CONFIG_IDS = ["-".join([str(len(c[0]) - 1) + "L", *c[1:]]) for c in CONFIGS]


def _trained(layers, activation, output, loss, dtype="float64", seed=0):
    """A network whose parameters are not their initial values (biases included)."""
    net = bpfast.MLP(layers, activation, output, loss, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(20, layers[0]))
    Y = rng.uniform(0.1, 0.9, size=(20, layers[-1]))
    if loss == "cross_entropy" and layers[-1] > 1:
        Y = rng.integers(0, layers[-1], size=20)
    net.fit(X, Y, epochs=2, lr=0.05, progress=False)
    return net


def _read_meta(path):
    """The `meta` member as a dict, read without bpfast."""
    with np.load(path, allow_pickle=False) as npz:
        raw = npz["meta"]
    assert raw.dtype.kind in "Su", raw.dtype
    data = raw.tobytes() if raw.dtype.kind == "S" else bytes(raw)
    return json.loads(data.decode("utf-8"))


def _members(path):
    """{name: array} of a model file, read without bpfast."""
    with np.load(path, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def _write_npz(path, members, raw=None):
    """An .npz built member by member, object arrays allowed (for hostile files)."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, value in members.items():
            with zf.open(name + ".npy", "w") as f:
                np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=True)
        for name, data in (raw or {}).items():
            zf.writestr(name, data)


def _meta_array(meta):
    return np.array(json.dumps(meta).encode("utf-8"))


def _assert_same_network(a, b):
    assert a.layers == b.layers
    assert (a.activation, a.output, a.loss_name) == (b.activation, b.output, b.loss_name)
    assert a.dtype == b.dtype
    for Wa, Wb, ba, bb in zip(a.weights, b.weights, a.biases, b.biases):
        assert Wa.dtype == Wb.dtype == a.dtype
        np.testing.assert_array_equal(Wa, Wb)
        np.testing.assert_array_equal(ba, bb)


@pytest.fixture
def good_file(tmp_path):
    """A saved [4, 5, 3] network, its path and its members."""
    net = _trained([4, 5, 3], "tanh", "softmax", "cross_entropy", seed=3)
    path = tmp_path / "good.npz"
    net.save(path)
    return net, path, _members(path)


# ----------------------------------------------------------------- round trips and the format


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_round_trip_is_bit_identical(tmp_path, config, dtype):
    net = _trained(*config, dtype=dtype, seed=1)
    path = tmp_path / "net.npz"
    net.save(path)
    loaded = bpfast.load(path)
    assert isinstance(loaded, bpfast.MLP)
    _assert_same_network(net, loaded)
    X = np.random.default_rng(2).normal(size=(9, net.layers[0]))
    np.testing.assert_array_equal(loaded.forward(X), net.forward(X))
    np.testing.assert_array_equal(loaded.predict(X), net.predict(X))
    # The loaded network owns its memory and trains.
    loaded.fit(X, net.forward(X), epochs=1, lr=0.01, progress=False)
    np.testing.assert_array_equal(bpfast.load(path).forward(X), net.forward(X))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_file_holds_the_documented_members_and_metadata(tmp_path, dtype):
    net = _trained([4, 6, 5, 3], "relu", "softmax", "cross_entropy", dtype=dtype)
    path = tmp_path / "net.npz"
    net.save(path)

    with zipfile.ZipFile(path) as zf:
        names = sorted(zf.namelist())
    assert names == sorted(["meta.npy", "W0.npy", "W1.npy", "W2.npy",
                            "b0.npy", "b1.npy", "b2.npy"])

    meta = _read_meta(path)
    assert set(meta) == META_KEYS
    assert meta["format"] == "bpfast.mlp"
    assert meta["format_version"] == 1 and type(meta["format_version"]) is int
    assert meta["bpfast_version"] == bpfast.__version__
    assert meta["layers"] == [4, 6, 5, 3]
    assert meta["activation"] == "relu"
    assert meta["output"] == "softmax"
    assert meta["loss"] == "cross_entropy"
    assert meta["dtype"] == dtype

    members = _members(path)
    for l in range(3):
        assert members[f"W{l}"].dtype == np.dtype(dtype)
        assert members[f"W{l}"].shape == net.weights[l].shape
        np.testing.assert_array_equal(members[f"W{l}"], net.weights[l])
        np.testing.assert_array_equal(members[f"b{l}"], net.biases[l])


def test_meta_is_utf8_json_text(tmp_path):
    net = bpfast.MLP([2, 2], seed=0)
    path = tmp_path / "net.npz"
    net.save(path)
    with zipfile.ZipFile(path) as zf, zf.open("meta.npy") as f:
        version = np.lib.format.read_magic(f)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        _, _, dtype = read_header(f)
        body = f.read()
    assert dtype.kind in "Su" and not dtype.hasobject, dtype
    text = body.rstrip(b"\0").decode("utf-8")
    assert json.loads(text)["format"] == "bpfast.mlp"


@pytest.mark.parametrize("name", ["model.bin", "model", "model.npz", "weights.v2.data"])
def test_save_writes_exactly_the_given_path(tmp_path, name):
    net = bpfast.MLP([3, 4, 2], seed=0)
    net.save(tmp_path / name)
    assert sorted(os.listdir(tmp_path)) == [name]
    _assert_same_network(net, bpfast.load(tmp_path / name))
    # A plain str path works too, and saving again replaces the file.
    net.weights[0][...] = 0.25
    net.save(str(tmp_path / name))
    assert sorted(os.listdir(tmp_path)) == [name]
    _assert_same_network(net, bpfast.load(str(tmp_path / name)))


def test_load_of_a_missing_path_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        bpfast.load(tmp_path / "nothing.npz")
    with pytest.raises(FileNotFoundError):
        bpfast.load(str(tmp_path / "nothing"))


def test_save_into_a_missing_folder_fails_and_creates_nothing(tmp_path):
    net = bpfast.MLP([3, 2], seed=0)
    with pytest.raises(FileNotFoundError):
        net.save(tmp_path / "no" / "such" / "net.npz")
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_a_new_file_gets_the_mode_open_would_give(tmp_path, umask):
    # save() renames a temporary file into place: the mode must be that of a
    # file made by open() under the current umask, not mkstemp's 0600.
    old = os.umask(umask)
    try:
        bpfast.MLP([3, 2], seed=0).save(tmp_path / "net.npz")
        with open(tmp_path / "plain", "wb"):
            pass
    finally:
        os.umask(old)
    mode = os.stat(tmp_path / "net.npz").st_mode & 0o777
    assert mode == 0o666 & ~umask == os.stat(tmp_path / "plain").st_mode & 0o777


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_saving_over_a_file_keeps_its_mode(tmp_path):
    # As open(path, "wb") on an existing file would: its mode is kept.
    path = tmp_path / "net.npz"
    net = bpfast.MLP([3, 2], seed=0)
    net.save(path)
    os.chmod(path, 0o640)
    net.save(path)
    assert os.stat(path).st_mode & 0o777 == 0o640


# ----------------------------------------------------------------- hostile and corrupt files


def _expect_format_error(path):
    with pytest.raises(bpfast.ModelFormatError) as info:
        bpfast.load(path)
    assert isinstance(info.value, ValueError)
    return info.value


def test_model_format_error_is_a_value_error():
    assert issubclass(bpfast.ModelFormatError, ValueError)


def test_every_truncation_is_a_format_error(good_file, tmp_path):
    _, path, _ = good_file
    data = path.read_bytes()
    cut = tmp_path / "cut.npz"
    for size in range(len(data)):
        cut.write_bytes(data[:size])
        with pytest.raises(bpfast.ModelFormatError):
            bpfast.load(cut)


def _flip_every_byte(net, data, path):
    """Flip one bit of each byte of `data` in turn, written to `path`: load must raise
    ModelFormatError or give back `net` exactly.  Returns how many flips were harmless."""
    harmless = 0
    for offset in range(len(data)):
        flipped = bytearray(data)
        flipped[offset] ^= 1 << (offset % 8)
        path.write_bytes(bytes(flipped))
        try:
            loaded = bpfast.load(path)
        except bpfast.ModelFormatError:
            continue
        _assert_same_network(net, loaded)
        harmless += 1
    return harmless


def test_every_flipped_byte_is_caught_or_harmless(good_file, tmp_path):
    """A flipped bit is either detected or lies in bytes the format ignores (a timestamp)."""
    net, path, _ = good_file
    data = path.read_bytes()
    assert _flip_every_byte(net, data, tmp_path / "flipped.npz") < len(data) // 2


@pytest.mark.parametrize("content", [
    b"",
    b"hello, I am not a model",
    b"PK\x03\x04" + b"\0" * 40,
    b"PK\x05\x06" + b"\0" * 18,                       # an empty zip
    b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }",
    pickle.dumps({"W0": [1.0, 2.0]}),
])
def test_garbage_is_a_format_error(tmp_path, content):
    path = tmp_path / "garbage.npz"
    path.write_bytes(content)
    _expect_format_error(path)


@pytest.mark.parametrize("seed", range(8))
def test_random_bytes_are_a_format_error(tmp_path, seed):
    rng = np.random.default_rng(seed)
    path = tmp_path / "random.npz"
    path.write_bytes(rng.bytes(int(rng.integers(1, 4000))))
    _expect_format_error(path)


def test_a_plain_npy_file_is_a_format_error(tmp_path):
    path = tmp_path / "array.npy"
    np.save(path, np.zeros(3))
    _expect_format_error(path)


def test_a_folder_is_not_a_model(tmp_path):
    with pytest.raises((bpfast.ModelFormatError, IsADirectoryError, PermissionError)):
        bpfast.load(tmp_path)


def _variant(members, **changes):
    """A copy of the members with some replaced (value None removes one)."""
    out = dict(members)
    for name, value in changes.items():
        if value is None:
            out.pop(name)
        else:
            out[name] = value
    return out


def _with_meta(members, **fields):
    """Members whose meta has fields replaced (value ... removes the key)."""
    meta = json.loads(members["meta"].tobytes().decode("utf-8"))
    for key, value in fields.items():
        if value is ...:
            meta.pop(key)
        else:
            meta[key] = value
    return _variant(members, meta=_meta_array(meta))


MEMBER_DEFECTS = {
    "missing W1": lambda m: _variant(m, W1=None),
    "missing b0": lambda m: _variant(m, b0=None),
    "missing meta": lambda m: _variant(m, meta=None),
    "extra member": lambda m: _variant(m, W2=np.zeros((3, 3))),
    "extra unrelated member": lambda m: _variant(m, notes=np.zeros(2)),
    "W0 transposed": lambda m: _variant(m, W0=np.ascontiguousarray(m["W0"].T)),
    "W1 one row short": lambda m: _variant(m, W1=m["W1"][:-1]),
    "b0 two-dimensional": lambda m: _variant(m, b0=m["b0"][None, :]),
    "b1 scalar": lambda m: _variant(m, b1=np.float64(0.5)),
    "W0 float32": lambda m: _variant(m, W0=m["W0"].astype(np.float32)),
    "b1 int64": lambda m: _variant(m, b1=np.zeros(3, dtype=np.int64)),
    "W1 complex": lambda m: _variant(m, W1=m["W1"].astype(np.complex128)),
    "W1 big-endian": lambda m: _variant(m, W1=m["W1"].astype(">f8")),
    "W0 NaN": lambda m: _variant(m, W0=np.where(np.eye(5, 4) > 0, np.nan, m["W0"])),
    "b1 inf": lambda m: _variant(m, b1=np.array([0.0, np.inf, 0.0])),
    "b0 -inf": lambda m: _variant(m, b0=np.full(5, -np.inf)),
    "format_version 2": lambda m: _with_meta(m, format_version=2),
    "format_version '1'": lambda m: _with_meta(m, format_version="1"),
    "format_version 1.0": lambda m: _with_meta(m, format_version=1.0),
    "format_version true": lambda m: _with_meta(m, format_version=True),
    "format_version 0": lambda m: _with_meta(m, format_version=0),
    "format_version missing": lambda m: _with_meta(m, format_version=...),
    "format name": lambda m: _with_meta(m, format="bpfast.cnn"),
    "format missing": lambda m: _with_meta(m, format=...),
    "meta key missing": lambda m: _with_meta(m, loss=...),
    "meta key extra": lambda m: _with_meta(m, comment="hello"),
    "layers floats": lambda m: _with_meta(m, layers=[4.0, 5.0, 3.0]),
    "layers strings": lambda m: _with_meta(m, layers=["4", "5", "3"]),
    "layers bools": lambda m: _with_meta(m, layers=[4, True, 3]),
    "layers a string": lambda m: _with_meta(m, layers="4,5,3"),
    "layers one size": lambda m: _with_meta(m, layers=[4]),
    "layers zero": lambda m: _with_meta(m, layers=[4, 0, 3]),
    "layers negative": lambda m: _with_meta(m, layers=[4, -5, 3]),
    "layers disagree with arrays": lambda m: _with_meta(m, layers=[4, 6, 3]),
    "layers huge": lambda m: _with_meta(m, layers=[4, 10**30, 3]),
    "activation unknown": lambda m: _with_meta(m, activation="swish"),
    "activation not a string": lambda m: _with_meta(m, activation=3),
    "output unknown": lambda m: _with_meta(m, output="gelu"),
    "loss unknown": lambda m: _with_meta(m, loss="hinge"),
    "cross-entropy with identity": lambda m: _with_meta(m, output="identity"),
    "dtype float16": lambda m: _with_meta(m, dtype="float16"),
    "dtype says float32": lambda m: _with_meta(m, dtype="float32"),
    "dtype object": lambda m: _with_meta(m, dtype="O"),
    "meta not JSON": lambda m: _variant(m, meta=np.array(b"{format: bpfast.mlp")),
    "meta not UTF-8": lambda m: _variant(m, meta=np.array(b"\xff\xfe{}")),
    "meta a JSON list": lambda m: _variant(m, meta=_meta_array(["bpfast.mlp", 1])),
    "meta JSON null": lambda m: _variant(m, meta=_meta_array(None)),
    "meta floats": lambda m: _variant(m, meta=np.zeros(4)),
    "meta a 2-D byte array": lambda m: _variant(
        m, meta=np.frombuffer(m["meta"].tobytes(), np.uint8)[None, :]),
    "meta empty": lambda m: _variant(m, meta=np.array(b"")),
}


@pytest.mark.parametrize("defect", list(MEMBER_DEFECTS))
def test_defective_member_is_a_format_error(good_file, tmp_path, defect):
    _, _, members = good_file
    path = tmp_path / "defective.npz"
    _write_npz(path, MEMBER_DEFECTS[defect](members))
    _expect_format_error(path)


def test_the_member_writer_itself_produces_loadable_files(good_file, tmp_path):
    """Control for the defect tests: the unchanged members load."""
    net, _, members = good_file
    path = tmp_path / "rewritten.npz"
    _write_npz(path, members)
    _assert_same_network(net, bpfast.load(path))


def test_a_member_without_npy_suffix_is_a_format_error(good_file, tmp_path):
    _, _, members = good_file
    path = tmp_path / "defective.npz"
    _write_npz(path, _variant(members, b1=None), raw={"b1": b"\0" * 24})
    _expect_format_error(path)
    _write_npz(path, members, raw={"README.txt": b"not an array"})
    _expect_format_error(path)


def test_a_compressed_model_file_loads(good_file, tmp_path):
    """savez_compressed writes a valid .npz; load reads it (members are the same)."""
    net, _, members = good_file
    path = tmp_path / "compressed.npz"
    np.savez_compressed(path, **members)
    _assert_same_network(net, bpfast.load(path))


def test_every_flipped_byte_of_a_compressed_file_is_caught_or_harmless(good_file, tmp_path):
    """Corrupt deflate streams (zlib errors) are format errors too."""
    net, _, members = good_file
    path = tmp_path / "compressed.npz"
    np.savez_compressed(path, **members)
    _flip_every_byte(net, path.read_bytes(), path)


def _npy_header_only(shape, descr="<f8"):
    """An .npy member whose header claims `shape` but which carries 48 bytes of data."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue() + b"\0" * 48


@pytest.mark.parametrize("shape", [(2**20,), (5, 4, 1000)])
def test_a_header_claiming_more_data_than_present_is_a_format_error(good_file, tmp_path, shape):
    _, _, members = good_file
    path = tmp_path / "lying.npz"
    _write_npz(path, _variant(members, W0=None), raw={"W0.npy": _npy_header_only(shape)})
    _expect_format_error(path)


def test_a_header_claiming_petabytes_is_a_format_error(good_file, tmp_path):
    """The .npy header is checked before NumPy allocates what it claims (8 PiB here)."""
    _, _, members = good_file
    path = tmp_path / "lying.npz"
    _write_npz(path, _variant(members, W0=None), raw={"W0.npy": _npy_header_only((2**50,))})
    _expect_format_error(path)


# ----------------------------------------------------------------- the pickle bomb


class _Bomb:
    """Unpickling this object opens (creates) the marker file: code run from a file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _bomb_array(marker):
    arr = np.empty(1, dtype=object)
    arr[0] = _Bomb(marker)
    return arr


def test_the_pickle_bomb_is_live(tmp_path):
    """Control: numpy with allow_pickle=True really does run the bomb."""
    marker = tmp_path / "control_marker"
    path = tmp_path / "bomb.npz"
    _write_npz(path, {"W0": _bomb_array(marker)})
    with np.load(path, allow_pickle=True) as npz:
        npz["W0"][0].close()
    assert marker.exists()


@pytest.mark.parametrize("member", ["W0", "b1", "meta"])
def test_pickle_bomb_is_refused_and_never_runs(good_file, tmp_path, member):
    _, _, members = good_file
    marker = tmp_path / "pwned"
    path = tmp_path / "bomb.npz"
    _write_npz(path, _variant(members, **{member: _bomb_array(marker)}))
    _expect_format_error(path)
    assert not marker.exists()


def test_a_pickled_network_is_not_a_model_file(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "net.npz"
    path.write_bytes(pickle.dumps(_Bomb(marker)))
    _expect_format_error(path)
    assert not marker.exists()


def test_object_dtype_in_header_with_correct_shape_is_refused(good_file, tmp_path):
    _, _, members = good_file
    marker = tmp_path / "pwned"
    bomb = np.empty((5, 4), dtype=object)
    bomb[...] = 0.0
    bomb[0, 0] = _Bomb(marker)
    path = tmp_path / "bomb.npz"
    _write_npz(path, _variant(members, W0=bomb))
    _expect_format_error(path)
    assert not marker.exists()


# ----------------------------------------------------------------- atomic save


def _assert_only(folder, *names):
    assert sorted(os.listdir(folder)) == sorted(names), "temporary files left behind"


def test_a_save_that_fails_while_writing_keeps_the_old_file(good_file, monkeypatch):
    net, path, _ = good_file
    real_savez = np.savez

    def savez_then_fail(file, *args, **kwargs):
        real_savez(io.BytesIO(), *args, **kwargs)
        file.write(b"PK\x03\x04 half a zip")
        raise OSError(28, "No space left on device")

    changed = copy.deepcopy(net)
    changed.weights[0][...] = 7.0
    monkeypatch.setattr(bpfast.io.np, "savez", savez_then_fail)
    with pytest.raises(OSError, match="No space"):
        changed.save(path)
    monkeypatch.undo()
    _assert_only(path.parent, path.name)
    _assert_same_network(net, bpfast.load(path))


def test_a_save_interrupted_by_ctrl_c_keeps_the_old_file(good_file, monkeypatch):
    net, path, _ = good_file

    def interrupted(file, *args, **kwargs):
        file.write(b"PK\x03\x04")
        raise KeyboardInterrupt

    monkeypatch.setattr(bpfast.io.np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        bpfast.MLP([4, 5, 3], seed=99).save(path)
    monkeypatch.undo()
    _assert_only(path.parent, path.name)
    _assert_same_network(net, bpfast.load(path))


def test_a_save_whose_rename_fails_keeps_the_old_file(good_file, monkeypatch):
    net, path, _ = good_file

    def replace_fails(src, dst, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(dst))

    monkeypatch.setattr(bpfast.io.os, "replace", replace_fails)
    with pytest.raises(PermissionError):
        bpfast.MLP([4, 5, 3], seed=99).save(path)
    monkeypatch.undo()
    _assert_only(path.parent, path.name)
    _assert_same_network(net, bpfast.load(path))


def test_a_failed_first_save_leaves_nothing(tmp_path, monkeypatch):
    def replace_fails(src, dst, *args, **kwargs):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(bpfast.io.os, "replace", replace_fails)
    with pytest.raises(OSError):
        bpfast.MLP([3, 2], seed=0).save(tmp_path / "net.npz")
    monkeypatch.undo()
    _assert_only(tmp_path)


# ----------------------------------------------------------------- pickle and copy


def _fit_data(net, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(30, net.layers[0]))
    return X, rng.integers(0, net.layers[-1], size=30)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("duplicate", [
    pytest.param(lambda net: pickle.loads(pickle.dumps(net)), id="pickle"),
    pytest.param(copy.copy, id="copy"),
    pytest.param(copy.deepcopy, id="deepcopy"),
])
def test_copies_are_by_value(duplicate, dtype):
    net = bpfast.MLP([4, 6, 3], "tanh", "softmax", "cross_entropy", dtype=dtype, seed=5)
    X, y = _fit_data(net)
    net.fit(X, y, epochs=1, lr=0.1, momentum=0.9, progress=False)
    params = net._params.copy()

    twin = duplicate(net)
    assert twin is not net
    _assert_same_network(net, twin)
    np.testing.assert_array_equal(twin.forward(X), net.forward(X))
    assert not np.shares_memory(twin._params, net._params)
    assert len(twin.history.history) == len(net.history.history) == 1

    # Mutating or training the copy leaves the original alone.
    twin.weights[0][...] = 0.0
    twin.biases[1][...] = 1.0
    np.testing.assert_array_equal(net._params, params)
    twin.fit(X, y, epochs=1, lr=0.1, progress=False)
    np.testing.assert_array_equal(net._params, params)


@pytest.mark.parametrize("duplicate", [lambda net: pickle.loads(pickle.dumps(net)),
                                       copy.deepcopy], ids=["pickle", "deepcopy"])
def test_a_copy_continues_training_exactly_like_the_original(duplicate):
    """The copy carries the momentum buffer and the shuffling generator's state."""
    net = bpfast.MLP([4, 6, 3], "relu", "softmax", "cross_entropy", seed=8)
    X, y = _fit_data(net, seed=1)
    net.fit(X, y, epochs=1, lr=0.05, momentum=0.9, progress=False)
    twin = duplicate(net)
    net.fit(X, y, epochs=2, lr=0.05, momentum=0.9, progress=False)
    twin.fit(X, y, epochs=2, lr=0.05, momentum=0.9, progress=False)
    np.testing.assert_array_equal(twin._params, net._params)
