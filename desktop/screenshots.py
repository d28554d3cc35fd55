"""Screenshots of every page of the real app on a NACE project: `python -m desktop.screenshots OUT [--project P]`.

Run it under an X server with room for the 1440x900 window to capture it as the screen shows it
(`xvfb-run -a -s "-screen 0 1440x900x24" python -m desktop.screenshots docs/screenshots`; xvfb-run's
default screen is narrower, and what falls off the screen would be black); under the offscreen
platform it falls back to rendering the widget. The Code page shows the LLM judge's second opinion
(Ctrl+J), from the demo's Gemma 3 270M test model.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from PySide6.QtCore import QEventLoop, QSettings, QTimer
from PySide6.QtWidgets import QApplication

from engine.classification import import_builtin
from engine.evaluate.metrics import evaluate_model
from engine.coders.fasttext.bindings import FastTextParams
from engine.store.project import Project
from engine.realdata.importing import import_preset
from engine.coders.data import DataMix
from engine.coders.fasttext.training import TrainOptions, train_fasttext
from engine.classification import leaf_codes_under

from .app import create_app
from .main_window import MainWindow

DEMO_DIVISIONS = ["10", "11"]
WINDOW_SIZE = (1440, 900)


def build_demo_project(path: Path) -> Path:
    """NACE Rev. 2 with the UK SIC index; a small Gemma run on group 10.7, curated; a fastText
    coder for divisions 10-11 on notes, real and synthetic texts, evaluated."""
    from engine.curate import curate
    from engine.generate import create_run, run_generation
    from engine.llm import BackendSettings, HardwareSettings, add_model, test_model_path

    hardware = HardwareSettings(threads=1, n_ctx=1024)  # one thread: fast even on a busy machine
    with Project.create(path) as project:
        import_builtin(project, "nace2")
        import_preset(project, "uksic-index")
        model = add_model(test_model_path())
        project.set_setting("llm_backend", {"kind": "llama-cpp", "hardware": {"threads": 1, "n_ctx": 1024,
                                                                           "n_gpu_layers": 0}})
        run_id = create_run(project, codes=leaf_codes_under(project, ["10.7"]), quota=6, seed=1,
                            strategies=["notes", "grid"], model=model.sha256,
                            backend=BackendSettings(hardware=hardware), name="Gemma demo: group 10.7")
        run_generation(project, run_id)
        curate(project, run_ids=[run_id])
        mix = DataMix(notes=1, real=1, synthetic=1, codes=leaf_codes_under(project, DEMO_DIVISIONS))
        params = FastTextParams(epoch=50, dim=50, bucket=200_000, thread=2)
        trained = train_fasttext(project, mix, TrainOptions(params=params, name="fastText notes+real+synthetic"))
        evaluate_model(project, trained.model_id, codes=mix.codes)
    return path


def settle(ms: int = 400) -> None:
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def wait_for(condition, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        settle(50)


def capture(window: MainWindow, path: Path) -> None:
    settle()
    if QApplication.platformName() == "offscreen":
        image = window.grab()
    else:
        image = window.screen().grabWindow(window.winId())
    image.save(str(path))
    print(path)


def stage(window: MainWindow, key: str) -> None:
    """Put a page in a state that shows what it is for."""
    page = window.pages[key]
    if key == "classification":
        page.reveal("10.71")
    elif key == "code":
        panel = page.panel
        for text in ("brewing lager in a microbrewery", "bakery making bread and rolls"):
            panel.text.setText(text)
            wait_for(lambda: panel.suggested_text == panel.text.text() and bool(panel.suggestions))
            if text.startswith("brewing"):
                panel.accept_current()    # one decision in the recent list
        # The judge's second opinion (Ctrl+J): the demo's default LLM is the Gemma test model. Wait for its
        # worker thread to answer (or fail), not for a fixed time.
        panel.second_opinion()
        wait_for(lambda: not panel.judging, 600)
        if panel.opinion is None:
            raise RuntimeError(f"no second opinion for the Code page: {panel.status.text()}")
        if panel.table.rowCount() > 1:
            panel.table.setCurrentCell(1, 0)   # the notes beside follow the highlighted code
    elif key == "train":
        page.threshold.setValue(60)
        page.charts.setCurrentIndex(1)
    elif key == "review":
        from engine.curate.settings import CurationSettings

        page.run_curation(CurationSettings())   # as "Run curation…" does with its defaults: the summary shows
        wait_for(lambda: page.curation_job is None, 120)
        page.flag_filter.setCurrentText("any flag")
        page.reload()
    elif key == "generate":
        runs = page.runs
        if runs.count():
            page.run_id = int(runs.itemData(runs.count() - 1))
            page.poll()
    elif key == "models":
        page.test_backend()
        wait_for(lambda: page.last_device is not None, 60)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--project", type=Path, help="An existing project (default: build the NACE demo project)")
    parser.add_argument("--build-only", type=Path, metavar="PATH", help="Only build the demo project at PATH")
    args = parser.parse_args(argv)
    if args.build_only:
        build_demo_project(args.build_only)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    app = create_app([sys.argv[0]])
    room = app.primaryScreen().availableGeometry()
    if QApplication.platformName() != "offscreen" and (room.width() < WINDOW_SIZE[0] or room.height() < WINDOW_SIZE[1]):
        parser.error(f"the screen is {room.width()}x{room.height()}, smaller than the {WINDOW_SIZE[0]}x{WINDOW_SIZE[1]} "
                     'window: run it under xvfb-run -a -s "-screen 0 1440x900x24"')
    with tempfile.TemporaryDirectory(prefix="statcoder-shots-") as tmp:
        os.environ.setdefault("STATCODER_DATA_DIR", str(Path(tmp) / "data"))
        # Keep the user's own recent projects and window geometry out of it (and untouched).
        QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(Path(tmp) / "settings"))
        project = args.project or build_demo_project(Path(tmp) / "nace-demo.statcoder")
        window = MainWindow()
        window.resize(*WINDOW_SIZE)
        window.show()
        window.open_project(project)
        for number, key in enumerate(window.pages, start=1):
            window.show_page(key)
            window.messages.clear()   # a notice from the page before is not this page's
            stage(window, key)
            capture(window, args.out / f"{number:02d}-{key}.png")
            if key == "train":
                window.pages[key].charts.setCurrentIndex(2)
                capture(window, args.out / f"{number:02d}-{key}-confusions.png")
        window.close()
    app.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
