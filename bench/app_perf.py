"""Protocol P figures of the app itself: GUI cold start, idle and generation memory, useful samples per token.

    python -m bench.app_perf

- **Cold start:** wall time from launching `python -m desktop.app` (offscreen) to its main window shown
  with the event loop running, over several launches (the first also pays for a cold disk cache).
- **Idle app memory:** the GUI process's peak RSS at that moment, with no project open.
- **Generation memory:** peak RSS of a `statcoder generate run` child generating with the default model.
- **Useful samples per 100 generated tokens:** accepted samples after the default curation of the
  NACE 10-11 bench runs, over their completion tokens (a copy of the project file is curated).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import command_line, machine, now, write_result

READY = "STATCODER-READY "
_PROBE = (
    "import os, resource, sys, time\n"
    "os.environ.setdefault('QT_QPA_PLATFORM', 'offscreen')\n"
    "from PySide6.QtCore import QTimer\n"
    "from desktop.app import create_app\n"
    "from desktop.main_window import MainWindow\n"
    "app = create_app([sys.argv[0]])\n"
    "window = MainWindow(); window.show()\n"
    "def ready():\n"
    "    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
    f"    print({READY!r} + str(round(rss, 1)), flush=True); app.quit()\n"
    "QTimer.singleShot(0, ready)\n"
    "app.exec()\n"
)


def cold_starts(n: int) -> list[dict]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120,
                              env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
        line = next((l for l in proc.stdout.splitlines() if l.startswith(READY)), None)
        if line is None:
            raise SystemExit(f"the app did not start: {proc.stderr[-500:]}")
        out.append({"ready_s": round(time.perf_counter() - start, 3), "rss_mb": float(line[len(READY):])})
    return out


def generation_rss(project: Path) -> dict:
    """A small run with the default model in a child process; its peak RSS."""
    from engine.store.project import Project

    with Project.create(project) as p:
        from engine.classification import import_builtin

        import_builtin(p, "nace2")
    cli = [sys.executable, "-m", "engine"]
    created = subprocess.run([*cli, "generate", "create", "-p", str(project), "--code", "10.71", "--code", "11.05",
                              "--quota", "8", "--strategy", "grid", "--threads", "2", "--per-request", "8", "--json"],
                             capture_output=True, text=True, check=True)
    run_id = json.loads(created.stdout)["run_id"]
    start = time.perf_counter()
    subprocess.run([*cli, "generate", "run", "-p", str(project), str(run_id), "--quiet"], check=True)
    # The largest child so far: the generating one (the `create` child before it loads no model).
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"samples": 16, "seconds": round(time.perf_counter() - start, 1), "peak_rss_mb": round(peak / 1024, 1)}


def useful_per_100_tokens(source: Path, runs: list[int], work: Path) -> dict:
    from engine.curate import CurationOptions, curate
    from engine.store.project import Project

    copy = work / "useful.statcoder"
    shutil.copy(source, copy)
    with Project.open(copy) as project:
        result = curate(project, run_ids=runs, options=CurationOptions(label_check="auto", use_real_train=False))
        marks = ",".join("?" * len(runs))
        # Every request's completion tokens, also those of phrases that were not kept.
        completion = project.conn.execute(f"SELECT SUM(completion_tokens) FROM generation_units"
                                          f" WHERE run_id IN ({marks})", runs).fetchone()[0] or 0
    return {"runs": runs, "generated": result.samples, "accepted": result.accepted, "relabelled": result.relabeled,
            "completion_tokens": completion,
            "useful_per_100_tokens": round(100 * result.accepted / completion, 2) if completion else None}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--project", default="bench/projects/nace-10-11.statcoder",
                        help="Generated runs to count useful samples in (a copy is curated).")
    parser.add_argument("--runs", default="1,2")
    parser.add_argument("--no-generation", action="store_true", help="Skip the default-model memory figure.")
    args = parser.parse_args(argv)
    runs = [int(r) for r in args.runs.split(",")]
    starts = cold_starts(args.starts)
    with tempfile.TemporaryDirectory(prefix="statcoder-app-perf-") as tmp:
        useful = useful_per_100_tokens(Path(args.project), runs, Path(tmp))
        generation = None if args.no_generation else generation_rss(Path(tmp) / "gen.statcoder")
    ready = [s["ready_s"] for s in starts]
    data = {"command": command_line("bench.app_perf", argv), "created": now(), "machine": machine(),
            "cold_start": {"runs": starts, "first_s": ready[0], "median_s": round(statistics.median(ready), 3)},
            "idle_rss_mb": max(s["rss_mb"] for s in starts), "generation": generation, "useful": useful}
    lines = ["# App performance (protocol P)", "", f"`{data['command']}`; {data['created']}; {data['machine']['note']}.", "",
             "| figure | value |", "|---|---|",
             f"| GUI cold start to a usable main window (offscreen, {len(ready)} launches) | first {ready[0]} s, "
             f"median {data['cold_start']['median_s']} s |",
             f"| idle app peak RSS (no project open) | {data['idle_rss_mb']} MB |"]
    if generation:
        lines.append(f"| generation with the default model, peak RSS of the generating process | "
                     f"{generation['peak_rss_mb']} MB ({generation['samples']} samples in {generation['seconds']} s) |")
    lines.append(f"| useful samples (accepted after the default curation) per 100 completion tokens, runs "
                 f"{useful['runs']} of `{args.project}` | {useful['useful_per_100_tokens']} ({useful['accepted']} of "
                 f"{useful['generated']} accepted, {useful['relabelled']} of them relabelled; "
                 f"{useful['completion_tokens']:,} completion tokens) |")
    write_result("app-perf", data, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
