"""QtCharts views of an evaluation: accuracy per level (models side by side), the auto-coding curve, confusions."""

from __future__ import annotations

from PySide6.QtCharts import (
    QBarCategoryAxis, QBarSeries, QBarSet, QChart, QChartView, QHorizontalStackedBarSeries, QLineSeries,
    QValueAxis,
)
from PySide6.QtCore import QPointF, Qt, QTimer
from PySide6.QtGui import QFont, QPainter, QPen
from PySide6.QtWidgets import QWidget

from engine.evaluate.metrics import ConfusedPair, CurvePoint, EvaluationResult


class DeferredChartView(QChartView):
    """A chart view whose data is set at once and whose chart is built later, on its own.

    Building a QChart takes 5-15 ms (more on a busy machine); a page that updates three charts in
    one slot stalled the event loop. The data attributes change immediately; the chart is rebuilt
    on the next event-loop turn when the view is visible, else when it is next shown (a hidden tab
    costs nothing until the coder looks at it).
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(QChart(), parent)
        self.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.setMinimumHeight(240)
        self._dirty = False

    def _schedule(self) -> None:
        self._dirty = True
        if self.isVisible():
            QTimer.singleShot(0, self, self._draw_if_dirty)

    def _draw_if_dirty(self) -> None:
        if self._dirty:
            self._dirty = False
            self._draw()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self._draw_if_dirty()

    def _draw(self) -> None:
        raise NotImplementedError


class LevelAccuracyChart(DeferredChartView):
    """Grouped bars: one group per hierarchy level, one bar per model."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.chart().setTitle("Accuracy per level (real test texts)")
        self.models: list[str] = []
        self.results: dict[str, EvaluationResult] = {}

    def set_results(self, results: dict[str, EvaluationResult]) -> None:
        self.results = dict(results)
        self.models = list(results)
        self._schedule()

    def _draw(self) -> None:
        results = self.results
        chart = QChart()
        chart.setTitle("Accuracy per level (real test texts)")
        levels: list[str] = []
        for result in results.values():
            levels.extend(k for k in result.per_level if k not in levels)
        series = QBarSeries()
        for name, result in results.items():
            bar_set = QBarSet(name)
            bar_set.append([100 * result.per_level.get(level, 0.0) for level in levels])
            series.append(bar_set)
        chart.addSeries(series)
        x_axis = QBarCategoryAxis()
        x_axis.append(levels)
        y_axis = QValueAxis()
        y_axis.setRange(0, 100)
        y_axis.setLabelFormat("%d %%")
        chart.addAxis(x_axis, Qt.AlignmentFlag.AlignBottom)
        chart.addAxis(y_axis, Qt.AlignmentFlag.AlignLeft)
        series.attachAxis(x_axis)
        series.attachAxis(y_axis)
        chart.legend().setAlignment(Qt.AlignmentFlag.AlignBottom)
        self.setChart(chart)


def point_at(curve: list[CurvePoint], threshold: float) -> CurvePoint | None:
    """The curve point for a threshold (the curve is sampled every 0.01)."""
    best = None
    for point in curve:
        if point.threshold <= threshold + 1e-9:
            best = point
    return best


class AutoCodingChart(DeferredChartView):
    """Share auto-coded and error among them against the confidence threshold, with a marker line."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.curve: list[CurvePoint] = []
        self.title = ""
        self.threshold: float | None = None
        self.marker = QLineSeries()

    def set_curve(self, curve: list[CurvePoint], title: str) -> None:
        self.curve = list(curve)
        self.title = title
        self._schedule()

    def _draw(self) -> None:
        chart = QChart()
        chart.setTitle(self.title)
        coverage, error = QLineSeries(), QLineSeries()
        coverage.setName("auto-coded share")
        error.setName("error among auto-coded")
        for point in self.curve:
            coverage.append(point.threshold, 100 * point.coverage)
            if point.error is not None:
                error.append(point.threshold, 100 * point.error)
        self.marker = QLineSeries()
        self.marker.setName("threshold")
        pen = QPen(Qt.GlobalColor.darkGray)
        pen.setStyle(Qt.PenStyle.DashLine)
        self.marker.setPen(pen)
        x_axis, y_axis = QValueAxis(), QValueAxis()
        x_axis.setRange(0, 1)
        x_axis.setTitleText("confidence threshold (top probability)")
        y_axis.setRange(0, 100)
        y_axis.setLabelFormat("%d %%")
        chart.addAxis(x_axis, Qt.AlignmentFlag.AlignBottom)
        chart.addAxis(y_axis, Qt.AlignmentFlag.AlignLeft)
        for series in (coverage, error, self.marker):
            chart.addSeries(series)
            series.attachAxis(x_axis)
            series.attachAxis(y_axis)
        chart.legend().setAlignment(Qt.AlignmentFlag.AlignBottom)
        self.setChart(chart)
        if self.threshold is not None:
            self.marker.replace([QPointF(self.threshold, 0), QPointF(self.threshold, 100)])

    def set_threshold(self, threshold: float) -> CurvePoint | None:
        self.threshold = threshold
        self.marker.replace([QPointF(threshold, 0), QPointF(threshold, 100)])
        return point_at(self.curve, threshold)


class ConfusionChart(DeferredChartView):
    """The most confused code pairs as horizontal bars; sibling pairs (same parent) in their own colour."""

    TOP = 12

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.labels: list[str] = []
        self.shown: list[ConfusedPair] = []
        self.title = ""

    def set_pairs(self, pairs: list[ConfusedPair], title: str) -> None:
        self.shown = list(reversed(pairs[: self.TOP]))  # the largest at the top
        self.labels = [f"{p.gold} → {p.predicted}" for p in self.shown]
        self.title = title
        self._schedule()

    def _draw(self) -> None:
        shown = self.shown
        chart = QChart()
        chart.setTitle(self.title)
        siblings, others = QBarSet("siblings"), QBarSet("other pairs")
        for pair in shown:
            siblings.append(pair.count if pair.siblings else 0)
            others.append(0 if pair.siblings else pair.count)
        series = QHorizontalStackedBarSeries()
        series.append(siblings)
        series.append(others)
        chart.addSeries(series)
        y_axis = QBarCategoryAxis()
        y_axis.append(self.labels)
        font = QFont(y_axis.labelsFont())
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.85))
        y_axis.setLabelsFont(font)
        y_axis.setTruncateLabels(False)  # Qt elides category labels on a vertical axis to "…" otherwise
        top = max([p.count for p in shown] or [1])
        x_axis = QValueAxis()
        x_axis.setLabelFormat("%d")
        x_axis.setTickCount(min(top, 10) + 1)
        x_axis.setTitleText("test texts coded as the second code instead of the first")
        x_axis.setRange(0, top)
        chart.addAxis(y_axis, Qt.AlignmentFlag.AlignLeft)
        chart.addAxis(x_axis, Qt.AlignmentFlag.AlignBottom)
        series.attachAxis(y_axis)
        series.attachAxis(x_axis)
        chart.legend().setAlignment(Qt.AlignmentFlag.AlignBottom)
        self.setChart(chart)
