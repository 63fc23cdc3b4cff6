"""The exceptions bpfast raises beyond ValueError and TypeError."""

from __future__ import annotations

__all__ = ["DivergenceError", "ModelFormatError"]


class DivergenceError(FloatingPointError):
    """Training produced a NaN or infinite loss or parameter.

    The network's parameters were restored to their last finite state (the
    start of the epoch in `fit`, the state before the step in `sgd_step`).
    The usual cure is a smaller learning rate.
    """


class ModelFormatError(ValueError):
    """A model file is truncated, corrupted, of another format version, or hostile."""
