"""How busy other processes keep the CPUs this process may run on.

fit asks before it probes every thread (`WorkerChoice`, _threads): beside a
busy core each barrier of a probe can wait a whole scheduler slice for a
descheduled thread, so that a probe cost up to a fifth of a one-epoch fit
(performance guide), while this answer costs one read of /proc/stat.

The answer is an average over the time since the last reading: the busy
time of the allowed CPUs (user, nice, system, irq, softirq and steal, the
time a hypervisor gave the CPU to others) minus this process's own CPU
time, over the wall time.  /proc/stat counts in ticks (1/100 s), so an
interval shorter than `MIN_INTERVAL` gives the last answer again; one longer
than `MAX_INTERVAL` says too little of now and starts anew.  Where
/proc/stat or CPU affinity do not exist (not Linux), the answer is None:
unknown, and fit probes as it would without it.  One `OtherLoad` serves the
whole process (`LOAD`), so that a new network's first probe can use what
an earlier fit's readings saw; its first reading is taken when bpfast is
imported, so that even the first fit's can.
"""

import os
import threading
import time
from typing import Callable, NamedTuple, Optional

__all__ = ["OtherLoad", "Reading", "read_proc_stat", "LOAD"]


class Reading(NamedTuple):
    """One look at the machine: when, and the CPU seconds used so far."""
    seconds: float          # time.monotonic()
    busy: float             # busy CPU seconds of the allowed CPUs, every process
    own: float              # this process's CPU seconds (all its threads)
    n_cpus: int             # how many CPUs this process may run on


def _ticks_per_second():
    try:
        return os.sysconf("SC_CLK_TCK")
    except (AttributeError, ValueError, OSError):
        return 100


_TICKS = _ticks_per_second()
# /proc/stat's columns after the cpu's name: user nice system idle iowait irq
# softirq steal ...; busy is every one but idle and iowait.
_BUSY_COLUMNS = (0, 1, 2, 5, 6, 7)


def read_proc_stat(path="/proc/stat") -> Optional[Reading]:
    """A Reading of this machine now, or None where it cannot be had."""
    try:
        allowed = os.sched_getaffinity(0)
        with open(path, "rb") as f:
            lines = f.read().splitlines()
    except (AttributeError, OSError):
        return None
    busy = 0
    for line in lines:
        if not line.startswith(b"cpu") or line.startswith(b"cpu "):
            continue
        name, *columns = line.split()
        try:
            cpu = int(name[3:])
            if cpu in allowed:
                busy += sum(int(columns[k]) for k in _BUSY_COLUMNS if k < len(columns))
        except ValueError:
            return None
    own = os.times()
    return Reading(time.monotonic(), busy / _TICKS, own.user + own.system, len(allowed))


class OtherLoad:
    """The CPUs other processes keep busy, averaged since the last reading."""

    MIN_INTERVAL = 0.1      # seconds: ten ticks of /proc/stat at least
    MAX_INTERVAL = 10.0     # seconds: an average over longer says little of now

    def __init__(self, read: Callable[[], Optional[Reading]] = read_proc_stat):
        self._read = read
        self._lock = threading.Lock()
        self._start: Optional[Reading] = None   # where the current interval began
        self._other: Optional[float] = None     # the last answer
        self.n_cpus = 0                         # of the last reading (0: none yet)

    def cpus(self) -> Optional[float]:
        """How many CPUs' worth of the allowed ones other processes used since
        the last reading (at least MIN_INTERVAL ago: else the last answer);
        None where unknown (no reading, the first one, or a stale start)."""
        now = self._read()
        if now is None:
            return None
        with self._lock:
            self.n_cpus = now.n_cpus
            start = self._start
            if start is None or now.seconds - start.seconds > self.MAX_INTERVAL:
                self._start, self._other = now, None
                return None
            elapsed = now.seconds - start.seconds
            if elapsed < self.MIN_INTERVAL:
                return self._other
            other = ((now.busy - start.busy) - (now.own - start.own)) / elapsed
            self._start, self._other = now, max(0.0, other)
            return self._other


LOAD = OtherLoad()
LOAD.cpus()             # the start of the first interval: the import
