"""Dependency check and installer: torch, optuna, scipy, statsmodels into the QGIS profile.

QGIS ships its own Python with numpy and GDAL; the packages DeformCast needs beyond that are
installed with pip into a folder inside the active QGIS profile,
``<profile>/python/dependencies`` (see :func:`dependency_dir`), never into QGIS's own Python.
The plugin puts that folder on ``sys.path`` at start (:func:`add_dependency_path`), *after*
QGIS's own folders, so QGIS's numpy always wins over any numpy pip may place there.

The pip command is shown to the user before it runs, and runs as a background ``QProcess``
(QGIS stays usable; Cancel stops it). A constraints file pins numpy to the version QGIS
already has (numpy 2 would break QGIS's GDAL bindings) and keeps the plugin's other pins.
torch comes from the PyTorch index of the chosen build: CPU, or CUDA 12.6 / 12.8.
"""
from __future__ import annotations

import importlib
import os
import shlex
import shutil
import sys
from typing import Callable, Dict, List, Optional, Sequence

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QProcess, Qt
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from ..algorithms import deps

PLUGIN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYPI = "https://pypi.org/simple"
#: torch build -> (label, PyTorch wheel index)
TORCH_BUILDS: Dict[str, tuple] = {
    "cpu": ("CPU only (works everywhere)", "https://download.pytorch.org/whl/cpu"),
    "cu126": ("NVIDIA CUDA 12.6", "https://download.pytorch.org/whl/cu126"),
    "cu128": ("NVIDIA CUDA 12.8", "https://download.pytorch.org/whl/cu128"),
}

# scoped enum names work with PyQt5 (5.15) and PyQt6 alike
_CHECKED, _UNCHECKED = Qt.CheckState.Checked, Qt.CheckState.Unchecked
_ITEM_ENABLED = Qt.ItemFlag.ItemIsEnabled
_ITEM_CHECKABLE = Qt.ItemFlag.ItemIsUserCheckable


# --------------------------------------------------------------------------------------------
# paths and commands (no widgets)
# --------------------------------------------------------------------------------------------
def dependency_dir() -> str:
    """``<QGIS profile>/python/dependencies``: where the installer puts packages."""
    return os.path.join(QgsApplication.qgisSettingsDirPath(), "python", "dependencies")


def add_dependency_path(path: Optional[str] = None) -> str:
    """Put the dependency folder on ``sys.path`` (last, so QGIS's own packages win).

    Call it once at plugin start, before anything imports torch/optuna. Safe to call again.
    Returns the folder (it need not exist yet; nothing is added then).
    """
    path = os.path.abspath(path or dependency_dir())
    if os.path.isdir(path) and path not in sys.path:
        sys.path.append(path)
        importlib.invalidate_caches()
    return path


def python_executable() -> str:
    """The Python interpreter behind QGIS, for pip (``sys.executable`` is the QGIS binary on some platforms):
    :func:`deps.python_interpreter`, else ``python3``."""
    try:
        return deps.python_interpreter()
    except deps.MissingDependency:
        return shutil.which("python3") or shutil.which("python") or "python3"


def constraints_text() -> str:
    """Pins for pip: QGIS's numpy exactly, plus the plugin's other pins (constraints.txt)."""
    import numpy

    lines = ["# written by DeformCast: keep QGIS's own numpy (its GDAL bindings need it)",
             f"numpy=={numpy.__version__}"]
    src = os.path.join(PLUGIN_DIR, "constraints.txt")
    if os.path.exists(src):
        with open(src, encoding="utf-8") as fh:
            for ln in fh:
                s = ln.strip()
                name = s.split("<")[0].split(">")[0].split("=")[0].split("!")[0].strip().lower()
                if not s or s.startswith("#") or name in ("numpy", "pytest", "pytest-qgis", "pytest-timeout"):
                    continue
                lines.append(s)
    return "\n".join(lines) + "\n"


def write_constraints(folder: str) -> str:
    os.makedirs(folder, exist_ok=True)
    p = os.path.join(folder, "deformcast-constraints.txt")
    with open(p, "w", encoding="utf-8") as fh:
        fh.write(constraints_text())
    return p


def install_commands(names: Sequence[str], target: Optional[str] = None, build: str = "cpu",
                     python: Optional[str] = None, constraints: Optional[str] = None) -> List[List[str]]:
    """pip commands (argument lists) that install ``names`` into ``target``.

    torch gets its own command with the PyTorch index of ``build`` first (PyPI as the extra
    index for torch's own dependencies); the other packages come from PyPI.
    """
    if build not in TORCH_BUILDS:
        raise ValueError(f"Unknown torch build '{build}'. Valid: {', '.join(TORCH_BUILDS)}.")
    target = target or dependency_dir()
    python = python or python_executable()
    constraints = constraints or os.path.join(target, "deformcast-constraints.txt")
    base = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-warn-script-location",
            "--upgrade", "--target", target, "-c", constraints]
    names = [n for n in names if n != "numpy"]
    cmds = []
    if "torch" in names:
        cmds.append(base + ["--index-url", TORCH_BUILDS[build][1], "--extra-index-url", PYPI,
                            deps.REQUIRED["torch"]])
    others = [deps.REQUIRED.get(n, n) for n in names if n != "torch"]
    if others:
        cmds.append(base + others)
    return cmds


def command_text(cmds: Sequence[Sequence[str]]) -> str:
    """The commands as a user would type them (shown in the dialog)."""
    return "\n".join(" ".join(shlex.quote(a) for a in c) for c in cmds)


def suggested_build() -> str:
    return "cu128" if shutil.which("nvidia-smi") else "cpu"


# --------------------------------------------------------------------------------------------
# the dialog
# --------------------------------------------------------------------------------------------
class DependencyDialog(QDialog):
    """Installed/missing table, torch build choice, the command, Install / Cancel, and a log.

    ``state`` is one of ``ready`` (something to install), ``complete`` (nothing missing),
    ``running``, ``done``, ``failed``, ``cancelled``.
    """

    def __init__(self, parent=None, status_fn: Callable[[], Dict[str, bool]] = deps.status,
                 target: Optional[str] = None, python: Optional[str] = None):
        super().__init__(parent)
        self.setWindowTitle("DeformCast dependencies")
        self.resize(760, 520)
        self.status_fn = status_fn
        self.target = target or dependency_dir()
        self.python = python or python_executable()
        self.state = "ready"
        self.process: Optional[QProcess] = None
        self._queue: List[List[str]] = []

        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Package", "Status", "Requirement"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.build = QComboBox()
        for key, (label, url) in TORCH_BUILDS.items():
            self.build.addItem(f"{label} — {url}", key)
        self.build.setCurrentIndex(list(TORCH_BUILDS).index(suggested_build()))
        self.where = QLabel(f"Installs into: <code>{self.target}</code> (added to Python's path by the "
                            "plugin at start; restart QGIS after installing).")
        self.where.setWordWrap(True)
        self.command = QPlainTextEdit()
        self.command.setReadOnly(True)
        self.command.setMaximumHeight(110)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.state_label = QLabel()
        self.install_btn = QPushButton("Install selected")
        self.cancel_btn = QPushButton("Cancel")
        self.close_btn = QPushButton("Close")

        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("Python packages DeformCast needs beyond QGIS (tick to install or reinstall):"))
        lay.addWidget(self.table)
        row = QHBoxLayout()
        row.addWidget(QLabel("torch build"))
        row.addWidget(self.build, 1)
        lay.addLayout(row)
        lay.addWidget(self.where)
        lay.addWidget(QLabel("Command that will run:"))
        lay.addWidget(self.command)
        lay.addWidget(self.log, 1)
        row = QHBoxLayout()
        row.addWidget(self.state_label, 1)
        for b in (self.install_btn, self.cancel_btn, self.close_btn):
            row.addWidget(b)
        lay.addLayout(row)

        self.build.currentIndexChanged.connect(self._update_command)
        self.table.itemChanged.connect(self._update_command)
        self.install_btn.clicked.connect(self.install)
        self.cancel_btn.clicked.connect(self.cancel)
        self.close_btn.clicked.connect(self.close)
        self.refresh()

    # --- state -----------------------------------------------------------------------------
    def refresh(self) -> Dict[str, bool]:
        st = self.status_fn()
        self.table.blockSignals(True)
        self.table.setRowCount(0)
        for name, ok in st.items():
            if name == "numpy":  # QGIS's own; never installed by us
                continue
            r = self.table.rowCount()
            self.table.insertRow(r)
            it = QTableWidgetItem(name)
            it.setFlags(_ITEM_ENABLED | _ITEM_CHECKABLE)
            it.setCheckState(_UNCHECKED if ok else _CHECKED)
            self.table.setItem(r, 0, it)
            self.table.setItem(r, 1, QTableWidgetItem("✔ installed" if ok else "✘ missing"))
            self.table.setItem(r, 2, QTableWidgetItem(deps.REQUIRED.get(name, name)))
        self.table.blockSignals(False)
        self.table.resizeColumnsToContents()
        self.status = st
        if self.state not in ("running",):
            self.state = "ready" if any(not ok for n, ok in st.items() if n != "numpy") else "complete"
        self._update_command()
        return st

    def selected(self) -> List[str]:
        return [self.table.item(r, 0).text() for r in range(self.table.rowCount())
                if self.table.item(r, 0).checkState() == _CHECKED]

    def set_selected(self, names: Sequence[str]) -> None:
        for r in range(self.table.rowCount()):
            it = self.table.item(r, 0)
            it.setCheckState(_CHECKED if it.text() in names else _UNCHECKED)
        self._update_command()

    def torch_build(self) -> str:
        return self.build.currentData()

    def commands(self) -> List[List[str]]:
        return install_commands(self.selected(), self.target, self.torch_build(), self.python)

    def _update_command(self, *_):
        sel = self.selected()
        self.command.setPlainText(command_text(self.commands()) if sel else "(nothing selected)")
        self.build.setEnabled("torch" in sel and self.state != "running")
        running = self.state == "running"
        self.install_btn.setEnabled(bool(sel) and not running)
        self.cancel_btn.setEnabled(running)
        self.table.setEnabled(not running)
        text = {"ready": "Some packages are missing.", "complete": "Everything is installed.",
                "running": "Installing …", "done": "Installed. Restart QGIS to use the new packages.",
                "failed": "pip failed: see the log above.", "cancelled": "Cancelled."}[self.state]
        self.state_label.setText(text)

    # --- running ---------------------------------------------------------------------------
    def install(self, commands: Optional[List[List[str]]] = None) -> bool:
        """Run the (shown) commands one after the other in a QProcess."""
        if self.state == "running":
            return False
        cmds = commands if commands is not None else self.commands()
        if not cmds:
            return False
        os.makedirs(self.target, exist_ok=True)
        if commands is None:
            write_constraints(self.target)
        self._queue = [list(c) for c in cmds]
        self.state = "running"
        self.log.clear()
        self._update_command()
        self._next()
        return True

    def _next(self):
        if not self._queue:
            self.state = "done"
            add_dependency_path(self.target)
            self.refresh()
            self.state = "done"
            self._update_command()
            return
        cmd = self._queue.pop(0)
        self.log.appendPlainText("$ " + " ".join(shlex.quote(a) for a in cmd))
        p = QProcess(self)
        p.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        p.readyReadStandardOutput.connect(lambda p=p: self.log.appendPlainText(
            bytes(p.readAllStandardOutput()).decode("utf-8", "replace").rstrip()))
        p.finished.connect(self._process_finished)
        p.errorOccurred.connect(self._process_error)
        self.process = p
        p.start(cmd[0], cmd[1:])

    def _process_error(self, err):
        if err == QProcess.ProcessError.FailedToStart and self.state == "running":
            self.log.appendPlainText(f"Could not start {self.python}: is this QGIS's Python?")
            self._queue = []
            self.state = "failed"
            self.process = None
            self._update_command()

    def _process_finished(self, code, status=None):
        self.process = None
        if self.state == "cancelled":
            self._queue = []
            self._update_command()
            return
        if code != 0:
            self._queue = []
            self.state = "failed"
            self.log.appendPlainText(f"(exit code {code})")
            self._update_command()
            return
        self._next()

    def cancel(self):
        if self.state != "running":
            return
        self.state = "cancelled"
        self._queue = []
        if self.process is not None:
            self.process.kill()
            self.process.waitForFinished(5000)
        self._update_command()

    def wait(self, timeout_ms: int = 60000) -> str:
        """Process events until the install stops (scripts, tests). Returns the state."""
        import time

        t0 = time.time()
        while self.state == "running" and (time.time() - t0) * 1000 < timeout_ms:
            QgsApplication.processEvents()
            if self.process is not None:
                self.process.waitForFinished(50)
        QgsApplication.processEvents()
        return self.state
