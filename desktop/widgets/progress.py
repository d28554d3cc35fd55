"""A progress bar for one job with its ETA, rates (samples/s, tokens/s) and a Cancel button."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from engine.jobs import ProgressInfo

from ..jobs import Job

RATE_NAMES = {"samples_per_s": "samples/s", "tokens_per_s": "tokens/s", "rows_per_s": "rows/s",
              "evaluated_tokens_per_s": "evaluated tokens/s"}


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def describe_progress(info: ProgressInfo) -> str:
    parts = [f"{info.done:,} / {info.total:,}" if info.total else f"{info.done:,}"]
    if info.eta_s is not None and info.done < info.total:
        parts.append(f"ETA {format_duration(info.eta_s)}")
    for key, value in info.rates.items():
        if key == "parallel":
            parts.append(f"{value:g} parallel")
            continue
        parts.append(f"{value:,.1f} {RATE_NAMES.get(key, key.replace('_per_s', '/s'))}")
    if info.message:
        parts.append(info.message)
    return " · ".join(parts)


class JobProgress(QWidget):
    """Hidden while idle; follows one job at a time."""

    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None, *, cancel_text: str = "Cancel",
                 cancel_reason: str | None = None, cancelling_text: str = "cancelling…") -> None:
        super().__init__(parent)
        self.cancel_text = cancel_text
        self.cancel_reason = cancel_reason      # what the job's Cancelled says (e.g. "paused")
        self.cancelling_text = cancelling_text  # shown from the click until the job stops
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.bar = QProgressBar()
        self.bar.setMinimumWidth(200)
        self.label = QLabel()
        self.cancel_button = QPushButton(cancel_text)
        self.cancel_button.clicked.connect(self._cancel)
        layout.addWidget(self.bar, 2)
        layout.addWidget(self.label, 3)
        layout.addWidget(self.cancel_button)
        self.job: Job | None = None
        self.last_info: ProgressInfo | None = None
        self.hide()

    def attach(self, job: Job, title: str | None = None) -> None:
        self.job = job
        self.last_info = None
        self.bar.setRange(0, 0)  # busy until the first report
        self.label.setText(title or job.name)
        self.cancel_button.setText(self.cancel_text)
        self.cancel_button.setEnabled(True)
        job.signals.progress.connect(self.update_progress)
        job.signals.finished.connect(self._finished)
        self.show()

    def update_progress(self, info: ProgressInfo) -> None:
        self.last_info = info
        if info.total:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(1000 * min(1.0, info.fraction)))
        text = describe_progress(info)
        if self.stopping:
            text = f"{self.cancelling_text} {text}"
        self.label.setText(text)

    @property
    def stopping(self) -> bool:
        return self.job is not None and self.job.cancelled

    def show_stopping(self) -> None:
        """Say at once that the job was asked to stop: the button and the label, until it has."""
        self.cancel_button.setEnabled(False)
        self.cancel_button.setText(self.cancelling_text)
        self.label.setText(self.cancelling_text)

    def _cancel(self) -> None:
        if self.job is not None:
            self.job.cancel(self.cancel_reason)
            self.show_stopping()
        self.cancel_requested.emit()

    def _finished(self) -> None:
        self.job = None
        self.cancel_button.setText(self.cancel_text)
        self.hide()
