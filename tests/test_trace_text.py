"""The trace's text in English and Chinese: one description of the steps, two phrasings.

Both texts must come from the same step records (same lines, same numbers
on every line), use the tutorials' words, and number layers so that z, a
and δ of one layer carry one index.
"""

import re

import numpy as np
import pytest

import bpfast
from bpfast import _phrases

CONFIGS = [
    ([1, 1, 1], "sigmoid", "sigmoid", "mse"),
    ([2, 3, 2], "tanh", "softmax", "cross_entropy"),
    ([3, 2, 3, 2], "relu", "softmax", "mse"),
    ([2, 3, 1], "leaky_relu", "sigmoid", "cross_entropy"),
    ([4, 5, 3], "sigmoid", "tanh", "mse"),
    ([20, 16, 3], "tanh", "identity", "mse"),        # large layers: summaries
]
IDS = ["-".join(map(str, c[0])) + "-" + c[1] + "-" + c[2] for c in CONFIGS]
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")
TUTORIAL_WORDS = ["前向传播", "代价函数", "链式法则", "反向传播", "误差信号 δ", "梯度", "学习率",
                  "更新", "权重", "偏置"]


def _worked_example():
    net = bpfast.MLP([1, 1, 1], "sigmoid", "sigmoid", "mse")
    net.weights[0][:], net.biases[0][:] = 0.4, 0.1
    net.weights[1][:], net.biases[1][:] = 0.6, 0.2
    return net


@pytest.fixture(params=CONFIGS, ids=IDS)
def tr(request):
    layers, activation, output, loss = request.param
    net = bpfast.MLP(layers, activation, output, loss, seed=3)
    rng = np.random.default_rng(4)
    x = rng.normal(size=layers[0])
    y = rng.integers(layers[-1]) if loss == "cross_entropy" else rng.uniform(size=layers[-1])
    return net.trace(x, y, lr=0.25)


def test_both_languages_render_the_same_steps_line_for_line(tr):
    steps = tr.steps()
    en, zh = tr.text("en").splitlines(), tr.text("zh").splitlines()
    assert len(en) == len(zh) == len(steps)
    for step, line_en, line_zh in zip(steps, en, zh):
        assert NUMBER.findall(line_en) == NUMBER.findall(line_zh), (step.kind, line_en, line_zh)
        assert bool(line_en) == bool(line_zh)
    assert sum(len(NUMBER.findall(line)) for line in en) > 20


def test_the_step_description_does_not_depend_on_the_language():
    net = _worked_example()
    en, zh = net.trace(0.5, 0.8, lr=0.1), net.trace(0.5, 0.8, lr=0.1, lang="zh")
    assert [(s.kind, s.depth) for s in en.steps()] == [(s.kind, s.depth) for s in zh.steps()]
    assert str(en) == zh.text("en") and str(zh) == en.text("zh")
    kinds = {s.kind for s in en.steps()}
    assert {"forward", "loss", "backward", "update", "grad_w", "grad_b"} <= kinds


def test_every_language_has_a_phrase_for_every_kind():
    kinds = set(_phrases.PHRASES["en"])
    for lang in _phrases.LANGS:
        assert set(_phrases.PHRASES[lang]) == kinds, lang
        assert lang in _phrases.SUMMARY


def test_chinese_text_uses_the_tutorials_words():
    text = str(_worked_example().trace(0.5, 0.8, lr=0.1, lang="zh"))
    for word in TUTORIAL_WORDS:
        assert word in text, word
    for number in ("0.5744", "0.6329", "0.01396", "-0.02230", "-0.002847", "0.6022"):
        assert number in text
    # English section titles are gone; only formulas and function names stay Latin.
    for word in ("Forward", "Backward", "Update", "gradient", "layer", "target"):
        assert word not in text, word


def test_chinese_summaries_of_large_arrays():
    net = bpfast.MLP([784, 30, 10], seed=0)
    tr = net.trace(np.linspace(0, 1, 784), 3, lang="zh")
    text = str(tr)
    assert "形状 (30, 784)" in text and "范数" in text
    assert "shape" not in text and "norm" not in text


def test_layer_indices_match_between_z_a_and_delta():
    text = str(_worked_example().trace(0.5, 0.8, lr=0.1))
    for line in ("z⁽¹⁾ = W⁽¹⁾·a⁽⁰⁾ + b⁽¹⁾ = [0.3000]", "a⁽¹⁾ = sigmoid(z⁽¹⁾) = [0.5744]",
                 "z⁽²⁾ = W⁽²⁾·a⁽¹⁾ + b⁽²⁾ = [0.5447]", "δ⁽²⁾ = (a⁽²⁾ − y) ⊙ f'(z⁽²⁾)",
                 "δ⁽¹⁾ = (W⁽²⁾ᵀ·δ⁽²⁾) ⊙ f'(z⁽¹⁾)", "∂L/∂W⁽²⁾ = δ⁽²⁾·a⁽¹⁾ᵀ = [[-0.02230]]",
                 "∂L/∂W⁽¹⁾ = δ⁽¹⁾·a⁽⁰⁾ᵀ = [[-0.002847]]", "δ⁽¹⁾ = [-0.005695]",
                 "δ⁽²⁾ = [-0.03882]"):
        assert line in text, line
    # Per-unit lines name their layer: no bare a_0 / δ_0 that means different layers.
    assert "a_0" not in text and "δ_0" not in text and "z_0" not in text
    assert "a⁽¹⁾₀ = sigmoid(0.3000) = 0.5744" in text
    assert "δ⁽²⁾₀ = (a⁽²⁾₀ − y₀)" in text and "δ⁽¹⁾₀ = (Σₖ W⁽²⁾ₖ₀·δ⁽²⁾ₖ)" in text
    # The old shifted notation δ[l] = ∂L/∂z[l+1] is gone.
    assert "z[l+1]" not in text and "δ[" not in text


def test_the_values_under_each_layer_index_are_the_arrays_it_names():
    """δ⁽ˡ⁾ printed equals tr.delta[l-1]; a⁽ˡ⁾ equals tr.a[l]."""
    net = bpfast.MLP([2, 3, 2], "tanh", "sigmoid", "mse", seed=1)
    tr = net.trace([0.3, -0.7], [0.2, 0.9])
    text = str(tr)
    for k in (1, 2):
        s = "⁽" + "⁰¹²"[k] + "⁾"
        delta = re.search(rf"^\s*δ{s} = \[(.*)\]$", text, re.MULTILINE).group(1)
        np.testing.assert_allclose([float(v) for v in delta.split(",")], tr.delta[k - 1],
                                   rtol=1e-3)
        a = re.search(rf"^\s*a{s} = (?:tanh|sigmoid)\(z{s}\) = \[(.*)\]$", text,
                      re.MULTILINE).group(1)
        np.testing.assert_allclose([float(v) for v in a.split(",")], tr.a[k], rtol=1e-3)


def test_a_number_is_accepted_for_one_input_and_one_output():
    net = _worked_example()
    tr = net.trace(0.5, 0.8, lr=0.1)
    same = net.trace([0.5], [0.8], lr=0.1)
    assert tr.loss == same.loss
    np.testing.assert_array_equal(tr.a[0], [0.5])
    np.testing.assert_array_equal(tr.y, [0.8])
    assert str(tr) == str(same)
    assert net.trace(np.float32(0.5), 1).y.tolist() == [1.0]     # a label on one output
    with pytest.raises(ValueError, match=r"\bx\b"):               # two inputs need two numbers
        bpfast.MLP([2, 1, 1]).trace(0.5, 0.8)


@pytest.mark.parametrize("lang", ["fr", "EN", "", "chinese", None, 1])
def test_an_unknown_language_is_rejected(lang):
    net = _worked_example()
    with pytest.raises(ValueError, match="lang"):
        net.trace(0.5, 0.8, lang=lang)
    if lang is not None:                        # text(None): the trace's own language
        with pytest.raises(ValueError, match="lang"):
            net.trace(0.5, 0.8).text(lang)


def test_repr_is_one_useful_line():
    text = repr(_worked_example().trace(0.5, 0.8, lr=0.1))
    assert "\n" not in text
    assert "[1, 1, 1]" in text and "0.01396" in text and "plot" in text
