"""Issue 12, Medium 3: one runner per generation run. A second runner (another process, or the GUI
beside the CLI) is refused by name; a runner killed with kill -9 shows as interrupted, not running,
and its lease is taken over; a runner whose lease was taken stops before writing again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from engine.generate import GenerationParams, create_run, run_generation, run_status
from engine.errors import StatcoderError
from engine.store.project import Project
from tests.conftest import REPO
from tests.engine.llm_support import SCRIPTED, ScriptedBackend
from tests.engine.reliability_support import run_cli


def _run(project, quota=6):
    return create_run(project, codes=["10.71", "10.72"], quota=quota, seed=3, backend=SCRIPTED,
                      strategies=["notes"], params=GenerationParams(per_request=3))


def test_a_second_runner_is_refused_and_the_quota_is_exact(nace_project):
    run_id = _run(nace_project)
    path = nace_project.path
    first_unit_written = threading.Event()
    go_on = threading.Event()
    errors: list[BaseException] = []

    calls = {"n": 0}

    def answer(request):   # the second request waits: runner A holds the run, one unit written
        calls["n"] += 1
        if calls["n"] >= 2:
            first_unit_written.set()
            go_on.wait(30)
        return ScriptedBackend().answer(request)

    def runner_a():
        try:
            with Project.open(path) as project:
                run_generation(project, run_id, backend=ScriptedBackend(answer))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    thread = threading.Thread(target=runner_a)
    thread.start()
    try:
        assert first_unit_written.wait(30)
        with Project.open(path) as second:   # another connection, as a second process has
            with pytest.raises(StatcoderError, match=f"process {os.getpid()}"):
                run_generation(second, run_id, backend=ScriptedBackend())
            status = run_status(second, run_id)
            assert status.status == "running" and status.owner and str(os.getpid()) in status.owner
    finally:
        go_on.set()
        thread.join(60)
    assert not errors, errors
    assert run_status(nace_project, run_id).per_code == {"10.71": 6, "10.72": 6}
    assert run_status(nace_project, run_id).status == "done"


_HOLDER = textwrap.dedent("""
    import sys, time
    from engine.store.project import Project
    from engine.generate.lease import acquire
    from engine.generate.runs import _set_status
    project = Project.open(sys.argv[1])
    acquire(project, int(sys.argv[2]))
    _set_status(project, int(sys.argv[2]), "running")
    print("holding", flush=True)
    time.sleep(600)
""")


def test_a_killed_runner_shows_as_interrupted_and_is_taken_over(nace_project, capsys):
    run_id = _run(nace_project)
    path = nace_project.path
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(path), str(run_id)], stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(StatcoderError, match=f"process {holder.pid}"):
            run_generation(nace_project, run_id, backend=ScriptedBackend())
        code, out, _ = run_cli(capsys, "generate", "list", "-p", path)
        assert code == 0 and "running" in out
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
    code, out, _ = run_cli(capsys, "generate", "list", "-p", path)
    assert code == 0 and "interrupted" in out and "running" not in out
    assert run_status(nace_project, run_id).status == "interrupted"
    run_generation(nace_project, run_id, backend=ScriptedBackend())
    assert run_status(nace_project, run_id).per_code == {"10.71": 6, "10.72": 6}


def test_a_silent_runner_on_another_host_is_taken_over_only_after_the_timeout(nace_project):
    run_id = _run(nace_project)
    from engine.generate.lease import LEASE_TIMEOUT_S, this_host

    set_lease = ("UPDATE generation_runs SET status = 'running', lease_owner = 'x', lease_pid = 1,"
                 " lease_host = 'another-machine', lease_heartbeat = ? WHERE id = ?")
    nace_project.conn.execute(set_lease, (time.time() - 5, run_id))
    with pytest.raises(StatcoderError, match="another-machine"):
        run_generation(nace_project, run_id, backend=ScriptedBackend())
    # On this host a live pid keeps the lease, however old its heartbeat (one slow request) ...
    nace_project.conn.execute("UPDATE generation_runs SET lease_host = ?, lease_pid = ?, lease_heartbeat = ?"
                              " WHERE id = ?", (this_host(), os.getpid(), time.time() - 2 * LEASE_TIMEOUT_S, run_id))
    with pytest.raises(StatcoderError, match="already being run"):
        run_generation(nace_project, run_id, backend=ScriptedBackend())
    # ... while a runner on another host that fell silent is taken over.
    nace_project.conn.execute(set_lease, (time.time() - LEASE_TIMEOUT_S - 60, run_id))
    assert run_status(nace_project, run_id).status == "interrupted"
    run_generation(nace_project, run_id, backend=ScriptedBackend())
    assert run_status(nace_project, run_id).per_code == {"10.71": 6, "10.72": 6}


def test_a_runner_whose_lease_was_taken_stops_before_writing(nace_project):
    from engine.generate.lease import LeaseLostError

    run_id = _run(nace_project, quota=9)
    calls = {"n": 0}

    def answer(request):
        calls["n"] += 1
        if calls["n"] == 2:   # meanwhile another runner judged this one dead and took the run
            with Project.open(nace_project.path) as other:
                other.conn.execute("UPDATE generation_runs SET lease_owner = 'other' WHERE id = ?", (run_id,))
        return ScriptedBackend().answer(request)

    with pytest.raises(LeaseLostError):
        run_generation(nace_project, run_id, backend=ScriptedBackend(answer))
    status = run_status(nace_project, run_id)
    assert status.units == 1 and calls["n"] == 2   # the second unit was not written
