"""The HTML evaluation report with PNG charts (matplotlib, drawn off-screen)."""

from __future__ import annotations

import html
from pathlib import Path

from engine.atomic import AtomicFiles, prepare_output_folder
from engine.evaluate.metrics import EvaluationResult


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _threshold(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def plain(text: str) -> str:
    """User text as a matplotlib label: `$` would start mathtext, which fails or draws maths."""
    return str(text).replace("$", r"\$")


def _charts(result: EvaluationResult, folder: Path, outputs: AtomicFiles) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files: dict[str, str] = {}

    def save(fig, name: str) -> None:
        try:
            fig.tight_layout()
            fig.savefig(outputs.path(folder / name), dpi=90, format="png")
        finally:
            plt.close(fig)
        files[name.removesuffix(".png")] = name

    fig, ax = plt.subplots(figsize=(6, 3.2))
    names, values = [plain(n) for n in result.per_level], list(result.per_level.values())
    ax.bar(names, values, color="#4477aa")
    for i, v in enumerate(values):
        ax.text(i, v + 0.01, f"{v:.0%}", ha="center", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy")
    ax.set_title("Accuracy per hierarchy level")
    save(fig, "per_level.png")

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for curve, label in ((result.curve_prob, "top probability"), (result.curve_margin, "top-1 minus top-2")):
        points = [p for p in curve if p.error is not None]
        ax.plot([p.coverage for p in points], [p.error for p in points], label=label)
    ax.set_xlabel("share auto-coded")
    ax.set_ylabel("error rate among auto-coded")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, None)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("Auto-coding curve")
    save(fig, "auto_coding.png")

    fig, ax = plt.subplots(figsize=(6, 3.6))
    filled = [b for b in result.reliability if b.count]
    ax.plot([0, 1], [0, 1], color="#999", linestyle="--", linewidth=1)
    ax.plot([b.confidence for b in filled], [b.accuracy for b in filled], marker="o")
    ax.set_xlabel("mean top probability")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability (ECE {result.ece:.3f})")
    save(fig, "reliability.png")

    top = result.confused[:15]
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(top) + 1.2))
    labels = [plain(f"{p.gold} → {p.predicted}{' (siblings)' if p.siblings else ''}") for p in reversed(top)]
    ax.barh(labels, [p.count for p in reversed(top)], color=["#cc6677" if p.siblings else "#4477aa" for p in reversed(top)])
    ax.set_xlabel("test texts")
    ax.set_title("Most-confused pairs (gold → predicted)")
    ax.tick_params(axis="y", labelsize=7)
    save(fig, "confused.png")

    scored = [s for s in result.per_code if s.support and s.train_count is not None]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.scatter([s.train_count for s in scored], [s.f1 for s in scored], s=10, alpha=0.6)
    if scored and max(s.train_count or 0 for s in scored) > 0:
        ax.set_xscale("symlog")
    ax.set_xlabel("training lines for the code")
    ax.set_ylabel("F1 on test")
    ax.set_title("Per-code F1 against training counts")
    save(fig, "f1_vs_train.png")
    return files


def write_report(result: EvaluationResult, folder: str | Path, *, title: str = "Evaluation",
                 project: object | None = None) -> Path:
    """Write index.html and its PNG charts into folder; returns the HTML file.

    The folder may not be, or lie inside, the project's models folder (`project`: a Project or its
    path); each file is written whole or not at all. Codes and titles are user text: they are escaped
    in the HTML and kept out of matplotlib's mathtext (a code with `$...$` would be parsed as maths)."""
    folder = prepare_output_folder(folder, project=project)
    with AtomicFiles(project=project) as outputs:   # the page and its charts appear together or not at all
        return _write(result, folder, outputs, title)


def _write(result: EvaluationResult, folder: Path, outputs: AtomicFiles, title: str) -> Path:
    charts = _charts(result, folder, outputs)
    esc = html.escape
    rows_level = "".join(f"<tr><td>{esc(k)}</td><td>{_pct(v)}</td></tr>" for k, v in result.per_level.items())
    rows_conf = "".join(f"<tr><td>{esc(p.gold)}</td><td>{esc(p.predicted)}</td><td>{p.count}</td>"
                        f"<td>{'yes' if p.siblings else 'no'}</td></tr>" for p in result.confused)
    rows_thr = "".join(f"<tr><td>{esc(k)}</td><td>{_threshold(v.get('threshold'))}</td>"
                       f"<td>{_pct(v.get('coverage'))}</td><td>{_pct(v.get('error'))}</td></tr>"
                       for k, v in result.thresholds.items())
    rows_code = "".join(f"<tr><td>{esc(s.code)}</td><td>{s.support}</td><td>{s.predicted}</td><td>{_pct(s.precision)}</td>"
                        f"<td>{_pct(s.recall)}</td><td>{_pct(s.f1)}</td><td>{'' if s.train_count is None else s.train_count}</td></tr>"
                        for s in sorted(result.per_code, key=lambda s: (s.f1, -s.support)))
    fb = result.fallback
    fallback = ("<p>No texts.</p>" if fb is None else
                f"<p>Below a top probability of {fb.threshold:.2f}, {fb.n_unsure} texts ({_pct(fb.share_unsure)}) are unsure. "
                f"Their top code is right for {_pct(fb.leaf_accuracy_unsure)}; the suggested parent is right for "
                f"{_pct(fb.parent_accuracy_unsure)}. Accuracy with fallback (confident leaf or unsure parent right): "
                f"{_pct(fb.accuracy_with_fallback)}.</p>")
    extra = "".join(f"<li>{esc(str(k))}: {esc(str(v))}</li>" for k, v in result.extra.items())
    images = "".join(f'<figure><img src="{esc(name)}" alt="{esc(key)}"></figure>' for key, name in charts.items())
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto;}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:left}} figure{{display:inline-block;margin:0.5em}}</style></head>
<body><h1>{esc(title)}</h1>
<p>{result.n} test texts. Top-1 <b>{_pct(result.top1)}</b>, top-5 <b>{_pct(result.top5)}</b>,
macro-F1 <b>{result.macro_f1:.3f}</b>, ECE {result.ece:.3f}.</p><ul>{extra}</ul>
{images}
<h2>Accuracy per level</h2><table><tr><th>level</th><th>accuracy</th></tr>{rows_level}</table>
<h2>Auto-coding thresholds</h2><p>The threshold that auto-codes the most texts at or below each target error rate
(prob = top probability, margin = top-1 minus top-2).</p>
<table><tr><th>rule @ target error</th><th>threshold</th><th>auto-coded</th><th>error</th></tr>{rows_thr}</table>
<h2>Hierarchical fallback</h2>{fallback}
<h2>Most-confused pairs</h2><table><tr><th>gold</th><th>predicted</th><th>texts</th><th>siblings</th></tr>{rows_conf}</table>
<h2>Per code</h2><table><tr><th>code</th><th>support</th><th>predicted</th><th>precision</th><th>recall</th><th>F1</th>
<th>training lines</th></tr>{rows_code}</table>
</body></html>
"""
    outputs.path(folder / "index.html").write_text(page, encoding="utf-8")
    return folder / "index.html"
