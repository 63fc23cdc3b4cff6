"""∇L as one named vector: the tutorials' "gradient vector" of all weights and biases."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

__all__ = ["GradientVector"]

# How many entries print() shows (the largest |∂L/∂p|).
SHOWN = 10


def direction(g: float) -> str:
    """The arrow of the UPDATE −lr·g (lr > 0): ↑ where g < 0, ↓ where g > 0, · where 0."""
    return "↑" if g < 0 else "↓" if g > 0 else "·"


class GradientVector:
    """∂L/∂p for every parameter p, in one flat array, each with its name.

    Attributes
    ----------
    values : ndarray
        ``W[0]`` row by row, ``b[0]``, ``W[1]``, ``b[1]``, …
    names : list of str
        ``"W[l][i, j]"`` and ``"b[l][i]"``, with l, i, j as in
        ``tr.grad_w[l][i, j]`` and ``tr.grad_b[l][i]``.

    Notes
    -----
    ``print`` shows the largest entries with the direction of the update a
    step of gradient descent gives them: ↑ where ∂L/∂p < 0 (−lr·∂L/∂p > 0,
    the parameter grows), ↓ where ∂L/∂p > 0.  A negative gradient means that
    *increasing* the parameter lowers the loss.
    """

    def __init__(self, values: ArrayLike, names: Iterable[str]) -> None:
        self.values: NDArray[Any] = np.asarray(values)
        self.names = list(names)
        if self.values.shape != (len(self.names),):
            raise ValueError(f"names: expected one name per value ({self.values.size}); "
                             f"got {len(self.names)}")

    @classmethod
    def from_layers(cls, grad_w: Sequence[ArrayLike],
                    grad_b: Sequence[ArrayLike]) -> GradientVector:
        """From per-layer gradients (lists of W-shaped and b-shaped arrays)."""
        values: list[NDArray[Any]] = []
        names: list[str] = []
        for l, (gw, gb) in enumerate(zip(grad_w, grad_b)):
            gw, gb = np.asarray(gw), np.asarray(gb)
            values += [gw.ravel(), gb.ravel()]
            names += [f"W[{l}][{i}, {j}]" for i, j in np.ndindex(gw.shape)]
            names += [f"b[{l}][{i}]" for i in range(gb.shape[0])]
        return cls(np.concatenate(values), names)

    def __len__(self) -> int:
        return len(self.names)

    def __array__(self, dtype: DTypeLike | None = None, copy: bool | None = None) -> NDArray[Any]:
        if copy is False and dtype not in (None, self.values.dtype):
            raise ValueError("GradientVector: cannot convert without a copy")
        values = self.values if dtype is None else self.values.astype(dtype, copy=False)
        return values.copy() if copy else values

    def __iter__(self) -> Iterator[tuple[str, float]]:
        return iter(zip(self.names, self.values.tolist()))

    def largest(self, k: int = SHOWN) -> NDArray[np.intp]:
        """Indices of the k entries of largest |∂L/∂p|, largest first (stable on ties)."""
        return np.argsort(-np.abs(self.values), kind="stable")[:k]

    def norm(self) -> float:
        """‖∇L‖, the Euclidean norm of the whole vector."""
        return float(np.linalg.norm(self.values.astype(np.float64)))

    def __repr__(self) -> str:
        return f"<bpfast GradientVector of {len(self)} parameters, norm {self.norm():.4g}>"

    def __str__(self) -> str:
        top = self.largest()
        width = max(len(self.names[k]) for k in top) if len(top) else 0
        head = (f"∇L over {len(self)} parameters, norm {self.norm():.4g}; "
                f"{'the ' + str(len(top)) + ' largest' if len(top) < len(self) else 'all'} "
                f"|∂L/∂p| (↑ the update −lr·∂L/∂p increases p, ↓ decreases it):")
        lines = [head]
        for k in top:
            g = self.values[k]
            lines.append(f"  {self.names[k]:<{width}}  {g: .4e}  {direction(g)}")
        if len(top) < len(self):
            lines.append(f"  … {len(self) - len(top)} more")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from ._html import gradient_vector_html
        return gradient_vector_html(self)
