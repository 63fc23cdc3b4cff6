"""Compact HTML for Jupyter: an MLP, a Trace, a GradientVector (`_repr_html_`).

Plain tables with inline styles only, so they read the same in Jupyter,
VS Code and GitHub's notebook viewer; every value is escaped.
"""

from html import escape

import numpy as np

from ._explain import MAX_SPELLED, num

__all__ = ["mlp_html", "trace_html", "gradient_vector_html"]

_TABLE = '<table style="border-collapse:collapse;font-family:monospace;text-align:left">'
_CELL = 'style="padding:2px 10px;border-bottom:1px solid #ddd;text-align:left"'


def _table(title, rows, header=None):
    """A captioned table of (cell, cell, ...) rows, cells escaped."""
    out = [_TABLE, f'<caption style="text-align:left;font-weight:bold">{escape(title)}</caption>']
    if header:
        out.append("<tr>" + "".join(f"<th {_CELL}>{escape(str(h))}</th>" for h in header)
                   + "</tr>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td {_CELL}>{escape(str(c))}</td>" for c in row)
                   + "</tr>")
    out.append("</table>")
    return "".join(out)


def _values(v, limit=MAX_SPELLED * 4):
    v = np.asarray(v).ravel()
    text = ", ".join(num(e) for e in v[:limit])
    return f"[{text}{', …' if v.size > limit else ''}]"


def mlp_html(net):
    """Layers, activations, loss, dtype and n_params of a network."""
    layers = net.layers
    rows = [("layers", " → ".join(map(str, layers))),
            ("hidden activation", net.activation), ("output", net.output),
            ("loss", net.loss_name), ("dtype", np.dtype(net.dtype).name),
            ("n_params", f"{net.n_params:,}")]
    return _table("bpfast.MLP", rows)


def trace_html(tr):
    """The loss, and per layer its z, a, δ (small layers in full) — in the text's notation."""
    L = len(tr.z)
    c = tr.config
    title = (f"bpfast.Trace: layers {list(c['layers'])}, loss {c['loss']}, "
             f"L = {num(tr.loss)}" + ("" if tr.lr is None else f", lr = {num(tr.lr)}"))
    rows = [("0 (input)", "", _values(tr.a[0]), "", "")]
    for k in range(1, L + 1):
        name = f"{k} ({c['output'] if k == L else c['activation']})"
        rows.append((name, _values(tr.z[k - 1]), _values(tr.a[k]), _values(tr.delta[k - 1]),
                     num(np.linalg.norm(np.asarray(tr.grad_w[k - 1], dtype=np.float64)))))
    s = "⁽ˡ⁾"
    header = ("layer l", f"z{s}", f"a{s}", f"δ{s} = ∂L/∂z{s}", f"‖∂L/∂W{s}‖")
    target = f"<p>target y = {escape(_values(tr.y))}; print(tr) explains every step.</p>"
    return _table(title, rows, header) + target


def gradient_vector_html(gv):
    """The largest entries of ∇L with the direction of their update."""
    from ._gradient_vector import direction
    rows = [(gv.names[k], f"{gv.values[k]:.4e}", direction(gv.values[k])) for k in gv.largest()]
    title = f"∇L over {len(gv)} parameters, norm {gv.norm():.4g} (largest |∂L/∂p| first)"
    note = ("<p>↑: the update −lr·∂L/∂p increases the parameter; ↓: decreases it.</p>")
    return _table(title, rows, ("parameter", "∂L/∂p", "update")) + note
