"""How many OS threads run fit's n_threads slices: all of them, or one.

The kernel's result depends only on the number of slices (n_threads), never
on how many OS threads run them (see `train` in _core.pxi), so this choice is
free to follow the machine.  With the other cores busy, OpenMP threads that
wait for each other at every minibatch can be many times slower than one
thread alone; with them idle, all threads win.  So fit times both, on short
probes, and keeps the faster per sample, timed again after `REPROBE` chunks.
A probe of every thread that loses is repeated at once: on this project's
virtual machine the first milliseconds on two threads after a pause were
often several times slower than the rest (the second core waking), which
alone made a probe lose.  From the second loss in a row the gap doubles
with each loss (up to `MAX_REPROBE`), since on a busy machine even a short
probe costs.

A probe times one thread first, which costs nothing whatever the load, then
every thread, in `PROBE_PIECES` kernel calls: once every thread is already
`GIVE_UP` times slower per sample than one thread, the rest of its probe is
not run (beside a busy core each barrier of the probe can wait a whole
scheduler slice for a descheduled thread, and a whole probe then cost a
fifth of a one-epoch fit).  The calls are cut at whole minibatches, so the
result does not change.  One WorkerChoice lives in each network, so repeated
fit calls keep what was learnt.

Before a probe it asks how busy other processes kept the CPUs since the
last look (`_load.OtherLoad`, from /proc/stat): when fewer CPUs than
threads were free, there is no probe at all, and one thread runs until the
next probe is due.  Where that is unknown (not Linux, no earlier reading),
the probes decide alone.
"""

from . import _load

__all__ = ["WorkerChoice"]


class WorkerChoice:
    """Measured seconds per sample for each worker count; the next one to use."""

    REPROBE = 32        # chunks between two probes, at first
    MAX_REPROBE = 4096
    PROBE_BATCHES = 4   # minibatches a probe runs, at least...
    PROBE_CHUNK = 4     # ...and at least 1/PROBE_CHUNK of a chunk's samples
    PROBE_PIECES = 4    # kernel calls of a probe of every thread
    GIVE_UP = 1.25      # ...which stops once this much slower per sample than one
    FREE = 0.5          # how much of the CPUs the threads need others may take

    def __init__(self, load=None):
        self.load = _load.LOAD if load is None else load    # other processes' CPUs
        self.seconds_per_sample = {}     # workers -> last measured s/sample
        self.chunks = 0                  # since the last probe of every thread
        self.gap = self.REPROBE
        self.probing = 0                 # workers of the probe under way (0: none)
        self.losses = 0                  # probes of every thread lost in a row

    def choose(self, n_threads, batch_size, chunk=0):
        """(workers, the most samples to run with them before asking again).

        A probe is long enough to time what matters: a few minibatches, and
        a share of a chunk (`chunk` samples, the fit loop's unit of work per
        kernel call), so that per-sample Hogwild at batch size 1 is not
        judged on a handful of samples, where starting the threads is all
        that a probe would measure.  One thread is probed first, then every
        thread (see `pieces` and `give_up`).
        """
        if n_threads == 1:
            return 1, float("inf")
        batches = max(self.PROBE_BATCHES, chunk // (self.PROBE_CHUNK * batch_size))
        probe = batches * batch_size
        if n_threads not in self.seconds_per_sample or self.chunks >= self.gap:
            if self.probing == 0 and self.others_busy(n_threads):
                # no probe: one thread until the next is due, which asks again
                self.seconds_per_sample[n_threads] = float("inf")
                self.seconds_per_sample.setdefault(1, float("inf"))
                self.chunks = 0
                self.gap = max(self.gap, self.REPROBE)
                return 1, float("inf")
            self.probing = n_threads if self.probing == 1 else 1
            return self.probing, probe
        self.probing = 0
        # the fastest; on a tie (both unmeasured) the fewest threads
        best = min(self.seconds_per_sample, key=lambda w: (self.seconds_per_sample[w], w))
        return best, float("inf")

    def others_busy(self, n_threads):
        """Whether fewer CPUs are free than n_threads need (up to FREE of a
        CPU short), by the load sensor: the CPUs this process may run on, less
        those other processes used; so more threads than CPUs never probe.
        False where the sensor does not know."""
        other = self.load.cpus()
        if other is None:
            return False
        return self.load.n_cpus - other < n_threads - self.FREE

    def probes(self, workers):
        """Whether the chunk about to run on `workers` is a probe of every
        thread (its first minibatch, which wakes the threads, is then not
        timed; in any other chunk it is part of what the workers cost)."""
        return self.probing == workers > 1

    def pieces(self, workers, samples, batch_size):
        """The lengths of the kernel calls that run `samples` (whole batches)
        on `workers`: PROBE_PIECES of whole batches during a probe of every
        thread, so that it can stop early, else one call."""
        batches = -(-samples // batch_size)
        if not self.probes(workers) or batches < 2:
            return [samples]
        n = min(self.PROBE_PIECES, batches)
        cuts = [min(samples, k * batches // n * batch_size) for k in range(n + 1)]
        return [b - a for a, b in zip(cuts[:-1], cuts[1:])]

    def give_up(self, workers, samples, seconds):
        """Whether a probe of every thread, after `samples` in `seconds`, has
        already lost to one thread by GIVE_UP: the rest is then not run."""
        one = self.seconds_per_sample.get(1)
        return (self.probes(workers) and one is not None and samples > 0
                and seconds / samples > self.GIVE_UP * one)

    def record(self, n_threads, workers, samples, seconds):
        """After a chunk of `samples` ran on `workers` threads in `seconds`."""
        if n_threads == 1 or samples == 0:
            return
        if workers == n_threads and self.probing == n_threads:
            # a probe of every thread: a first loss is checked at once (a
            # hiccup of the machine can slow a short probe many times), then
            # the gap grows while one thread stays faster
            lost = seconds / samples > self.seconds_per_sample.get(1, float("inf"))
            self.losses = self.losses + 1 if lost else 0
            self.gap = (self.REPROBE if not lost else 1 if self.losses == 1 else
                        min(self.REPROBE << (self.losses - 2), self.MAX_REPROBE))
            self.chunks = 0
            self.probing = 0
        self.chunks += 1
        self.seconds_per_sample[workers] = seconds / samples
