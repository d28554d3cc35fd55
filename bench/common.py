"""Shared pieces of the bench commands: the benchmarks, their projects, result files."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import platform
import shlex
import shutil
import sqlite3
import sys
from pathlib import Path
from typing import Any

from engine.classification import import_builtin
from engine.store.project import Project
from engine.realdata.importing import import_preset

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
WORK_DIR = BENCH_DIR / "work"

# benchmark -> (built-in classification, built-in coded texts)
BENCHMARKS = {"nace-uksic": ("nace2", "uksic-index"), "naics": ("naics2017", "naics-index")}


def command_line(module: str, argv: list[str] | None = None) -> str:
    """The exact command that produced a result, as anyone would type it from the repository root."""
    args = sys.argv[1:] if argv is None else argv
    return " ".join(["python", "-m", module, *(shlex.quote(a) for a in args)])


def open_benchmark_project(benchmark: str, path: str | None) -> Project:
    """The given project (it must hold the benchmark's classification and texts), or a fresh one in bench/work."""
    classification, real = BENCHMARKS[benchmark]
    if path:
        project = Project.open(path)
    else:
        target = WORK_DIR / f"{benchmark}.statcoder"
        if target.exists():
            project = Project.open(target)
        else:
            project = Project.create(target)
            import_builtin(project, classification)
            import_preset(project, real)
    if project.conn.execute("SELECT COUNT(*) FROM real_texts").fetchone()[0] == 0:
        raise SystemExit(f"{project.path} holds no real coded texts; import '{real}' first")
    return project


def machine() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    cpus = os.cpu_count() or 1
    note = f"{cpus} CPU cores"
    if load:
        note += f", load average {load[0]:.1f} at the end"
        if load[0] > cpus:
            note += ": other work competed for the cores, so timings are contended"
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": cpus,
            "load_avg_at_end": [round(x, 2) for x in load] if load else None, "note": note}


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def write_result(name: str, data: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    json_path, md_path = RESULTS_DIR / f"{name}.json", RESULTS_DIR / f"{name}.md"
    json_path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    md_path.write_text(markdown, encoding="utf-8")
    return json_path, md_path


def work_copy(source: Path, work: Path) -> Project:
    """A committed bench project opened through a copy under bench/work/ (models and caches land there)."""
    if not work.exists():
        work.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, work)
    return Project.open(work)


def backup_copy(source: Path, target: Path) -> None:
    """A project file copied through SQLite's backup, so that what the source's write-ahead log holds comes along."""
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


def load_result(name: str) -> dict[str, Any] | None:
    path = RESULTS_DIR / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def load_verdicts(project: Project, path: Path) -> int:
    """The LLM judge's verdicts a run on another machine saved to `path` (see save_verdicts), into the work
    project's store (table judge_verdicts): a judged bench takes hours on 2 cores, so it may span sessions."""
    if not path.exists():
        return 0
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    with project.transaction() as conn:
        conn.executemany("INSERT OR IGNORE INTO judge_verdicts (key, judge_model_sha256, verdict) VALUES (?, ?, ?)",
                         [(r["key"], r["judge_model_sha256"], json.dumps(r["verdict"])) for r in rows])
    return len(rows)


def save_verdicts(project: Project, path: Path) -> int:
    """Every verdict in the project's store, sorted, gzipped without a timestamp (so an unchanged store gives
    the same bytes), written through a temporary file so a stop mid-write leaves the old file whole."""
    rows = project.conn.execute("SELECT key, judge_model_sha256, verdict FROM judge_verdicts ORDER BY key").fetchall()
    text = "".join(json.dumps({"key": key, "judge_model_sha256": sha, "verdict": json.loads(verdict)}) + "\n"
                   for key, sha, verdict in rows)
    partial = path.with_name(path.name + ".part")
    partial.write_bytes(gzip.compress(text.encode("utf-8"), mtime=0))
    partial.replace(path)
    return len(rows)
