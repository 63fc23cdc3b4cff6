"""Sparse inputs (docs/design.md, "Sparse inputs"): SciPy sparse X equals X.toarray().

Every data-taking method, every SciPy format (matrix and array classes),
float32/float64/int data, int32/int64 indices, batch sizes 1, 7, 32 and the
whole set, the optimizers (SGD plain and with momentum, Adam, SparseAdam --
the last also against torch's EmbeddingBag + SparseAdam); duplicates and
unsorted indices; invalid structures rejected before anything changes; CSR
in the network's dtype reaches the kernel uncopied; an X whose dense form
would be terabytes trains in little memory; scikit-learn pipelines with
sparse encoders; river's dict features; SciPy is not imported by
``import bpfast``.
"""

import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

sp = pytest.importorskip("scipy.sparse")

import bpfast  # noqa: E402
from bpfast import _validate, optim  # noqa: E402

N0, HIDDEN, N_OUT = 40, 8, 3
TOL = {"float64": 1e-12, "float32": 1e-5}


def _net(dtype="float64", layers=(N0, HIDDEN, N_OUT), seed=0, **kw):
    kw = {"activation": "tanh", "output": "softmax", "loss": "cross_entropy", **kw}
    return bpfast.MLP(list(layers), dtype=dtype, seed=seed, **kw)


def _data(n=45, n0=N0, density=0.15, seed=1, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = sp.random(n, n0, density=density, format="csr", random_state=seed,
                  data_rvs=lambda k: rng.uniform(-1, 1, k)).astype(dtype)
    y = rng.integers(0, N_OUT, n)
    return X, y


def _params(net):
    return [np.array(p) for p in (*net.weights, *net.biases)]


def _assert_close(a, b, dtype):
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, rtol=TOL[dtype], atol=TOL[dtype] * 1e-3)


def _bit_identical(a, b):
    return all(np.array_equal(u, v) for u, v in zip(a, b))


FORMATS = {
    "csr_matrix": sp.csr_matrix, "csc_matrix": sp.csc_matrix, "coo_matrix": sp.coo_matrix,
    "lil_matrix": sp.lil_matrix, "csr_array": sp.csr_array, "csc_array": sp.csc_array,
    "coo_array": sp.coo_array,
}


# ---------------------------------------------------------------- every method

@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_method_equals_the_dense_result(fmt, dtype):
    X, y = _data()
    Xs, Xd = FORMATS[fmt](X), X.toarray()
    a, b = _net(dtype), _net(dtype)
    _assert_close([a.forward(Xs)], [b.forward(Xd)], dtype)
    assert np.array_equal(a.predict(Xs), b.predict(Xd))
    np.testing.assert_allclose(a.loss(Xs, y), b.loss(Xd, y), rtol=TOL[dtype])
    ea, eb = a.evaluate(Xs, y), b.evaluate(Xd, y)
    assert ea.keys() == eb.keys() and ea["accuracy"] == eb["accuracy"]
    ga, gb = a.gradients(Xs, y), b.gradients(Xd, y)
    _assert_close(ga[0] + ga[1], gb[0] + gb[1], dtype)
    np.testing.assert_allclose(a.sgd_step(Xs, y, 0.1), b.sgd_step(Xd, y, 0.1), rtol=TOL[dtype])
    oa, ob = optim.Adam(lr=0.01), optim.Adam(lr=0.01)
    a.step(Xs, y, oa)
    b.step(Xd, y, ob)
    ha = a.fit(Xs, y, epochs=2, lr=0.05, batch_size=7, seed=3, progress=False,
               validation_data=(Xs, y))
    hb = b.fit(Xd, y, epochs=2, lr=0.05, batch_size=7, seed=3, progress=False,
               validation_data=(Xd, y))
    _assert_close(_params(a), _params(b), dtype)
    for ra, rb in zip(ha.history, hb.history):
        np.testing.assert_allclose(ra["val_loss"], rb["val_loss"], rtol=TOL[dtype])
        assert ra["accuracy"] == rb["accuracy"]
    ta, tb = a.trace(Xs[[4]] if fmt != "coo_matrix" else FORMATS[fmt](X[[4]]), y[4]), \
        b.trace(Xd[4], y[4])
    np.testing.assert_allclose(ta.loss, tb.loss, rtol=TOL[dtype])
    _assert_close(ta.grad_w + ta.a, tb.grad_w + tb.a, dtype)


def test_gradcheck_takes_sparse_inputs():
    X, y = _data(n=6)
    net = _net()
    assert bpfast.gradcheck(net, X, y) == pytest.approx(bpfast.gradcheck(net, X.toarray(), y),
                                                         rel=1e-6, abs=1e-12)
    assert bpfast.gradcheck(net, X, y) < 1e-6


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("batch_size", [1, 7, 32, 45])
@pytest.mark.parametrize("opt", ["plain", "momentum", "adam", "sparse_adam", "sgd_wd"])
def test_fit_equals_dense_at_every_batch_size_and_optimizer(opt, batch_size, dtype):
    X, y = _data()
    make = {"plain": lambda: None,
            "momentum": lambda: optim.SGD(lr=0.05, momentum=0.9, nesterov=True),
            "adam": lambda: optim.Adam(lr=0.01),
            "sparse_adam": lambda: optim.SparseAdam(lr=0.01),
            "sgd_wd": lambda: optim.SGD(lr=0.05, weight_decay=0.01)}[opt]
    results = []
    for X_in in (X, X.toarray()):
        net, o = _net(dtype, activation="relu"), make()
        kw = dict(lr=0.05) if o is None else dict(optimizer=o)
        net.fit(X_in, y, epochs=3, batch_size=batch_size, seed=5, progress=False, **kw)
        results.append(_params(net))
    _assert_close(results[0], results[1], dtype)


@pytest.mark.parametrize("n_threads", [2, 3])
@pytest.mark.parametrize("opt", ["plain", "sparse_adam", "adam"])
def test_threads_give_the_dense_result(opt, n_threads):
    X, y = _data()
    results = []
    for X_in in (X, X.toarray()):
        net = _net()
        o = {"plain": None, "sparse_adam": optim.SparseAdam(lr=0.01),
             "adam": optim.Adam(lr=0.01)}[opt]
        kw = dict(lr=0.05) if o is None else dict(optimizer=o)
        net.fit(X_in, y, epochs=2, batch_size=16, seed=5, progress=False,
                n_threads=n_threads, **kw)
        results.append(_params(net))
    _assert_close(results[0], results[1], "float64")


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("data_dtype", [np.float32, np.float64, np.int64, np.bool_])
def test_data_and_index_dtypes(data_dtype, index_dtype):
    X, y = _data()
    X = sp.csr_matrix(X.toarray().round(0).astype(data_dtype))
    X.indices, X.indptr = X.indices.astype(index_dtype), X.indptr.astype(index_dtype)
    for dtype in ("float64", "float32"):
        a, b = _net(dtype), _net(dtype)
        a.fit(X, y, epochs=2, batch_size=4, seed=1, progress=False)
        b.fit(X.toarray(), y, epochs=2, batch_size=4, seed=1, progress=False)
        _assert_close(_params(a), _params(b), dtype)


def test_duplicates_are_summed_and_unsorted_indices_work():
    rng = np.random.default_rng(4)
    n, per_row = 20, 12
    indices = rng.integers(0, 6, n * per_row).astype(np.int32)   # many duplicates, unsorted
    data = rng.uniform(-1, 1, n * per_row)
    indptr = np.arange(0, n * per_row + 1, per_row, dtype=np.int32)
    X = sp.csr_matrix((data, indices, indptr), shape=(n, N0))
    assert not X.has_sorted_indices and not X.has_canonical_format
    dense = X.toarray()                                            # SciPy sums duplicates
    y = rng.integers(0, N_OUT, n)
    for batch_size in (1, 5):
        for make in (lambda: None, lambda: optim.SparseAdam(lr=0.01)):
            a, b = _net(), _net()
            oa, ob = make(), make()
            kw_a = dict(lr=0.05) if oa is None else dict(optimizer=oa)
            kw_b = dict(lr=0.05) if ob is None else dict(optimizer=ob)
            a.fit(X, y, epochs=2, batch_size=batch_size, seed=2, progress=False, **kw_a)
            b.fit(dense, y, epochs=2, batch_size=batch_size, seed=2, progress=False, **kw_b)
            _assert_close(_params(a), _params(b), "float64")
            _assert_close([a.forward(X)], [b.forward(dense)], "float64")
    assert np.array_equal(X.indices, indices), "the input was written to"


def test_explicit_zeros_are_zeros():
    X, y = _data()
    X = X.copy()
    X.data[::3] = 0.0                      # stored, but zero
    for make in (lambda: None, lambda: optim.SparseAdam(lr=0.01)):
        a, b = _net(), _net()
        oa, ob = make(), make()
        ka = dict(lr=0.05) if oa is None else dict(optimizer=oa)
        kb = dict(lr=0.05) if ob is None else dict(optimizer=ob)
        a.fit(X, y, epochs=2, batch_size=8, seed=2, progress=False, **ka)
        b.fit(X.toarray(), y, epochs=2, batch_size=8, seed=2, progress=False, **kb)
        _assert_close(_params(a), _params(b), "float64")


def test_one_sparse_row_is_one_sample_with_a_batch_output():
    X, y = _data()
    row = X[[3]]
    a, b = _net(), _net()
    out = a.forward(row)
    assert out.shape == (1, N_OUT)                    # a (1, n0) sparse row: the (1, nL) batch
    np.testing.assert_allclose(out[0], b.forward(X.toarray()[3]), rtol=1e-12)
    assert a.predict(row).shape == (1,)
    for target in (int(y[3]), np.eye(N_OUT)[y[3]], [int(y[3])]):   # one-sample or batch targets
        np.testing.assert_allclose(a.loss(row, target), b.loss(X.toarray()[3], int(y[3])),
                                   rtol=1e-12)
    np.testing.assert_allclose(a.sgd_step(row, int(y[3]), 0.1),
                               b.sgd_step(X.toarray()[3], int(y[3]), 0.1), rtol=1e-12)
    _assert_close(_params(a), _params(b), "float64")


def test_empty_rows_and_no_entries_at_all():
    X = sp.csr_matrix((5, N0))
    y = np.arange(5) % N_OUT
    a, b = _net(), _net()
    a.fit(X, y, epochs=2, batch_size=2, progress=False)
    b.fit(np.zeros((5, N0)), y, epochs=2, batch_size=2, progress=False)
    _assert_close(_params(a), _params(b), "float64")


# ---------------------------------------------------------------- SparseAdam against torch

def test_sparse_adam_matches_torch_embeddingbag():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    X, y = _data(n=30, density=0.2)
    net = _net(activation="relu")
    W0, W1 = [np.array(W) for W in net.weights]
    b0, b1 = [np.array(b) for b in net.biases]
    torch.manual_seed(0)
    emb = nn.EmbeddingBag(N0, HIDDEN, mode="sum", sparse=True).double()
    bias0 = nn.Parameter(torch.tensor(b0))
    out = nn.Linear(HIDDEN, N_OUT).double()
    with torch.no_grad():
        emb.weight.copy_(torch.tensor(W0.T))
        out.weight.copy_(torch.tensor(W1))
        out.bias.copy_(torch.tensor(b1))
    lr, betas, eps = 0.02, (0.8, 0.95), 1e-7
    sparse_opt = torch.optim.SparseAdam([emb.weight], lr=lr, betas=betas, eps=eps)
    dense_opt = torch.optim.Adam([bias0, out.weight, out.bias], lr=lr, betas=betas, eps=eps)
    opt = optim.SparseAdam(lr=lr, betas=betas, eps=eps)
    batch = 7
    for _epoch in range(3):
        for start in range(0, X.shape[0], batch):
            rows = X[start:start + batch]
            ind = torch.tensor(rows.indices, dtype=torch.int64)
            off = torch.tensor(rows.indptr[:-1], dtype=torch.int64)
            w = torch.tensor(rows.data)
            h = torch.relu(emb(ind, off, per_sample_weights=w) + bias0)
            loss = nn.functional.cross_entropy(out(h), torch.tensor(y[start:start + batch]))
            sparse_opt.zero_grad()
            dense_opt.zero_grad()
            loss.backward()
            sparse_opt.step()
            dense_opt.step()
        net.fit(X, y, epochs=1, batch_size=batch, shuffle=False, optimizer=opt, progress=False)
    expected = [emb.weight.detach().numpy().T, out.weight.detach().numpy(),
                bias0.detach().numpy(), out.bias.detach().numpy()]
    got = [net.weights[0], net.weights[1], net.biases[0], net.biases[1]]
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-12)
    # the moments of rows never present stay zero, as torch's
    absent = np.setdiff1d(np.arange(N0), X.indices)
    state = opt.state_dict()["state"][0]
    assert np.all(state["exp_avg"][:, absent] == 0)


def test_sparse_adam_moves_only_the_rows_present():
    X, y = _data(n=10, density=0.05)
    net = _net()
    before = _params(net)
    net.step(X[:3], y[:3], optim.SparseAdam(lr=0.01))
    present = np.unique(X[:3].indices)
    changed = np.flatnonzero(np.any(net.weights[0] != before[0], axis=0))
    assert set(changed) <= set(present) and len(changed) > 0
    assert not np.array_equal(net.weights[1], before[1])       # the dense rest is Adam


def test_sparse_adam_checks_its_arguments():
    with pytest.raises(ValueError, match="eps"):
        optim.SparseAdam(eps=0.0)
    with pytest.raises(ValueError, match="betas"):
        optim.SparseAdam(betas=(0.9, 1.0))
    assert "SparseAdam(lr=0.001" in repr(optim.SparseAdam())


def test_plain_sgd_on_csr_touches_only_the_rows_of_its_batch():
    X, y = _data(n=10, density=0.05)
    for batch_size in (1, 3):
        net = _net()
        before = _params(net)
        net.fit(X[:3], y[:3], epochs=1, batch_size=batch_size, lr=0.1, shuffle=False,
                progress=False)
        changed = np.flatnonzero(np.any(net.weights[0] != before[0], axis=0))
        assert set(changed) <= set(np.unique(X[:3].indices))


@pytest.mark.parametrize("batch_size", [1, 4])
def test_a_wide_first_layer_fetched_ahead_gives_the_narrow_result(batch_size):
    """A W[0] of 2 MiB or more has the next sample's rows prefetched during
    each sample (the kernel's fetch_ahead): the numbers must be those of a
    narrow network holding just the columns the rows use, bit for bit, and
    every other row of W[0] must stay as it was."""
    n_wide, dtype = 2**16, "float32"          # 2^16 x 8 float32: 2 MiB
    X_narrow, y = _data(n=30, n0=N0, density=0.2, seed=3, dtype=np.float32)
    cols = np.sort(np.random.default_rng(4).choice(n_wide, N0, replace=False))
    X_wide = sp.csr_matrix((X_narrow.data, cols[X_narrow.indices], X_narrow.indptr),
                           shape=(X_narrow.shape[0], n_wide))
    wide = _net(dtype, layers=(n_wide, HIDDEN, N_OUT), activation="relu")
    narrow = _net(dtype, activation="relu")
    narrow.weights[0][:] = wide.weights[0][:, cols]
    for l in range(1, 2):
        narrow.weights[l][:] = wide.weights[l]
    for l in range(2):
        narrow.biases[l][:] = wide.biases[l]
    before = np.array(wide.weights[0])
    for net, X in ((wide, X_wide), (narrow, X_narrow)):
        net.fit(X, y, epochs=2, batch_size=batch_size, lr=0.1, seed=5, progress=False)
    assert np.array_equal(wide.weights[0][:, cols], narrow.weights[0])
    assert _bit_identical(_params(wide)[1:], _params(narrow)[1:])
    others = np.setdiff1d(np.arange(n_wide), cols)
    assert np.array_equal(wide.weights[0][:, others], before[:, others])


# ---------------------------------------------------------------- validation

def _corruptions():
    """(name, function that corrupts a fresh csr_matrix in place, bypassing SciPy)."""
    def index(v):
        def f(X):
            X.indices[2] = v
        return f

    def set_indptr(k, v):
        def f(X):
            X.indptr[k] = v
        return f

    return {
        "index >= n0": index(N0),
        "negative index": index(-1),
        "huge index": index(2**31 - 1),
        "indptr not monotone": set_indptr(2, 0),
        "indptr[0] != 0": set_indptr(0, 1),
        "indptr[-1] != nnz": set_indptr(-1, 3),
        "indptr past the end": set_indptr(-1, 10**6),
        "indptr too short": lambda X: setattr(X, "indptr", X.indptr[:-1].copy()),
        "indptr too long": lambda X: setattr(X, "indptr", np.append(X.indptr, X.indptr[-1])),
        "data shorter": lambda X: setattr(X, "data", X.data[:-1].copy()),
        "indices shorter": lambda X: setattr(X, "indices", X.indices[:-1].copy()),
        "NaN": lambda X: X.data.__setitem__(1, np.nan),
        "inf": lambda X: X.data.__setitem__(1, -np.inf),
        "wrong n0": lambda X: setattr(X, "_shape", (X.shape[0], N0 + 1)),
        "2-D indices": lambda X: setattr(X, "indices", np.stack([X.indices, X.indices])),
        "float indices": lambda X: setattr(X, "indices", X.indices.astype(np.float64)),
    }


CALLS = {
    "forward": lambda net, X, y: net.forward(X),
    "predict": lambda net, X, y: net.predict(X),
    "loss": lambda net, X, y: net.loss(X, y),
    "evaluate": lambda net, X, y: net.evaluate(X, y),
    "gradients": lambda net, X, y: net.gradients(X, y),
    "sgd_step": lambda net, X, y: net.sgd_step(X, y, 0.1),
    "step": lambda net, X, y: net.step(X, y, optim.SparseAdam()),
    "fit": lambda net, X, y: net.fit(X, y, batch_size=4, progress=False),
    "gradcheck": lambda net, X, y: bpfast.gradcheck(net, X, y),
}


@pytest.mark.parametrize("corruption", sorted(_corruptions()))
@pytest.mark.parametrize("call", sorted(CALLS))
def test_invalid_structures_are_rejected_before_anything_changes(call, corruption):
    X, y = _data(n=12)
    if corruption == "wrong n0" and not hasattr(X, "_shape"):
        pytest.skip("this SciPy keeps the shape elsewhere")
    _corruptions()[corruption](X)
    net = _net()
    before = _params(net)
    with pytest.raises(ValueError, match=r"^X: "):
        CALLS[call](net, X, y)
    assert _bit_identical(_params(net), before)


def test_invalid_validation_data_and_trace_name_their_argument():
    X, y = _data(n=12)
    bad = X.copy()
    bad.indices[0] = N0 + 5
    net = _net()
    before = _params(net)
    with pytest.raises(ValueError, match=r"^validation_data\[0\]: .*column indices"):
        net.fit(X, y, validation_data=(bad, y), progress=False)
    with pytest.raises(ValueError, match=r"^x: "):
        net.trace(bad[[0]], 1)
    assert _bit_identical(_params(net), before)


def test_sparse_values_that_are_not_numbers_are_a_type_error():
    X = sp.csr_matrix(np.eye(3, N0))
    X.data = X.data.astype(complex)
    with pytest.raises(TypeError, match="^X: "):
        _net().forward(X)


# ---------------------------------------------------------------- no copies

@pytest.mark.parametrize("cls", [sp.csr_matrix, sp.csr_array])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_csr_in_the_networks_dtype_reaches_the_kernel_uncopied(dtype, index_dtype, cls,
                                                                monkeypatch):
    X, y = _data(dtype=dtype)
    X = cls(X)
    X.indices, X.indptr = X.indices.astype(index_dtype), X.indptr.astype(index_dtype)
    seen = []
    kernel = bpfast.mlp._dispatch.kernel

    class Spy:
        def __getattr__(self, name):
            fn = getattr(kernel, name)
            if name not in ("train", "gradient", "evaluate"):
                return fn

            def spy(spec, params, *args, **kwargs):
                seen.append(args[3] if name == "train" else args[2] if name == "gradient"
                            else args[1])
                return fn(spec, params, *args, **kwargs)
            return spy

    monkeypatch.setattr(bpfast.mlp._dispatch, "kernel", Spy())
    net = _net(dtype)
    net.fit(X, y, epochs=1, batch_size=4, progress=False)
    net.forward(X)
    net.gradients(X, y)
    assert len(seen) >= 3
    for got in seen:
        assert got.data is X.data and got.indices is X.indices and got.indptr is X.indptr
    rows, _ = _validate.as_inputs(X, N0, np.dtype(dtype))
    assert rows.indices.dtype == index_dtype


def test_other_formats_are_converted_once():
    X, _ = _data()
    rows, single = _validate.as_inputs(sp.coo_matrix(X), N0, np.dtype("float64"))
    assert not single and rows.shape == X.shape
    np.testing.assert_array_equal(rows.toarray(), X.toarray())


# ---------------------------------------------------------------- never densified

def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc (Linux)")
@pytest.mark.skipif("asan" in os.environ.get("LD_PRELOAD", ""),
                    reason="AddressSanitizer's shadow memory and speed; the memory is the point")
def test_a_terabyte_dense_matrix_trains_in_little_memory():
    n, n0, nnz = 10**6, 2**22, 4000          # dense: 10^6 x 2^22 float32 = 16 TiB
    rng = np.random.default_rng(0)
    rows = np.sort(rng.integers(0, n, nnz))
    indptr = np.searchsorted(rows, np.arange(n + 1)).astype(np.int32)
    X = sp.csr_matrix((rng.uniform(0.5, 1, nnz).astype(np.float32),
                       rng.integers(0, n0, nnz).astype(np.int32), indptr), shape=(n, n0))
    y = rng.integers(0, 2, n)
    net = bpfast.MLP([n0, 2, 2], activation="tanh", output="softmax", loss="cross_entropy",
                     dtype="float32", seed=0)           # W[0] rows padded to 8: 128 MiB
    rss = _rss_bytes()
    tracemalloc.start()
    try:
        net.fit(X, y, epochs=1, batch_size=32, progress=False)
        net.fit(X[:50000], y[:50000], epochs=1, batch_size=1, progress=False,
                optimizer=optim.SparseAdam(lr=1e-3))
        out = net.forward(X[:1000])
        net.evaluate(X[:1000], y[:1000])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.shape == (1000, 2) and np.all(np.isfinite(out))
    assert peak < 2**30, f"peak traced memory {peak / 2**20:.0f} MiB"
    assert _rss_bytes() - rss < 2**30


# ---------------------------------------------------------------- scikit-learn and river

@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_pipelines_with_sparse_encoders():
    pytest.importorskip("sklearn")
    from sklearn.feature_extraction.text import HashingVectorizer, TfidfVectorizer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from bpfast.sklearn import BPClassifier

    rng = np.random.default_rng(0)
    cats = rng.integers(0, 5, (120, 3))
    labels = (cats[:, 0] + cats[:, 1] > 4).astype(int)
    kw = dict(hidden_layer_sizes=(8,), max_iter=30, random_state=0, learning_rate_init=0.05)
    sparse_model = make_pipeline(OneHotEncoder(), BPClassifier(**kw)).fit(cats, labels)
    dense_model = make_pipeline(OneHotEncoder(sparse_output=False),
                                BPClassifier(**kw)).fit(cats, labels)
    for a, b in zip(sparse_model[-1].coefs_, dense_model[-1].coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    assert sparse_model.score(cats, labels) > 0.8

    words = ["good", "great", "fine", "bad", "awful", "poor"]
    docs = [" ".join(rng.choice(words[:3] if k % 2 else words[3:], 4)) for k in range(60)]
    target = np.arange(60) % 2
    for encoder in (TfidfVectorizer(), HashingVectorizer(n_features=2**18)):
        model = make_pipeline(encoder, BPClassifier(hidden_layer_sizes=(4,), max_iter=50,
                                                    learning_rate_init=0.1, random_state=0))
        model.fit(docs, target)
        assert sp.issparse(model[0].transform(docs))
        assert model.score(docs, target) == 1.0


def test_river_features_are_a_sparse_row_when_few_and_may_appear_mid_stream():
    pytest.importorskip("river")
    from bpfast.river import BPRegressor

    rng = np.random.default_rng(0)
    stream = []
    for k in range(300):
        names = [f"f{j}" for j in rng.choice(40 if k > 100 else 10, 4, replace=False)]
        x = {name: float(rng.normal()) for name in names}
        stream.append((x, sum(x.values())))
    sparse_model = BPRegressor(hidden_layer_sizes=(6,), lr=0.02, seed=0)
    dense_model = BPRegressor(hidden_layer_sizes=(6,), lr=0.02, seed=0)

    def dense_vector(x):               # the dense vector of every feature seen (before 0.2)
        vec = np.zeros(len(dense_model._features))
        for name, value in x.items():
            if name in dense_model._index:
                vec[dense_model._index[name]] = value
        return vec

    dense_model._vector = dense_vector
    for x, y in stream:
        row = sparse_model._vector(x) if sparse_model.net is not None else None
        if row is not None and BPRegressor.DENSE_FRACTION * len(x) < len(sparse_model._features):
            assert isinstance(row, _validate.SparseRows)     # few of the features: sparse
            assert row.nnz == sum(name in sparse_model._index for name in x)
        elif row is not None:
            assert isinstance(row, list) and len(row) == len(sparse_model._features)
        sparse_model.learn_one(x, y)
        dense_model.learn_one(x, y)
    assert sparse_model.net.layers[0] == 40
    _assert_close(_params(sparse_model.net), _params(dense_model.net), "float64")
    x = stream[-1][0]
    expected = dense_model.net.forward(dense_vector(x))[0]
    assert sparse_model.predict_one(x) == pytest.approx(expected, rel=1e-12)


def test_import_bpfast_does_not_import_scipy():
    code = ("import sys, bpfast, bpfast.mlp, bpfast.optim\n"
            "net = bpfast.MLP([3, 2]); net.fit([[1.0, 0, 2]], [1], progress=False)\n"
            "assert 'scipy' not in sys.modules, sorted(m for m in sys.modules if 'scipy' in m)\n")
    env = dict(os.environ)
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


@pytest.mark.parametrize("call", ["sgd_step", "step_sgd", "step_sparse_adam", "fit"])
def test_divergence_on_sparse_rows_restores_everything(call):
    X, y = _data(n=12)
    X = X * 1e200
    net = _net(activation="identity", output="identity", loss="mse")
    targets = np.zeros((12, N_OUT))
    before = _params(net)
    opt = optim.SparseAdam(lr=1e300) if call == "step_sparse_adam" else optim.SGD(lr=1e300)
    with pytest.raises(bpfast.DivergenceError):
        if call == "sgd_step":
            net.sgd_step(X, targets, 1e300)
        elif call == "fit":
            net.fit(X, targets, lr=1e300, batch_size=3, progress=False)
        else:
            net.step(X, targets, opt)
    assert _bit_identical(_params(net), before)
    net.sgd_step(X / 1e200, targets, 0.1)      # still usable: no NaN left in its scratch
    assert all(np.all(np.isfinite(p)) for p in _params(net))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("how", ["fit", "early_stopping", "partial_fit", "regressor"])
def test_sklearn_estimators_take_csr_as_dense(how):
    pytest.importorskip("sklearn")
    from bpfast.sklearn import BPClassifier, BPRegressor

    X, y = _data(n=80)
    kw = dict(hidden_layer_sizes=(5,), max_iter=5, random_state=0)
    results = []
    for X_in in (X, X.toarray()):
        if how == "regressor":
            model = BPRegressor(**kw).fit(X_in, y.astype(float))
        elif how == "partial_fit":
            model = BPClassifier(**kw)
            model.partial_fit(X_in[:40], y[:40], classes=np.arange(N_OUT))
            model.partial_fit(X_in[40:], y[40:])
        else:
            model = BPClassifier(early_stopping=how == "early_stopping", **kw).fit(X_in, y)
        results.append((model.coefs_ + model.intercepts_, model.predict(X_in)))
    _assert_close(results[0][0], results[1][0], "float64")
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-12)
