"""The fit loop: epochs of kernel calls, with checks between chunks.

The kernel trains a chunk of minibatches per call without the GIL; between
calls Python checks for divergence, updates the progress bar and lets Ctrl-C
through, so an interruption always finds a consistent network.
"""

import numbers
import time

import numpy as np

from . import _validate, optim
from ._progress import progress_bar
from .callbacks import History
from .errors import DivergenceError

# A chunk is about this many multiply-adds of kernel work (tens of
# milliseconds): long enough that the checks between chunks cost little,
# short enough that Ctrl-C and the progress bar respond at once.
_CHUNK_WORK = 2e8


def chunk_samples(n_params, batch_size, work=None):
    """Samples per kernel call: a whole number of batches, ~_CHUNK_WORK of work.

    `work` is a sample's multiply-adds per pass (n_params for a dense row,
    less for a sparse one); a chunk then also does at least 16 times n_params
    of them, so that the finite check over all parameters between chunks
    stays small next to the training on sparse rows.
    """
    work = n_params if work is None else work
    samples = max(64, int(_CHUNK_WORK / (3 * work)), int(16 * n_params / (3 * work)))
    return max(1, samples // batch_size) * batch_size


class Fit:
    """One call of MLP.fit: validates every argument up front, then runs."""

    def __init__(self, net, X, Y, *, epochs, lr, batch_size, shuffle, seed, momentum,
                 nesterov, weight_decay, validation_data, progress, callbacks, n_threads,
                 optimizer, schedule, sample_weight=None, hogwild=False):
        v = _validate
        self.net = net
        self.X, self.targets, _ = net._data(X, Y)
        self.epochs = v.check_int("epochs", epochs, minimum=1)
        from .mlp import _check_sample_weight
        self.sample_weight = (None if sample_weight is None else
                              _check_sample_weight(sample_weight, self.X.shape[0], net.dtype))
        self.optimizer = None
        if optimizer is not None:
            self.optimizer = optim.check_optimizer(optimizer)
            sgd_args = dict(lr=(lr, 0.1), momentum=(momentum, 0.0), nesterov=(nesterov, False),
                            weight_decay=(weight_decay, 0.0))
            given = [f"{k}={value!r}" for k, (value, default) in sgd_args.items()
                     if not (value is default or (isinstance(value, numbers.Real)
                                                  and not isinstance(value, bool)
                                                  and value == default))]
            if given:
                raise TypeError(f"fit: {', '.join(given)} given together with optimizer="
                                f"{optimizer!r}; set them on the optimizer instead")
        self.schedule = optim.check_schedule(schedule)
        self.lr = v.check_real("lr", lr, positive=True)
        self.batch_size = v.check_int("batch_size", batch_size, minimum=1)
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle: expected True or False; got {shuffle!r}")
        self.shuffle = bool(shuffle)
        if seed is not None:
            seed = v.check_int("seed", seed, minimum=0)
        self.momentum = v.check_real("momentum", momentum, nonnegative=True)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov: expected True or False; got {nesterov!r}")
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov: Nesterov momentum needs momentum > 0; got momentum=0")
        self.weight_decay = v.check_real("weight_decay", weight_decay, nonnegative=True)
        self.validation = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                got = type(validation_data).__name__
                if isinstance(validation_data, (tuple, list)):
                    got += f" of length {len(validation_data)}"
                raise TypeError(f"validation_data: expected a pair (X_val, Y_val); got {got}")
            Xv, Tv, _ = net._data(*validation_data, xname="validation_data[0]",
                                  yname="validation_data[1]")
            self.validation = (Xv, Tv)
        self.progress = v.check_progress(progress)
        self.callbacks = v.check_callbacks(callbacks)
        self.n_threads = v.check_int("n_threads", n_threads, minimum=1, maximum=1024)
        self.hogwild = optim._check_bool("hogwild", hogwild)
        if self.hogwild:
            self._check_hogwild()
        keys = {"loss", "lr", "seconds", "samples_per_s"}
        if self.targets.classification:
            keys.add("accuracy")
        if self.validation is not None:
            keys.add("val_loss")
            if self.validation[1].classification:
                keys.add("val_accuracy")
        for k, cb in enumerate(self.callbacks):
            if hasattr(cb, "check_keys"):
                cb.check_keys(keys, name=f"callbacks[{k}]")
        opt = self.optimizer or net._sgd
        if self.schedule is not None:
            self.schedule.check_keys(keys)
            if self.schedule._opt is not None and self.schedule._opt is not opt:
                raise ValueError(f"schedule: this {type(self.schedule).__name__} already "
                                 f"drives another optimizer ({self.schedule._opt!r}); make one "
                                 f"schedule per optimizer")
        with net._lock:
            opt._bind(net)      # last: a network it does not belong to is a ValueError
        self.rng = net._rng if seed is None else np.random.default_rng(seed)
        self.workers = net._worker_choice
        self.restore_point = None    # each epoch's copy of the parameters, one buffer

    def _check_hogwild(self):
        """Hogwild runs the fused per-sample plain SGD step only."""
        if self.batch_size != 1:
            raise ValueError(f"hogwild: needs batch_size=1 (per-sample SGD); got "
                             f"batch_size={self.batch_size}")
        if self.sample_weight is not None:
            raise ValueError("hogwild: runs unweighted per-sample SGD; got sample_weight")
        opt = self.optimizer
        if opt is None:
            plain = self.momentum == 0 and self.weight_decay == 0
        else:
            plain = (type(opt) is optim.SGD and opt.momentum == 0 and opt.weight_decay == 0)
        if not plain:
            raise ValueError(f"hogwild: needs plain SGD (no momentum, no weight decay); got "
                             f"{opt!r}" if opt is not None else
                             f"hogwild: needs plain SGD (no momentum, no weight decay); got "
                             f"momentum={self.momentum}, weight_decay={self.weight_decay}")

    def run(self):
        net = self.net
        history = History()
        with net._lock, progress_bar(self.progress, self.epochs * self.X.shape[0]) as bar:
            if self.optimizer is None:
                net._sgd._configure(self.lr, self.momentum, self.nesterov, self.weight_decay)
            opt = self.optimizer or net._sgd
            if self.schedule is not None:
                self.schedule._start(opt)
            net.history = history
            for cb in self.callbacks:
                if hasattr(cb, "set_network"):
                    cb.set_network(net)
            for epoch in range(self.epochs):
                logs = self._epoch(epoch, bar, opt)
                history.append(logs)
                if self.schedule is not None:
                    self.schedule._end_epoch(logs)
                bar.epoch_done(epoch, self.epochs, logs)
                if any(cb(epoch, dict(logs)) is False for cb in self.callbacks):
                    break
        return history

    def _epoch(self, epoch, bar, opt):
        net, X, T = self.net, self.X, self.targets
        n = X.shape[0]
        batch = min(self.batch_size, n)
        threads = self.n_threads if self.hogwild else min(self.n_threads, batch)
        order = (self.rng.permutation(n) if self.shuffle else np.arange(n)).astype(np.intp)
        saved = (net._snapshot(into=self.restore_point), opt._snapshot())
        self.restore_point = saved[0]
        w = self.sample_weight
        w_seen = 0.0
        lr = opt.lr
        step = chunk_samples(net.n_params, batch, net._work_per_sample(X))
        loss_sum = n_correct = 0.0
        # Where timings cut the epoch into kernel calls (the probes of
        # WorkerChoice), the epoch's loss is the sum of the minibatches'
        # losses in their order, not of the calls' sums, so that it does not
        # depend on the cuts to the last bit.  (At batch size 1 no timing
        # cuts a deterministic fit, and the fused per-sample step writes no
        # per-sample loss.)
        batch_loss = np.zeros(-(-n // batch)) if threads > 1 and batch > 1 else None
        start_time = time.perf_counter()
        start = 0
        while start < n:
            workers, limit = self.workers.choose(threads, batch, step)
            chunk = order[start:start + min(step, limit)]
            # On several threads a chunk's first minibatch (Hogwild: a sample
            # per thread) runs in a call of its own, untimed in a probe: it
            # wakes the other threads (a halted core of a virtual machine
            # takes up to a millisecond, as long as a whole probe, and can
            # run far slower for some milliseconds more) and brings their
            # share of the parameters to their cores.  A probe's calls,
            # and where it stops (WorkerChoice.pieces, give_up), are cut at
            # whole minibatches: no cut changes a result (see batch_loss).
            head = max(batch, threads) if threads > 1 else 0
            head = head if len(chunk) > head else 0
            untimed = 1 if head and self.workers.probes(workers) else 0
            finite = True
            timed = spent = pos = 0        # samples and seconds timed
            calls = self.workers.pieces(workers, len(chunk) - head, batch)
            for k, size in enumerate([head] + calls if head else calls):
                part = chunk[pos:pos + size]
                first = (start + pos) // batch          # index of its first minibatch
                pos += size
                tic = time.perf_counter()
                l_sum, c = net._train(X, T, part, batch, opt, threads,
                                      sample_weight=self.sample_weight, hogwild=self.hogwild,
                                      n_workers=workers,
                                      batch_loss=None if batch_loss is None else
                                      batch_loss[first:first - (-size // batch)])
                loss_sum += l_sum
                n_correct += c
                finite = finite and np.isfinite(l_sum)
                if k >= untimed:
                    spent += time.perf_counter() - tic
                    timed += len(part)
                    if self.workers.give_up(workers, timed, spent):
                        break           # a probe lost already: the rest on the next choice
            chunk = chunk[:pos]
            self.workers.record(threads, workers, timed, spent)
            if not (finite and net._finite()):
                net._restore(saved[0])
                opt._restore(saved[1])
                raise DivergenceError(
                    f"fit: the loss or a parameter became NaN or infinite in epoch "
                    f"{epoch + 1} with lr={lr:g}; the parameters and the optimizer state were "
                    f"restored to the start of that epoch. Try a smaller lr "
                    f"(e.g. {lr / 10:g}).")
            done = start = start + len(chunk)
            if w is not None:
                w_seen += float(w[chunk].sum())
            seen = done if w is None else max(w_seen, 1e-300)
            bar.update(len(chunk), loss_sum / seen,
                       n_correct / done if T.classification else None)
        seconds = time.perf_counter() - start_time
        if batch_loss is not None:
            loss_sum = float(batch_loss.sum())
        logs = {"loss": loss_sum / (n if w is None else float(w.sum()))}
        if T.classification:
            logs["accuracy"] = n_correct / n
        if self.validation is not None:
            val = net._evaluate(*self.validation)
            logs.update({"val_" + k: v for k, v in val.items()})
        logs["lr"] = lr
        logs["seconds"] = seconds
        logs["samples_per_s"] = n / seconds if seconds > 0 else float("inf")
        return logs

