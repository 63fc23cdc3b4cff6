"""What fit() records and what can stop it: History and EarlyStopping."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator, Mapping
from typing import TYPE_CHECKING, Any, overload

if TYPE_CHECKING:
    from .mlp import MLP

__all__ = ["History", "EarlyStopping"]


class History:
    """Per-epoch records of one fit() call.

    ``history`` is a list with one dict per completed epoch: ``loss`` and
    ``accuracy`` (running means over the epoch's samples, each measured just
    before that sample's update), ``val_loss``/``val_accuracy`` (after the
    epoch, with validation data), ``seconds`` and ``samples_per_s``.
    """

    def __init__(self) -> None:
        self.history: list[dict[str, Any]] = []

    def append(self, logs: Mapping[str, Any]) -> None:
        self.history.append(dict(logs))

    def __len__(self) -> int:
        return len(self.history)

    @overload
    def __getitem__(self, key: str) -> list[Any]: ...
    @overload
    def __getitem__(self, key: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, key: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, key: str | int | slice) -> Any:
        """history[k] is epoch k's dict; history["loss"] is that key over epochs."""
        if isinstance(key, str):
            return [row[key] for row in self.history if key in row]
        return self.history[key]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.history)

    def __repr__(self) -> str:
        last = self.history[-1] if self.history else {}
        return f"History(epochs={len(self.history)}, last={last})"


class EarlyStopping:
    """Stop fit() when `monitor` has not improved for `patience` epochs.

    Improvement means lower by more than `min_delta` (higher, for a monitor
    whose name contains "acc").  With restore_best, the parameters of the
    best epoch are put back when training is stopped.  Only the parameters:
    the optimizer's state (momentum buffer, Adam's moments, its step count)
    stays as it was at the stop, as Keras' ``restore_best_weights`` does, so
    the optimizer remains usable and a later fit continues from it.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0,
                 restore_best: bool = True) -> None:
        from . import _validate
        if not isinstance(monitor, str):
            raise TypeError(f"monitor: expected a history key such as 'val_loss'; got {monitor!r}")
        self.monitor = monitor
        self.patience = _validate.check_int("patience", patience, minimum=0)
        self.min_delta = _validate.check_real("min_delta", min_delta, nonnegative=True)
        self.restore_best = bool(restore_best)
        self.mode = "max" if "acc" in monitor else "min"
        self.net: MLP | None = None
        self._reset()

    def _reset(self) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch: int | None = None
        self.best_params: Any = None
        self.wait = 0
        self.stopped_epoch: int | None = None

    def check_keys(self, keys: Collection[str], name: str = "EarlyStopping") -> None:
        """Called by fit() before training: the monitor must be a history key."""
        if self.monitor not in keys:
            raise ValueError(f"{name}: expected monitor to be one of the keys this fit "
                             f"reports, {sorted(keys)}; got {self.monitor!r} (val_* keys need "
                             f"validation_data)")

    def set_network(self, net: MLP) -> None:
        """Called by fit() before the first epoch."""
        self.net = net
        self._reset()

    def _improved(self, value):
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def __call__(self, epoch: int, logs: Mapping[str, Any]) -> bool:
        if self.monitor not in logs:
            raise ValueError(f"EarlyStopping: monitor {self.monitor!r} is not in the history; "
                             f"available: {sorted(logs)}")
        value = logs[self.monitor]
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best and self.net is not None:
                self.best_params = self.net._snapshot()
            return True
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            if self.best_params is not None and self.net is not None:
                self.net._restore(self.best_params)
            return False
        return True
