"""How many OS threads run fit's n_threads slices: all of them, or one.

The kernel's result depends only on the number of slices (n_threads), never
on how many OS threads run them (see `train` in _core.pxi), so this choice is
free to follow the machine.  With the other cores busy, OpenMP threads that
wait for each other at every minibatch can be many times slower than one
thread alone; with them idle, all threads win.  So fit times both, on short
probes, and keeps the faster per sample, timed again after `REPROBE` chunks
-- a gap that doubles each time the probe of every thread loses (up to
`MAX_REPROBE`), since on a busy machine even a short probe costs.  One
WorkerChoice lives in each network, so repeated fit calls keep what was
learnt.
"""

__all__ = ["WorkerChoice"]


class WorkerChoice:
    """Measured seconds per sample for each worker count; the next one to use."""

    REPROBE = 32        # chunks between two probes, at first
    MAX_REPROBE = 4096
    PROBE_BATCHES = 4   # minibatches a probe runs, at least...
    PROBE_CHUNK = 4     # ...and at least 1/PROBE_CHUNK of a chunk's samples

    def __init__(self):
        self.seconds_per_sample = {}     # workers -> last measured s/sample
        self.chunks = 0                  # since the last probe of every thread
        self.gap = self.REPROBE

    def choose(self, n_threads, batch_size, chunk=0):
        """(workers, the most samples to run with them before asking again).

        A probe is long enough to time what matters: a few minibatches, and
        a share of a chunk (`chunk` samples, the fit loop's unit of work per
        kernel call), so that per-sample Hogwild at batch size 1 is not
        judged on a handful of samples, where starting the threads is all
        that a probe would measure.
        """
        if n_threads == 1:
            return 1, float("inf")
        batches = max(self.PROBE_BATCHES, chunk // (self.PROBE_CHUNK * batch_size))
        probe = batches * batch_size
        if n_threads not in self.seconds_per_sample or self.chunks >= self.gap:
            return n_threads, probe
        if 1 not in self.seconds_per_sample or self.chunks == 1:
            return 1, probe
        best = min(self.seconds_per_sample, key=self.seconds_per_sample.get)
        return best, float("inf")

    def record(self, n_threads, workers, samples, seconds):
        """After a chunk of `samples` ran on `workers` threads in `seconds`."""
        if n_threads == 1 or samples == 0:
            return
        if workers == n_threads and (self.chunks >= self.gap or not self.chunks):
            # a probe of every thread: the gap grows while one thread stays faster
            lost = seconds / samples > self.seconds_per_sample.get(1, float("inf"))
            self.gap = min(2 * self.gap, self.MAX_REPROBE) if lost else self.REPROBE
            self.chunks = 0
        self.chunks += 1
        self.seconds_per_sample[workers] = seconds / samples
