"""The other views of a trace: the gradient vector and the HTML of Jupyter."""

import re

import numpy as np
import pytest

import bpfast


@pytest.fixture
def tr():
    net = bpfast.MLP([3, 4, 2], "tanh", "softmax", "cross_entropy", seed=2)
    return net.trace([0.5, -1.0, 2.0], 1, lr=0.5)


def test_gradient_vector_is_grad_w_and_grad_b_in_order_with_their_names(tr):
    gv = tr.gradient_vector()
    expected = np.concatenate([np.concatenate([gw.ravel(), gb]) for gw, gb in
                               zip(tr.grad_w, tr.grad_b)])
    np.testing.assert_array_equal(gv.values, expected)
    np.testing.assert_array_equal(np.asarray(gv), expected)
    assert len(gv) == expected.size == 3 * 4 + 4 + 4 * 2 + 2
    # Every name points at the entry it labels.
    for name, value in zip(gv.names, gv.values):
        kind, l, index = re.fullmatch(r"([Wb])\[(\d)\]\[([\d, ]+)\]", name).groups()
        where = tuple(int(i) for i in index.split(","))
        source = tr.grad_w if kind == "W" else tr.grad_b
        assert source[int(l)][where] == value, name
    assert gv.names[:2] == ["W[0][0, 0]", "W[0][0, 1]"] and gv.names[12] == "b[0][0]"
    assert gv.names[-1] == "b[1][1]"


def test_gradient_vector_arrows_give_the_direction_of_the_update(tr):
    gv = tr.gradient_vector()
    text = str(gv)
    rows = [line.split() for line in text.splitlines()[1:] if line.strip().startswith(("W", "b"))]
    assert len(rows) == 10
    assert f"{len(gv)} parameters" in text and f"{len(gv) - 10} more" in text
    seen = set()
    for row in rows:
        name = " ".join(row[:-2])
        g = gv.values[gv.names.index(name)]
        arrow = row[-1]
        assert arrow == ("↑" if g < 0 else "↓"), (name, g, arrow)   # ↑ exactly where g < 0
        seen.add(arrow)
        # ... and the update −lr·g of that parameter has that sign.
        l = int(name[2])
        new = tr.new_weights[l] if name[0] == "W" else tr.new_biases[l]
        old = tr.weights[l] if name[0] == "W" else tr.biases[l]
        where = tuple(int(i) for i in name[name.index("][") + 2:-1].split(","))
        assert (new[where] > old[where]) == (arrow == "↑")
    assert seen == {"↑", "↓"}
    # The ten shown are the ten largest |g|.
    shown = sorted(abs(gv.values[gv.names.index(" ".join(r[:-2]))]) for r in rows)
    assert shown == sorted(np.sort(np.abs(gv.values))[-10:])


def test_gradient_vector_html_lists_the_largest_entries(tr):
    html = tr.gradient_vector()._repr_html_()
    k = int(np.argmax(np.abs(tr.gradient_vector().values)))
    assert tr.gradient_vector().names[k] in html
    assert f"{tr.gradient_vector().values[k]:.4e}" in html and "−lr·∂L/∂p" in html


def test_trace_html_carries_the_numbers(tr):
    html = tr._repr_html_()
    assert html.startswith("<table") and "</table>" in html
    for number in (tr.loss, tr.a[1][0], tr.z[0][3], tr.delta[1][1], tr.a[2][0], 0.5):
        assert f"{float(number):#.4g}" in html, number
    assert "δ⁽ˡ⁾" in html and "z⁽ˡ⁾" in html


def test_mlp_html_is_a_compact_table():
    net = bpfast.MLP([784, 30, 10], "relu", "softmax", "cross_entropy", dtype="float32")
    html = net._repr_html_()
    for text in ("784 → 30 → 10", "relu", "softmax", "cross_entropy", "float32", "23,860"):
        assert text in html, text
    assert len(html) < 3000


def test_html_escapes_what_it_shows():
    from bpfast._html import _table
    assert "<b>" not in _table("t", [("<b>", "&")]) and "&lt;b&gt;" in _table("t", [("<b>",)])
