"""Processes that end with the command that started them.

``esi run`` and ``esi sweep`` start pool workers, and the workers (or ``esi run`` itself)
start Jupyter kernels. Whatever way the command ends, none of them may outlive it:

* a catchable signal to the command (SIGINT, SIGTERM, SIGHUP) raises :class:`Interrupted` in
  its main thread (:func:`interruptible`); the command then stops its pool, whose workers kill
  their kernels, removes its partial folder, and exits with 128 + the signal number;
* a SIGKILL of the command cannot be caught: every pool worker asks the Linux kernel for a
  SIGTERM when its parent dies (``prctl(PR_SET_PDEATHSIG)``, set by :func:`pool_worker_init`;
  elsewhere a thread watches the parent's pid), and its SIGTERM handler kills the process
  group of every Jupyter kernel it started (:func:`kill_kernels`); every kernel gets a SIGKILL
  when the process that started it dies (:func:`kernel_preexec`).

The same module records who owns a temporary folder (:func:`owner_record`), so that a later
command can tell a folder whose owner was killed from one still being built
(:func:`owner_is_gone`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Interrupted", "interruptible", "deferred_signals", "exit_code", "pool_worker_init",
           "set_parent_death_signal", "kernel_preexec", "register_kernel", "unregister_kernel",
           "kill_kernels", "owner_record", "owner_is_gone", "process_identity", "OWNER_FILE",
           "remove_stale_kernel_folders", "is_own_folder", "KERNEL_FOLDER_PREFIX", "MAX_DEFAULT_WORKERS",
           "default_workers"]

#: The default number of worker processes of ``esi run`` and ``esi sweep`` is at most this
#: (:func:`default_workers`): each worker holds a Jupyter kernel or an analysis in memory, and
#: with two the sensitivity notebook runs beside the other four (esi.pipeline.START_FIRST).
MAX_DEFAULT_WORKERS = 2


def default_workers() -> int:
    """The ``--workers`` default of ``esi run`` and ``esi sweep``: the CPUs this process may
    use, at most :data:`MAX_DEFAULT_WORKERS` (so 2, or 1 on a single core)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(MAX_DEFAULT_WORKERS, cpus))

#: The signals a command turns into :class:`Interrupted`.
CATCHABLE: tuple[signal.Signals, ...] = tuple(
    getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))

#: File inside a temporary folder naming the process that made it (:func:`owner_record`).
OWNER_FILE = ".esi-owner.json"

#: Prefix of the private folder of one Jupyter kernel's sockets and connection file.
KERNEL_FOLDER_PREFIX = "esi-kernel-"

_PR_SET_PDEATHSIG = 1


class Interrupted(KeyboardInterrupt):
    """The command received ``signum`` (SIGINT, SIGTERM or SIGHUP) and stops."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = int(signum)

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    def __str__(self) -> str:
        return f"interrupted by {self.signal_name}"


def exit_code(exc: BaseException) -> int:
    """The exit code of a command stopped by ``exc``: 128 + the signal number (130 SIGINT,
    143 SIGTERM, 129 SIGHUP); 130 for a KeyboardInterrupt raised otherwise."""
    return 128 + exc.signum if isinstance(exc, Interrupted) else 130


@dataclass
class _Guard:
    active: int = 0
    deferred: int = 0
    received: int | None = None


_GUARD = _Guard()


def _raise_interrupted(signum: int, frame: Any) -> None:
    if _GUARD.received is not None:  # already stopping: the clean-up is not interrupted
        return
    _GUARD.received = signum
    if not _GUARD.deferred:
        # Kernels this process started die first: a kernel that lived on through the
        # notebook client's polite shutdown would print errors once its sockets are gone.
        kill_kernels()
        raise Interrupted(signum)


@contextmanager
def interruptible() -> Iterator[_Guard]:
    """Turn SIGINT, SIGTERM and SIGHUP into :class:`Interrupted` while the block runs.

    The first signal kills the Jupyter kernels this process started (:func:`kill_kernels`)
    and raises in the main thread; later ones are ignored, so that the clean-up the exception
    triggers runs to its end. Inside :func:`deferred_signals` a signal is only
    recorded (``guard.received``), for the caller to act on afterwards. Outside the main
    thread (where Python cannot install handlers) the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield _Guard()
        return
    old = {s: signal.signal(s, _raise_interrupted) for s in CATCHABLE}
    _GUARD.active += 1
    if _GUARD.active == 1:
        _GUARD.received = None
    try:
        yield _GUARD
    finally:
        _GUARD.active -= 1
        for s, h in old.items():
            signal.signal(s, h)


@contextmanager
def deferred_signals() -> Iterator[None]:
    """A block that a signal must not cut in two (e.g. the renames that publish a folder):
    a signal arriving meanwhile is recorded in the guard of :func:`interruptible`, not
    raised."""
    _GUARD.deferred += 1
    try:
        yield
    finally:
        _GUARD.deferred -= 1


# --- parent-death signals ------------------------------------------------------------------

def _libc_prctl() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # pragma: no cover - a Linux without prctl
        return None


_PRCTL = _libc_prctl()


def set_parent_death_signal(sig: int) -> bool:
    """Ask Linux to send ``sig`` to this process when the thread that created it ends
    (``prctl(PR_SET_PDEATHSIG)``). Returns False where that is not available."""
    if _PRCTL is None:
        return False
    return _PRCTL(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)


def pool_worker_init(parent_pid: int) -> None:
    """Initializer of the local pool workers of ``esi run`` and ``esi sweep``.

    The worker gets a SIGTERM when its parent dies, however it dies (Linux: parent-death
    signal; elsewhere a daemon thread watching the parent's pid). On SIGTERM or SIGHUP it
    kills the Jupyter kernels it started, with their process groups, and exits. SIGINT is
    ignored: Ctrl-C reaches the whole foreground process group, and the parent, which gets it
    too, stops the workers itself.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for sig in CATCHABLE:
        if sig != signal.SIGINT:
            signal.signal(sig, _stop_worker)
    if not set_parent_death_signal(signal.SIGTERM):
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True,
                         name="esi-parent-watch").start()
    if os.getppid() != parent_pid:  # the parent died before the death signal was set
        _stop_worker(signal.SIGTERM, None)


def _stop_worker(signum: int, frame: Any) -> None:
    try:
        kill_kernels()
    finally:
        os._exit(128 + signum)


# --- kernels -------------------------------------------------------------------------------

#: Kernels started by this process: pid -> (process, private folder).
_KERNELS: dict[int, tuple[subprocess.Popen, str]] = {}


def kernel_preexec(parent_pid: int) -> None:
    """Run in a kernel's process between fork and exec: SIGKILL it when the process that
    started it dies (Linux), and end it at once if that happened already."""
    set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != parent_pid:
        os._exit(1)


def register_kernel(process: subprocess.Popen, folder: str) -> None:
    """Record a kernel started by this process (see :func:`kill_kernels`)."""
    _KERNELS[process.pid] = (process, folder)


def unregister_kernel(pid: int | None, folder: str | None = None) -> None:
    """Forget a kernel that was shut down; remove its private folder."""
    entry = _KERNELS.pop(pid, None) if pid is not None else None
    for f in {folder, entry[1] if entry else None} - {None}:
        shutil.rmtree(f, ignore_errors=True)


def kill_kernels() -> None:
    """Kill every kernel this process started and has not shut down, with its process group
    (a kernel runs in a session of its own, so its own children go too), wait for each, and
    remove its private folder. Safe in a signal handler."""
    for pid, (proc, folder) in list(_KERNELS.items()):
        if proc.poll() is None:  # not reaped yet: the pid is still this kernel's
            try:
                if os.getpgid(pid) == pid:
                    os.killpg(pid, signal.SIGKILL)
                else:
                    os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL does not wait
                pass
        _KERNELS.pop(pid, None)
        shutil.rmtree(folder, ignore_errors=True)


# --- owners of temporary folders --------------------------------------------------------

def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def process_identity(pid: int) -> str | None:
    """A text that names process ``pid`` and no later process reusing the number (its start
    time since boot, with the boot's id, on Linux), or None when no such process exists."""
    if sys.platform.startswith("linux"):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] in ("Z", "X"):  # a zombie has ended
            return None
        return f"linux:{_boot_id()}:{fields[19]}"
    try:
        import psutil

        p = psutil.Process(pid)
        if p.status() == psutil.STATUS_ZOMBIE:
            return None
        return f"psutil:{p.create_time():.3f}"
    except ImportError:  # pragma: no cover - psutil ships with ipykernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return f"pid:{pid}"
    except Exception:  # psutil.NoSuchProcess and friends
        return None


def owner_record() -> dict[str, Any]:
    """Who makes a temporary folder: this process's pid, host and identity."""
    pid = os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "identity": process_identity(pid)}


def write_owner(folder: str | os.PathLike[str]) -> None:
    """Write :func:`owner_record` into ``folder/OWNER_FILE`` (private, complete or absent)."""
    path = Path(folder) / OWNER_FILE
    tmp = path.with_name(f"{OWNER_FILE}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(owner_record(), fh)
    os.replace(tmp, path)


def owner_is_gone(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` holds an owner record of a process of this host that no longer
    runs. False when the record is missing or unreadable (the folder may not be esi's) or
    names another host (whose processes this one cannot see)."""
    try:
        with open(Path(folder) / OWNER_FILE, encoding="utf-8") as fh:
            rec = json.loads(fh.read(4096))
        pid, host, identity = int(rec["pid"]), rec["host"], rec["identity"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if host != socket.gethostname() or pid <= 0:
        return False
    current = process_identity(pid)
    return current is None or current != identity


def is_own_folder(path: Path) -> bool:
    """A real folder (no symbolic link) of this user."""
    try:
        st = path.lstat()
    except OSError:
        return False
    import stat as _stat

    return _stat.S_ISDIR(st.st_mode) and (not hasattr(os, "getuid") or st.st_uid == os.getuid())


def remove_stale_kernel_folders(tmp: str | os.PathLike[str] | None = None) -> list[Path]:
    """Remove the private kernel folders (``esi-kernel-*`` in the temporary folder) of this
    user whose owner was killed before it could remove them; return them."""
    import tempfile

    root = Path(tmp or tempfile.gettempdir())
    removed = []
    for d in root.glob(f"{KERNEL_FOLDER_PREFIX}*"):
        if is_own_folder(d) and owner_is_gone(d):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed
