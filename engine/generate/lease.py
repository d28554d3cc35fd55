"""One runner per generation run: a lease in the run's row (owner token, pid, host, heartbeat).

Two runners of one run each count only their own samples and overshoot the quota, so a second
runner is refused with a message naming the first. A runner that died without releasing its lease
(kill -9, a crash, a power cut) is recognised and its lease taken over: on this host by its dead
pid at once (a live pid keeps its lease however long one request takes), on another host (a
project on a shared folder) once its heartbeat is older than LEASE_TIMEOUT_S. The heartbeat is renewed
with every unit written, in the unit's own transaction, so a runner whose lease was taken over
stops before it writes another sample.
"""

from __future__ import annotations

import os
import platform
import sqlite3
import sys
import time
import uuid
from dataclasses import dataclass

from engine.errors import StatcoderError, with_hint
from engine.store.project import Project

# A heartbeat older than this marks a runner as gone, wherever it ran. One unit (one LLM request) is
# seconds to a minute even on a slow CPU; ten minutes leaves a wide margin for a machine under load.
LEASE_TIMEOUT_S = 600.0


class RunBusyError(StatcoderError):
    """Another live runner holds the run."""


class LeaseLostError(StatcoderError):
    """This runner's lease was taken over (it was silent for longer than the timeout)."""


@dataclass(frozen=True)
class Lease:
    owner: str | None
    pid: int | None
    host: str | None
    heartbeat: float | None

    def describe(self, now: float | None = None) -> str:
        age = (now or time.time()) - (self.heartbeat or 0.0)
        return f"process {self.pid} on {self.host} (last sign of life {age:.0f} s ago)"


def this_host() -> str:
    return platform.node() or "localhost"


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (never signals it)."""
    if pid <= 0:
        return False
    if sys.platform == "win32":  # os.kill would terminate the process on Windows
        import ctypes

        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        ctypes.windll.kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        ctypes.windll.kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_lease(conn: sqlite3.Connection, run_id: int) -> Lease:
    row = conn.execute("SELECT lease_owner, lease_pid, lease_host, lease_heartbeat FROM generation_runs WHERE id = ?",
                       (run_id,)).fetchone()
    return Lease(*row) if row else Lease(None, None, None, None)


def is_stale(lease: Lease, now: float | None = None) -> bool:
    """A lease nobody holds any more: no owner, a dead pid on this host, or a silent heartbeat."""
    if lease.owner is None:
        return True
    now = time.time() if now is None else now
    if lease.host == this_host() and lease.pid is not None:
        # On this machine the pid decides: a live runner may spend long on one request (a big model
        # on a slow CPU), a dead one is gone at once.
        return not pid_alive(lease.pid)
    return lease.heartbeat is None or now - lease.heartbeat > LEASE_TIMEOUT_S


def acquire(project: Project, run_id: int) -> str:
    """Take the run's lease, or raise RunBusyError naming the live runner. Returns this runner's token."""
    token = uuid.uuid4().hex
    with project.transaction() as conn:
        lease = read_lease(conn, run_id)
        if not is_stale(lease):
            raise with_hint(RunBusyError(f"generation run {run_id} is already being run by {lease.describe()}; "
                                         "wait for it to finish"), "cancel_run", str(run_id))
        conn.execute("UPDATE generation_runs SET lease_owner = ?, lease_pid = ?, lease_host = ?, lease_heartbeat = ?"
                     " WHERE id = ?", (token, os.getpid(), this_host(), time.time(), run_id))
    return token


def renew(conn: sqlite3.Connection, run_id: int, token: str) -> None:
    """Heartbeat, inside the caller's transaction; LeaseLostError if another runner took over."""
    cur = conn.execute("UPDATE generation_runs SET lease_heartbeat = ? WHERE id = ? AND lease_owner = ?",
                       (time.time(), run_id, token))
    if cur.rowcount == 0:
        raise LeaseLostError(f"generation run {run_id} was taken over by another runner after this one fell "
                             f"silent for more than {LEASE_TIMEOUT_S:.0f} s; this runner stops")


def release(project: Project, run_id: int, token: str) -> None:
    """Give the lease back (only if still ours). Never raises: it runs while another error may be on its
    way out, and a lease left behind is recognised as stale by its dead pid anyway."""
    try:
        project.conn.execute("UPDATE generation_runs SET lease_owner = NULL, lease_pid = NULL, lease_host = NULL,"
                             " lease_heartbeat = NULL WHERE id = ? AND lease_owner = ?", (run_id, token))
    except sqlite3.Error:
        pass
