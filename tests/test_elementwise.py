"""The kernel's own exp, sigmoid and tanh (src/bpfast/_math.pxi) against NumPy in
extended precision: error in units in the last place of the network's dtype,
the special values (±0, ±inf, NaN), the overflow boundary and the documented
flush to zero below the smallest normal result."""

import numpy as np
import pytest

from bpfast import _dispatch
from bpfast._layout import ACTIVATIONS

KERNELS = [_dispatch.load_kernel(name) for name in _dispatch.available_kernels()]
# (dtype, scalar entry, x below which e^x is flushed to 0)
DTYPES = [(np.float64, "_py_activation", -708.0), (np.float32, "_py_activation_f32", -86.0)]
# Largest error allowed, in ulps of the dtype (libm's own are ~0.5-1).
MAX_ULP = {"exp": 1.5, "sigmoid": 2.5, "tanh": 3.5}
EXACT = {"exp": np.exp, "sigmoid": lambda x: 1 / (1 + np.exp(-x)), "tanh": np.tanh}


def points(dtype):
    rng = np.random.default_rng(0)
    high = 709.0 if dtype == np.float64 else 88.0
    x = np.concatenate([rng.normal(0, 1, 4000), rng.normal(0, 20, 4000),
                        rng.uniform(-high, high, 4000),
                        10.0 ** rng.uniform(-30, 1, 2000), -(10.0 ** rng.uniform(-30, 1, 2000))])
    return x.astype(dtype)


def evaluate(kernel, entry, name, x):
    f = getattr(kernel, entry)
    return np.array([f(ACTIVATIONS[name], float(v)) for v in x], dtype=x.dtype)


def ulps(got, x, name):
    with np.errstate(all="ignore"):
        exact = EXACT[name](x.astype(np.longdouble))
    spacing = np.spacing(np.abs(exact.astype(x.dtype))).astype(np.longdouble)
    return np.abs(got.astype(np.longdouble) - exact) / spacing


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.__name__)
@pytest.mark.parametrize("dtype, entry, low", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("name", ["exp", "sigmoid", "tanh"])
def test_accuracy_in_ulps(kernel, dtype, entry, low, name):
    x = points(dtype)
    if name == "exp":
        x = x[x >= low]
    got = evaluate(kernel, entry, name, x)
    err = ulps(got, x, name)
    tiny = np.finfo(dtype).tiny
    judged = np.abs(got) >= tiny          # sigmoid's far left tail is flushed like exp
    assert judged.mean() > 0.9
    worst = np.argmax(np.where(judged, err, 0))
    assert err[judged].max() <= MAX_ULP[name], (
        f"{name}({x[worst]!r}) = {got[worst]!r}: {err[worst]:.2f} ulp")


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.__name__)
@pytest.mark.parametrize("dtype, entry, low", DTYPES, ids=["float64", "float32"])
def test_exp_edges(kernel, dtype, entry, low):
    info = np.finfo(dtype)
    top = np.log(np.longdouble(info.max))          # e^x overflows just above this
    below = np.nextafter(dtype(top), dtype(0))
    above = np.nextafter(dtype(top), dtype(np.inf))
    x = np.array([0.0, -0.0, below, above, 2 * top, np.inf, -np.inf, np.nan,
                  low - 0.5, 4 * low, low + 0.5], dtype=dtype)
    got = evaluate(kernel, entry, "exp", x)
    assert got[0] == 1 and got[1] == 1
    assert np.isfinite(got[2]) and got[2] > info.max / 2
    assert got[3] == np.inf and got[4] == np.inf and got[5] == np.inf
    assert got[6] == 0 and np.isnan(got[7])
    assert got[8] == 0 and got[9] == 0                       # flushed: below tiny anyway
    assert got[10] >= info.tiny


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.__name__)
@pytest.mark.parametrize("dtype, entry, low", DTYPES, ids=["float64", "float32"])
def test_tanh_and_sigmoid_edges(kernel, dtype, entry, low):
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-30, -1e-30, 30.0, -30.0, 800.0,
                  -800.0], dtype=dtype)
    t = evaluate(kernel, entry, "tanh", x)
    assert t[0] == 0 and not np.signbit(t[0])
    assert t[1] == 0 and np.signbit(t[1])                    # tanh(-0) = -0
    assert t[2] == 1 and t[3] == -1 and np.isnan(t[4])
    assert t[5] == dtype(1e-30) and t[6] == dtype(-1e-30)    # relative accuracy near 0
    assert t[7] == 1 and t[8] == -1 and t[9] == 1 and t[10] == -1
    s = evaluate(kernel, entry, "sigmoid", x)
    assert s[0] == 0.5 and s[1] == 0.5
    assert s[2] == 1 and s[3] == 0 and np.isnan(s[4])
    assert s[9] == 1 and s[10] == 0


# ---------------------------------------------------------------- all_finite

@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.__name__)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_all_finite_finds_any_nan_or_inf_wherever_it_is(kernel, dtype):
    """The kernel's finiteness check (one-sample steps, fit's chunks) sums
    v*0 in lanes: every position of every length around the lane blocks must
    count, and huge, tiny, subnormal and signed-zero entries are finite."""
    info = np.finfo(dtype)
    edge = np.array([info.max, -info.max, info.tiny, info.smallest_subnormal, 0.0, -0.0],
                    dtype=dtype)
    for n in (0, 1, 2, 31, 32, 33, 63, 64, 65, 100):
        v = np.resize(np.concatenate([edge, np.linspace(-3, 3, 7, dtype=dtype)]), n)
        assert kernel.all_finite(v)
        for bad in (np.nan, np.inf, -np.inf):
            for k in range(n):
                w = v.copy()
                w[k] = bad
                assert not kernel.all_finite(w), (n, k, bad)
