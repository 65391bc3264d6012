"""The DeformCast workflow dialog: every choice of the chain on one page.

Choose or import a displacement stack, covariates, architecture(s), coding strategies, window,
horizon, TPE budget, thresholds and an output folder. The dialog validates while the user types
(dates, grid alignment, enough epochs) and runs
``[import_timeseries ->] tune -> predict -> uncertainty -> zoning`` as a background task, then
loads the results as styled layers into one layer group and shows the HTML reports.
The chain itself lives in :mod:`ui.runner` (no widgets there), so it is testable without clicks.
"""
from __future__ import annotations

import os
from typing import List, Optional

from qgis.core import Qgis, QgsApplication, QgsCoordinateReferenceSystem, QgsMapLayerProxyModel, QgsProject
from qgis.gui import QgsFileWidget, QgsMapLayerComboBox, QgsProjectionSelectionWidget
from qgis.PyQt.QtCore import Qt, QTimer, QUrl, pyqtSignal
from qgis.PyQt.QtGui import QDesktopServices, QImage
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from . import runner

# scoped enum names work with PyQt5 (5.15) and PyQt6 alike
_USER_ROLE = Qt.ItemDataRole.UserRole


def _raster_filter():
    return QgsMapLayerProxyModel.Filter.RasterLayer


def _point_filter():
    return QgsMapLayerProxyModel.Filter.PointLayer


class DataUriBrowser(QTextBrowser):
    """A QTextBrowser that shows the reports' embedded ``data:image/png;base64`` plots."""

    def loadResource(self, kind, url):  # noqa: N802
        u = url.toString() if hasattr(url, "toString") else str(url)
        if u.startswith("data:image") and ";base64," in u:
            import base64

            img = QImage()
            img.loadFromData(base64.b64decode(u.split(";base64,", 1)[1]))
            return img
        return super().loadResource(kind, url)


class ReportViewer(QDialog):
    """Shows the HTML reports of a run; 'Open in browser' hands one to the system browser."""

    def __init__(self, reports: List[str], parent=None):
        super().__init__(parent)
        self.setWindowTitle("DeformCast reports")
        self.resize(900, 700)
        self.reports = list(reports)
        self.combo = QComboBox()
        for p in self.reports:
            self.combo.addItem(os.path.relpath(p, os.path.dirname(os.path.dirname(p))), p)
        self.browser = DataUriBrowser()
        self.browser.setOpenExternalLinks(True)
        open_btn = QPushButton("Open in browser")
        open_btn.clicked.connect(lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(self.current())))
        top = QHBoxLayout()
        top.addWidget(QLabel("Report:"))
        top.addWidget(self.combo, 1)
        top.addWidget(open_btn)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.browser, 1)
        self.combo.currentIndexChanged.connect(self._show)
        if self.reports:
            self.combo.setCurrentIndex(len(self.reports) - 1)
            self._show()

    def current(self) -> str:
        return self.combo.currentData() or ""

    def _show(self, *_):
        p = self.current()
        if p and os.path.exists(p):
            self.browser.setSearchPaths([os.path.dirname(p)])
            with open(p, encoding="utf-8", errors="replace") as fh:
                self.browser.setHtml(fh.read())


class HelpDialog(QDialog):
    """The help text (shortHelpString) of every DeformCast algorithm, and a way to open it."""

    def __init__(self, parent=None, select: Optional[str] = None):
        super().__init__(parent)
        self.setWindowTitle("DeformCast help")
        self.resize(860, 560)
        self.algs = sorted(
            [a for a in QgsApplication.processingRegistry().algorithms() if a.provider() is not None
             and a.provider().id() == "deformcast"], key=lambda a: a.displayName())
        self.list = QListWidget()
        for a in self.algs:
            it = QListWidgetItem(f"{a.displayName()}  ({a.id()})")
            it.setData(_USER_ROLE, a.id())
            self.list.addItem(it)
        self.browser = QTextBrowser()
        self.browser.setOpenExternalLinks(True)
        self.open_btn = QPushButton("Open algorithm dialog…")
        self.open_btn.clicked.connect(self.open_algorithm)
        split = QSplitter()
        split.addWidget(self.list)
        split.addWidget(self.browser)
        split.setStretchFactor(1, 3)
        lay = QVBoxLayout(self)
        intro = QLabel("The workflow runs these Processing algorithms; each can also be run on its own "
                       "from the Processing toolbox, the graphical modeler or qgis_process.")
        intro.setWordWrap(True)
        lay.addWidget(intro)
        lay.addWidget(split, 1)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.open_btn)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        row.addWidget(close)
        lay.addLayout(row)
        self.list.currentRowChanged.connect(self._show)
        if self.algs:
            ids = [a.id() for a in self.algs]
            self.list.setCurrentRow(ids.index(select) if select in ids else 0)
        else:
            self.browser.setHtml("<p>No DeformCast algorithms are registered: enable the DeformCast "
                                 "plugin (Plugins ▸ Manage and Install Plugins).</p>")

    def current_id(self) -> str:
        it = self.list.currentItem()
        return it.data(_USER_ROLE) if it is not None else ""

    def help_html(self, alg_id: str) -> str:
        a = QgsApplication.processingRegistry().algorithmById(alg_id)
        if a is None:
            return ""
        text = a.shortHelpString() or "(no help text)"
        params = "".join(f"<li><code>{p.name()}</code>: {p.description()}</li>" for p in a.parameterDefinitions())
        outs = "".join(f"<li><code>{o.name()}</code>: {o.description()}</li>" for o in a.outputDefinitions())
        return (f"<h2>{a.displayName()}</h2><p><code>{a.id()}</code></p>{text}"
                f"<h3>Parameters</h3><ul>{params}</ul><h3>Outputs</h3><ul>{outs}</ul>")

    def _show(self, *_):
        self.browser.setHtml(self.help_html(self.current_id()))

    def open_algorithm(self):
        alg_id = self.current_id()
        if not alg_id:
            return None
        try:
            from processing import createAlgorithmDialog

            dlg = createAlgorithmDialog(alg_id)
        except Exception:  # noqa: BLE001 - Processing GUI not available (e.g. qgis_process)
            dlg = None
        if dlg is not None:
            dlg.show()
        self._alg_dialog = dlg
        return dlg


class WorkflowDialog(QDialog):
    """The workflow dialog. ``choices()``/``set_choices()`` read and fill it (scripts, tests).

    ``resultsLoaded(group, choices)`` is emitted when a run's layers are in the project.
    """

    resultsLoaded = pyqtSignal(object, dict)

    def __init__(self, iface=None, parent=None, show_reports: bool = True):
        super().__init__(parent if parent is not None else (iface.mainWindow() if iface else None))
        self.iface = iface
        self.show_reports = show_reports
        self.task: Optional[runner.WorkflowTask] = None
        self.last_group = None
        self.last_result: Optional[runner.ChainResult] = None
        self.last_error: Optional[str] = None
        self.validation: Optional[runner.Validation] = None
        self.viewer: Optional[ReportViewer] = None
        self.setWindowTitle("DeformCast workflow")
        self.resize(760, 820)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(250)
        self._timer.timeout.connect(self.validate_now)
        self._build()
        self._connect()
        self.validate_now()

    # --- layout --------------------------------------------------------------------------
    def _build(self):
        body = QWidget()
        form = QVBoxLayout(body)

        # data
        g = QGroupBox("Displacement time series")
        gl = QGridLayout(g)
        self.rb_stack = QRadioButton("Use a displacement stack (multiband raster, one band per date)")
        self.rb_import = QRadioButton("Import one first (EGMS CSV, point layer, MintPy/LiCSBAS HDF5)")
        self.rb_stack.setChecked(True)
        self.stack_layer = QgsMapLayerComboBox()
        self.stack_layer.setFilters(_raster_filter())
        self.stack_layer.setAllowEmptyLayer(True)
        self.stack_layer.setLayer(None)
        self.stack_file = QgsFileWidget()
        self.stack_file.setFilter("Rasters (*.tif *.tiff *.vrt *.img);;All files (*)")
        self.dates = QLineEdit()
        self.dates.setPlaceholderText("optional: text file or comma list (default: band descriptions)")
        self.import_layer = QgsMapLayerComboBox()
        self.import_layer.setFilters(_point_filter())
        self.import_layer.setAllowEmptyLayer(True)
        self.import_layer.setLayer(None)
        self.import_file = QgsFileWidget()
        self.import_file.setFilter("Time series (*.csv *.h5 *.hdf5 *.gpkg *.shp);;All files (*)")
        self.cell_size = QDoubleSpinBox()
        self.cell_size.setRange(0, 100000)
        self.cell_size.setDecimals(1)
        self.cell_size.setSuffix(" m")
        self.units = QComboBox()
        self.units.addItems(runner.UNITS)
        self.target_crs = QgsProjectionSelectionWidget()
        self.target_crs.setOptionVisible(QgsProjectionSelectionWidget.CrsOption.CrsNotSet, True)
        self.target_crs.setNotSetText("same as the input")
        self.target_crs.setCrs(QgsCoordinateReferenceSystem())
        r = 0
        gl.addWidget(self.rb_stack, r, 0, 1, 3); r += 1
        gl.addWidget(QLabel("Layer"), r, 0); gl.addWidget(self.stack_layer, r, 1, 1, 2); r += 1
        gl.addWidget(QLabel("or file"), r, 0); gl.addWidget(self.stack_file, r, 1, 1, 2); r += 1
        gl.addWidget(QLabel("Dates"), r, 0); gl.addWidget(self.dates, r, 1, 1, 2); r += 1
        gl.addWidget(self.rb_import, r, 0, 1, 3); r += 1
        gl.addWidget(QLabel("Point layer"), r, 0); gl.addWidget(self.import_layer, r, 1, 1, 2); r += 1
        gl.addWidget(QLabel("or file"), r, 0); gl.addWidget(self.import_file, r, 1, 1, 2); r += 1
        gl.addWidget(QLabel("Cell size / units"), r, 0); gl.addWidget(self.cell_size, r, 1); gl.addWidget(self.units, r, 2); r += 1
        gl.addWidget(QLabel("Target CRS"), r, 0); gl.addWidget(self.target_crs, r, 1, 1, 2); r += 1
        form.addWidget(g)

        # covariates
        g = QGroupBox("Covariates (aligned to the stack's grid automatically)")
        cl = QHBoxLayout(g)
        self.cov_list = QListWidget()
        self.cov_list.setMaximumHeight(90)
        btns = QVBoxLayout()
        self.cov_add = QPushButton("Add files…")
        self.cov_layers = QPushButton("Add project rasters")
        self.cov_remove = QPushButton("Remove")
        for b in (self.cov_add, self.cov_layers, self.cov_remove):
            btns.addWidget(b)
        btns.addStretch(1)
        cl.addWidget(self.cov_list, 1)
        cl.addLayout(btns)
        form.addWidget(g)

        # model
        g = QGroupBox("Model and tuning")
        ml = QFormLayout(g)
        arch_row = QGridLayout()
        self.arch_boxes = {}
        for i, a in enumerate(runner.ARCHITECTURES):
            cb = QCheckBox(a)
            cb.setChecked(a == "lstm")
            self.arch_boxes[a] = cb
            arch_row.addWidget(cb, i // 3, i % 3)
        ml.addRow("Architecture(s)", self._wrap(arch_row))
        enc_row = QGridLayout()
        self.enc_boxes = {}
        for i, e in enumerate(runner.ENCODINGS):
            cb = QCheckBox(e)
            cb.setChecked(e == "temporal")
            self.enc_boxes[e] = cb
            enc_row.addWidget(cb, i // 3, i % 3)
        ml.addRow("Coding strategy", self._wrap(enc_row))
        self.window = self._spin(2, 500, 12, " epochs")
        self.horizon = self._spin(1, 200, 3, " epochs")
        self.n_trials = self._spin(1, 10000, 10, " trials")
        self.top_k = self._spin(1, 100, 3, " models")
        self.max_epochs = self._spin(1, 10000, 30, " epochs")
        self.seed = self._spin(0, 2 ** 31 - 1, 42)
        self.device = QComboBox()
        self.device.addItems(runner.DEVICES)
        self.compare = QCheckBox("Also compare TPE with hand-set hyperparameters (Welch t-test + BH)")
        self.repeats = self._spin(2, 100, 3, " repeats")
        self.alpha = QDoubleSpinBox()
        self.alpha.setRange(0.001, 0.5)
        self.alpha.setDecimals(3)
        self.alpha.setSingleStep(0.01)
        self.alpha.setValue(0.05)
        ml.addRow("Window", self.window)
        ml.addRow("Horizon", self.horizon)
        ml.addRow("TPE budget", self.n_trials)
        ml.addRow("Ensemble (top-K)", self.top_k)
        ml.addRow("Training epochs per trial", self.max_epochs)
        ml.addRow("Seed", self.seed)
        ml.addRow("Device", self.device)
        ml.addRow(self.compare)
        ml.addRow("Comparison repeats", self.repeats)
        ml.addRow("False discovery rate", self.alpha)
        form.addWidget(g)

        # maps
        g = QGroupBox("Maps and decisions")
        fl = QFormLayout(g)
        self.thresholds = QLineEdit("10,20,40")
        self.thresholds.setToolTip("Exceedance thresholds: deformation over the horizon in mm, comma separated")
        self.n_classes = self._spin(2, 9, 5, " classes")
        self.uncertainty_type = QComboBox()
        self.uncertainty_type.addItems(runner.UNCERTAINTY_TYPES)
        self.output = QgsFileWidget()
        self.output.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        fl.addRow("Thresholds (mm)", self.thresholds)
        fl.addRow("Susceptibility", self.n_classes)
        fl.addRow("Zoning uncertainty", self.uncertainty_type)
        fl.addRow("Output folder", self.output)
        form.addWidget(g)
        form.addStretch(1)

        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(body)

        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setTextFormat(Qt.TextFormat.RichText)
        self.message.setObjectName("validation")
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumHeight(110)
        self.log.setPlaceholderText("Progress messages of the algorithms appear here.")
        self.buttons = QDialogButtonBox()
        self.run_btn = self.buttons.addButton("Run", QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_btn = self.buttons.addButton("Cancel run", QDialogButtonBox.ButtonRole.ActionRole)
        self.help_btn = self.buttons.addButton("Help", QDialogButtonBox.ButtonRole.HelpRole)
        self.close_btn = self.buttons.addButton("Close", QDialogButtonBox.ButtonRole.RejectRole)
        self.cancel_btn.setEnabled(False)

        lay = QVBoxLayout(self)
        lay.addWidget(scroll, 1)
        lay.addWidget(self.message)
        lay.addWidget(self.progress)
        lay.addWidget(self.log)
        lay.addWidget(self.buttons)

    @staticmethod
    def _wrap(layout):
        w = QWidget()
        layout.setContentsMargins(0, 0, 0, 0)
        w.setLayout(layout)
        return w

    @staticmethod
    def _spin(lo, hi, val, suffix=""):
        s = QSpinBox()
        s.setRange(lo, hi)
        s.setValue(val)
        if suffix:
            s.setSuffix(suffix)
        return s

    def _connect(self):
        later = self.schedule_validation
        self.stack_layer.layerChanged.connect(self._stack_layer_changed)
        self.import_layer.layerChanged.connect(self._import_layer_changed)
        for w in (self.stack_file, self.import_file, self.output):
            w.fileChanged.connect(later)
        self.stack_file.fileChanged.connect(lambda p: self._file_changed(self.stack_layer, p))
        self.import_file.fileChanged.connect(lambda p: self._file_changed(self.import_layer, p))
        for w in (self.dates, self.thresholds):
            w.textChanged.connect(later)
        for w in (self.window, self.horizon, self.n_trials, self.top_k, self.max_epochs, self.seed, self.n_classes,
                  self.repeats):
            w.valueChanged.connect(later)
        self.cell_size.valueChanged.connect(later)
        self.alpha.valueChanged.connect(later)
        for w in (self.rb_stack, self.rb_import, self.compare):
            w.toggled.connect(later)
        self.rb_stack.toggled.connect(self._source_changed)
        self.compare.toggled.connect(self._compare_changed)
        for cb in list(self.arch_boxes.values()) + list(self.enc_boxes.values()):
            cb.toggled.connect(later)
        self.cov_add.clicked.connect(self._add_cov_files)
        self.cov_layers.clicked.connect(self._add_cov_layers)
        self.cov_remove.clicked.connect(self._remove_cov)
        self.run_btn.clicked.connect(self.start)
        self.cancel_btn.clicked.connect(self.cancel)
        self.help_btn.clicked.connect(self.show_help)
        self.close_btn.clicked.connect(self.close)
        self._source_changed()
        self._compare_changed()

    def _source_changed(self, *_):
        stack = self.rb_stack.isChecked()
        for w in (self.stack_layer, self.stack_file, self.dates):
            w.setEnabled(stack)
        for w in (self.import_layer, self.import_file, self.cell_size, self.units, self.target_crs):
            w.setEnabled(not stack)

    def _compare_changed(self, *_):
        for w in (self.repeats, self.alpha):
            w.setEnabled(self.compare.isChecked())

    @staticmethod
    def _file_changed(combo, path):
        """A file typed or browsed by hand: the layer combo no longer names it."""
        lyr = combo.currentLayer()
        if lyr is not None and lyr.source() != path:
            combo.blockSignals(True)
            combo.setLayer(None)
            combo.blockSignals(False)

    def _stack_layer_changed(self, layer):
        if layer is not None:
            self.stack_file.setFilePath(layer.source())
        self.schedule_validation()

    def _import_layer_changed(self, layer):
        if layer is not None:
            self.import_file.setFilePath(layer.source())
        self.schedule_validation()

    def _add_cov_files(self):
        files, _ = QFileDialog.getOpenFileNames(self, "Covariate rasters", "", "Rasters (*.tif *.tiff *.vrt);;All files (*)")
        self.add_covariates(files)

    def _add_cov_layers(self):
        stack = os.path.abspath(self.stack_file.filePath()) if self.stack_file.filePath() else ""
        paths = [lyr.source() for lyr in QgsProject.instance().mapLayers().values()
                 if lyr.type() == lyr.RasterLayer and os.path.isfile(lyr.source())
                 and os.path.abspath(lyr.source()) != stack]
        self.add_covariates(paths)

    def _remove_cov(self):
        for it in self.cov_list.selectedItems():
            self.cov_list.takeItem(self.cov_list.row(it))
        self.schedule_validation()

    def add_covariates(self, paths):
        have = set(self.covariates())
        for p in paths:
            if p and p not in have:
                it = QListWidgetItem(os.path.basename(p))
                it.setData(_USER_ROLE, p)
                it.setToolTip(p)
                self.cov_list.addItem(it)
                have.add(p)
        self.schedule_validation()

    def covariates(self) -> List[str]:
        return [self.cov_list.item(i).data(_USER_ROLE) for i in range(self.cov_list.count())]

    # --- choices -------------------------------------------------------------------------
    def choices(self) -> dict:
        crs = self.target_crs.crs()
        return {
            "source": "stack" if self.rb_stack.isChecked() else "import",
            "stack": self.stack_file.filePath().strip(),
            "dates": self.dates.text().strip(),
            "import_input": self.import_file.filePath().strip(),
            "cell_size": float(self.cell_size.value()),
            "units": self.units.currentText(),
            "target_crs": crs.authid() if crs.isValid() else "",
            "covariates": self.covariates(),
            "architectures": [a for a, cb in self.arch_boxes.items() if cb.isChecked()],
            "encodings": [e for e, cb in self.enc_boxes.items() if cb.isChecked()],
            "window": self.window.value(),
            "horizon": self.horizon.value(),
            "n_trials": self.n_trials.value(),
            "top_k": self.top_k.value(),
            "max_epochs": self.max_epochs.value(),
            "thresholds": self.thresholds.text().strip(),
            "uncertainty_type": self.uncertainty_type.currentText(),
            "n_classes": self.n_classes.value(),
            "seed": self.seed.value(),
            "device": self.device.currentText(),
            "compare": self.compare.isChecked(),
            "repeats": self.repeats.value(),
            "alpha": float(self.alpha.value()),
            "output_folder": self.output.filePath().strip(),
            "extra": dict(getattr(self, "_extra", {}) or {}),
        }

    def set_choices(self, choices: dict) -> None:
        c = runner.choices_with_defaults(choices)
        (self.rb_import if c["source"] == "import" else self.rb_stack).setChecked(True)
        self.stack_file.setFilePath(str(c["stack"]))
        self.dates.setText(str(c["dates"] or ""))
        self.import_file.setFilePath(str(c["import_input"]))
        self.cell_size.setValue(float(c["cell_size"] or 0))
        self.units.setCurrentText(str(c["units"]))
        if c["target_crs"]:
            self.target_crs.setCrs(QgsCoordinateReferenceSystem(str(c["target_crs"])))
        self.cov_list.clear()
        self.add_covariates(list(c["covariates"] or []))
        for a, cb in self.arch_boxes.items():
            cb.setChecked(a in c["architectures"])
        for e, cb in self.enc_boxes.items():
            cb.setChecked(e in c["encodings"])
        self.window.setValue(int(c["window"]))
        self.horizon.setValue(int(c["horizon"]))
        self.n_trials.setValue(int(c["n_trials"]))
        self.top_k.setValue(int(c["top_k"]))
        self.max_epochs.setValue(int(c["max_epochs"]))
        self.thresholds.setText(str(c["thresholds"]))
        self.uncertainty_type.setCurrentText(str(c["uncertainty_type"]))
        self.n_classes.setValue(int(c["n_classes"]))
        self.seed.setValue(int(c["seed"]))
        self.device.setCurrentText(str(c["device"]))
        self.compare.setChecked(bool(c["compare"]))
        self.repeats.setValue(int(c["repeats"]))
        self.alpha.setValue(float(c["alpha"]))
        self.output.setFilePath(str(c["output_folder"]))
        self._extra = dict(c.get("extra") or {})
        self.validate_now()

    # --- validation ----------------------------------------------------------------------
    def schedule_validation(self, *_):
        self._timer.start()

    def validate_now(self) -> runner.Validation:
        self._timer.stop()
        v = runner.validate(self.choices())
        self.validation = v
        self.message.setText(v.html())
        running = self.task is not None
        self.run_btn.setEnabled(v.ok and not running)
        return v

    # --- running -------------------------------------------------------------------------
    def start(self) -> Optional[runner.WorkflowTask]:
        """Validate, then run the chain as a background QgsTask. Returns the task (or None)."""
        if self.task is not None:
            return None
        v = self.validate_now()
        if not v.ok:
            return None
        c = self.choices()
        steps = runner.build_steps(c)
        runner.save_choices(c, c["output_folder"])
        self.last_error = None
        self.last_result = None
        self.log.clear()
        self.progress.setValue(0)
        self.task = runner.WorkflowTask(steps, "DeformCast workflow", self._finished)
        self.task.progressChanged.connect(lambda p: self.progress.setValue(int(p)))
        self.task.logMessage.connect(self.log.appendPlainText)
        self.run_btn.setEnabled(False)
        self.cancel_btn.setEnabled(True)
        self._log(f"Running {len(steps)} step(s) into {c['output_folder']} …")
        QgsApplication.taskManager().addTask(self.task)
        return self.task

    def cancel(self):
        if self.task is not None:
            self._log("Cancelling … (the running step stops at its next block)")
            self.task.cancel()

    def _log(self, s: str):
        self.log.appendPlainText(s)

    def _finished(self, task: runner.WorkflowTask):
        self.task = None
        self.cancel_btn.setEnabled(False)
        if task.result is not None and task.error is None:
            self.last_result = task.result
            self.progress.setValue(100)
            c = self.choices()
            stack = os.path.join(c["output_folder"], "stack.tif") if c["source"] == "import" else c["stack"]
            name = f"DeformCast {os.path.basename(os.path.normpath(c['output_folder']))}"
            self.last_group = runner.load_results(task.result, name, stack_path=stack)
            self._log(f"Finished in {task.result.seconds:.0f} s; layers are in the group '{name}'.")
            self._bar("DeformCast", f"Workflow finished: layers in '{name}'.", Qgis.Success)
            self.resultsLoaded.emit(self.last_group, c)
            reports = task.result.reports()
            if reports and self.show_reports:
                self.viewer = ReportViewer(reports, self)
                self.viewer.show()
        else:
            self.last_error = task.error or "Cancelled."
            self._log(self.last_error)
            self._bar("DeformCast", self.last_error, Qgis.Warning)
        self.validate_now()

    def _bar(self, title, text, level):
        if self.iface is not None:
            try:
                self.iface.messageBar().pushMessage(title, text, level=level, duration=8)
            except TypeError:
                self.iface.messageBar().pushMessage(title, text, level)

    def show_help(self):
        self.help_dialog = HelpDialog(self, select="deformcast:tune")
        self.help_dialog.show()
        return self.help_dialog

    def closeEvent(self, ev):  # noqa: N802
        # a running chain keeps going in the task manager; the dialog only stops listening
        super().closeEvent(ev)
