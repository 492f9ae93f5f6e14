"""Clean interruption: real signals to real `esi run` / `esi sweep` processes.

Every process a command starts (pool workers, Jupyter kernels) carries a tag in its
environment, so that it is found even after it has been re-parented. After a catchable
signal (SIGINT, SIGTERM, SIGHUP) the command exits with 128 + the signal number, says so on
stderr without a traceback, and leaves no partial folder, no kernel folder and no process;
after a SIGKILL of the command its workers and kernels end by themselves, and the private
partial folder it leaves is removed by the next run.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from esi.io import remove_stale_partials
from esi.processes import OWNER_FILE

pytestmark = pytest.mark.slow

#: Seconds the processes of a stopped command may take to end (the issue's bound).
END_WITHIN = 15.0
#: Seconds a command may take to reach the point where it is interrupted (a busy machine).
START_WITHIN = 600.0


class Command:
    """An ``esi`` command in its own session, every descendant tagged."""

    def __init__(self, tmp_path: Path, *args: str):
        self.tag = uuid.uuid4().hex
        self.tmp = tmp_path / "tmp"  # TMPDIR: where the kernels' private folders go
        self.tmp.mkdir()
        env = {**os.environ, "ESI_TEST_TAG": self.tag, "TMPDIR": str(self.tmp)}
        env.pop("ESI_RUN_DIR", None)
        self.proc = subprocess.Popen([sys.executable, "-m", "esi.cli", *args], cwd=tmp_path,
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, start_new_session=True)

    def tagged(self) -> list[psutil.Process]:
        """Live processes (zombies excepted) carrying this command's tag."""
        found = []
        for p in psutil.process_iter():
            try:
                if (p.environ().get("ESI_TEST_TAG") == self.tag
                        and p.status() != psutil.STATUS_ZOMBIE):
                    found.append(p)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                pass
        return found

    def wait_until(self, ready, what: str) -> None:
        deadline = time.monotonic() + START_WITHIN
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out, err = self.proc.communicate()
                pytest.fail(f"the command ended before {what}: {self.proc.returncode}\n{err}")
            if ready(self.tagged()):
                return
            time.sleep(0.2)
        pytest.fail(f"no {what} within {START_WITHIN} s")

    def wait_for_kernels(self, n: int = 1) -> None:
        self.wait_until(lambda ps: sum(_is_kernel(p) for p in ps) >= n, f"{n} kernel(s)")

    def stop(self, sig: int, group: bool = False) -> tuple[int, str]:
        (os.killpg if group else os.kill)(self.proc.pid, sig)
        out, err = self.proc.communicate(timeout=300)
        return self.proc.returncode, err

    def assert_nothing_left_running(self) -> None:
        deadline = time.monotonic() + END_WITHIN
        while self.tagged() and time.monotonic() < deadline:
            time.sleep(0.2)
        left = [(p.pid, p.name()) for p in self.tagged()]
        assert not left, f"still running {END_WITHIN} s after the command ended: {left}"

    def cleanup(self) -> None:
        for p in self.tagged():  # only if a test failed: nothing of ours stays behind
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass


def _ppid(p: psutil.Process) -> int | None:
    try:
        return p.ppid()
    except psutil.Error:
        return None


def _is_kernel(p: psutil.Process) -> bool:
    try:
        return "ipykernel_launcher" in " ".join(p.cmdline())
    except psutil.Error:
        return False


@pytest.fixture
def command(tmp_path):
    started: list[Command] = []

    def start(*args: str) -> Command:
        c = Command(tmp_path, *args)
        started.append(c)
        return c

    yield start
    for c in started:
        c.cleanup()


def _grid(tmp_path: Path, body: str) -> str:
    grid = tmp_path / "grid.yaml"
    grid.write_text(body)
    return str(grid)


def _assert_clean_stop(rc: int, err: str, sig: int, out_parent: Path, c: Command) -> None:
    name = signal.Signals(sig).name
    assert rc == 128 + sig, err
    assert f"interrupted by {name}" in err and "Traceback" not in err, err
    c.assert_nothing_left_running()
    assert not list(out_parent.iterdir()), "a partial or output folder was left"
    assert not list(c.tmp.glob("esi-kernel-*")), "a kernel folder was left"


@pytest.mark.parametrize(("sig", "workers", "group"), [
    (signal.SIGINT, "2", True),    # Ctrl-C: the whole foreground process group
    (signal.SIGTERM, "1", False),  # CI time-outs, docker stop; the kernel is a child of esi
])
def test_esi_run_stops_cleanly_on_a_signal(tmp_path, command, sig, workers, group):
    out = tmp_path / "reports" / "run"
    c = command("run", "--out", str(out), "--workers", workers)
    c.wait_for_kernels(int(workers))
    partial = [p for p in out.parent.iterdir() if p.name.startswith(".run.partial-")]
    assert len(partial) == 1 and stat.S_IMODE(partial[0].stat().st_mode) == 0o700
    rc, err = c.stop(sig, group=group)
    _assert_clean_stop(rc, err, sig, out.parent, c)


def test_esi_sweep_with_reports_stops_cleanly_on_sighup(tmp_path, command):
    out = tmp_path / "reports" / "sweep"
    grid = _grid(tmp_path, "grid:\n  caliper: [0.2, 0.1]\n")
    c = command("sweep", grid, "--reports", "--workers", "2", "--out", str(out))
    c.wait_for_kernels(2)
    rc, err = c.stop(signal.SIGHUP)
    _assert_clean_stop(rc, err, signal.SIGHUP, out.parent, c)


def test_workers_and_kernels_end_when_esi_run_is_killed(tmp_path, command):
    out = tmp_path / "reports" / "run"
    c = command("run", "--out", str(out), "--workers", "2")
    c.wait_for_kernels(2)
    rc, _ = c.stop(signal.SIGKILL)
    assert rc == -signal.SIGKILL
    c.assert_nothing_left_running()  # the workers noticed by themselves, and took the kernels
    assert not list(c.tmp.glob("esi-kernel-*"))
    # What cannot be removed by a killed process: its partial folder, private, recording
    # its owner; the next run into the same folder removes it.
    (partial,) = out.parent.iterdir()
    assert partial.name.startswith(".run.partial-")
    assert stat.S_IMODE(partial.stat().st_mode) == 0o700 and (partial / OWNER_FILE).exists()
    assert remove_stale_partials(out.parent) == [partial] and not partial.exists()


def test_workers_end_when_esi_sweep_is_killed(tmp_path, command):
    out = tmp_path / "reports" / "sweep"
    grid = _grid(tmp_path, "grid:\n  caliper: [0.05, 0.1, 0.15, 0.2, 0.3, 0.5, null]\n"
                           "  ratio: [1, 2, 3]\n  replace: [false, true]\n"
                           "  method: [nearest, optimal]\n")
    c = command("sweep", grid, "--workers", "2", "--out", str(out))
    pid = c.proc.pid
    c.wait_until(lambda ps: sum(_ppid(p) == pid for p in ps) >= 2, "2 pool workers")
    rc, _ = c.stop(signal.SIGKILL)
    assert rc == -signal.SIGKILL
    c.assert_nothing_left_running()
