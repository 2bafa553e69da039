"""tinybert.run.machine: what a run's minutes were measured on, and how much of them the hypervisor
took (CPU steal, logged with every training step by train.py and tools/peer.py)."""
import sys

from tinybert.run import machine


def test_cpu_clock_reads_the_machine_line_of_proc_stat(tmp_path):
    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal guest guest_nice; then one line per CPU
    stat.write_text("cpu  100 5 20 800 10 1 2 62 30 0\ncpu0 50 2 10 400 5 0 1 31 15 0\n")
    assert machine.cpu_clock(str(stat)) == {"total": 1000, "steal": 62}   # guest time is inside user's
    assert machine.cpu_clock(str(tmp_path / "absent")) is None


def test_steal_fraction_is_the_stolen_share_of_the_ticks_between_two_readings():
    before, after = {"total": 1000, "steal": 62}, {"total": 3000, "steal": 562}
    assert machine.steal_fraction(before, after) == 0.25
    assert machine.steal_fraction({"total": 0, "steal": 0}, {"total": 3, "steal": 1}) == 0.333
    assert machine.steal_fraction(before, before) is None        # no tick passed
    assert machine.steal_fraction(None, after) is None           # no /proc/stat


def test_less_steal_takes_the_stolen_share_off_the_wall_time():
    assert machine.less_steal(12.0, 0.25) == 9.0
    assert machine.less_steal(12.0, 0.0) == 12.0
    assert machine.less_steal(12.0, None) == 12.0                 # no /proc/stat: the wall time


def test_this_machine_has_a_clock_that_moves():
    if not sys.platform.startswith("linux"):
        assert machine.cpu_clock() is None
        return
    first = machine.cpu_clock()
    sum(i * i for i in range(3_000_000))                          # some tens of milliseconds of CPU
    second = machine.cpu_clock()
    assert second["total"] > first["total"] and second["steal"] >= first["steal"]
    assert 0 <= machine.steal_fraction(first, second) <= 1
