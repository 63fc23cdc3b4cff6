"""_load.OtherLoad: the CPUs other processes keep busy, from /proc/stat.

The arithmetic on made-up readings (any machine), the parser on a made-up
/proc/stat file, and one live check where Linux has the real one.
"""

import os
import subprocess
import sys
import time

import pytest

from bpfast._load import OtherLoad, Reading, read_proc_stat


class Readings:
    """Hands out the readings given, one per call."""

    def __init__(self, *readings):
        self.readings = list(readings)

    def __call__(self):
        return self.readings.pop(0)


def test_the_average_is_busy_time_less_own_time_over_wall_time():
    load = OtherLoad(Readings(Reading(10.0, 100.0, 5.0, 2),
                              Reading(10.5, 100.9, 5.4, 2),     # 0.9 busy, 0.4 ours, in 0.5 s
                              Reading(10.55, 101.0, 5.5, 2),    # too soon: the last answer
                              Reading(11.0, 101.9, 6.4, 2)))    # 1.0 busy, all of it ours
    assert load.cpus() is None                  # a first reading tells nothing yet
    assert load.cpus() == pytest.approx(1.0)
    assert load.n_cpus == 2
    assert load.cpus() == pytest.approx(1.0)
    assert load.cpus() == pytest.approx(0.0)    # measured from 10.5, not from 10.55


def test_unknown_and_stale_readings_answer_none():
    load = OtherLoad(Readings(None, Reading(0.0, 0.0, 0.0, 4), Reading(60.0, 100.0, 0.0, 4),
                              Reading(60.2, 100.2, 0.0, 4)))
    assert load.cpus() is None                  # no /proc/stat
    assert load.cpus() is None                  # a first reading
    assert load.cpus() is None                  # a minute later: starts anew
    assert load.cpus() == pytest.approx(1.0)
    own_more = OtherLoad(Readings(Reading(0.0, 0.0, 0.0, 2), Reading(1.0, 1.0, 1.02, 2)))
    own_more.cpus()
    assert own_more.cpus() == 0.0               # ticks round: never below zero


def test_the_parser_counts_the_allowed_cpus_busy_columns(tmp_path, monkeypatch):
    stat = tmp_path / "stat"
    # name user nice system idle iowait irq softirq steal guest guest_nice
    stat.write_text("cpu  900 0 90 5000 10 0 10 0 0 0\n"
                    "cpu0 300 0 30 2000 5 0 5 100 0 0\n"
                    "cpu1 200 10 20 1000 5 2 3 0 0 0\n"
                    "cpu2 400 0 40 2000 0 0 2 0 0 0\n"
                    "intr 12345 0 0\nctxt 99\n")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    reading = read_proc_stat(str(stat))
    # cpu0: 300 + 30 + 5 + 100 (steal: not ours to use); cpu1: 200 + 10 + 20 + 2 + 3
    assert reading.busy == pytest.approx((435 + 235) / os.sysconf("SC_CLK_TCK"))
    assert reading.n_cpus == 2
    assert read_proc_stat(str(tmp_path / "missing")) is None
    stat.write_text("cpuX 1 2 3\n")
    assert read_proc_stat(str(stat)) is None


@pytest.mark.skipif(not os.path.exists("/proc/stat") or not hasattr(os, "sched_getaffinity")
                    or len(os.sched_getaffinity(0)) < 2, reason="Linux's /proc/stat, two CPUs")
def test_a_spinning_process_is_seen():
    """A process that spins on a CPU of ours shows as about one CPU busy (the
    test's own spinning does not count); at least 0.5, whatever else runs."""
    cpu = min(os.sched_getaffinity(0))
    load = OtherLoad()
    spinner = subprocess.Popen([sys.executable, "-c",
                                f"import os; os.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"])
    try:
        time.sleep(0.2)
        load.cpus()
        start = time.monotonic()
        while time.monotonic() - start < 0.5:
            pass
        assert load.cpus() >= 0.5
    finally:
        spinner.kill()
        spinner.wait()


@pytest.mark.skipif(not os.path.exists("/proc/stat") or not hasattr(os, "sched_getaffinity"),
                    reason="Linux's /proc/stat")
def test_the_process_wide_sensor_has_looked_since_the_import():
    """bpfast's import takes the first reading, so that a first fit's probe
    can already ask (an interval from the import on)."""
    out = subprocess.run([sys.executable, "-c",
                          "from bpfast import _load; print(_load.LOAD.n_cpus)"],
                         capture_output=True, text=True, check=True).stdout
    assert int(out) == len(os.sched_getaffinity(0))
