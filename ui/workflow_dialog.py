"""The DeformCast workflow dialog: a front end to ``deformcast:workflow``, the README's main job.

Its parameters are the algorithm's own, generated from the chain (:mod:`algorithms.chain`): the
common ones on the page, the expert ones folded under *Advanced*, every default identical to the
algorithm's. The dialog validates while the user types (dates, grid alignment, enough epochs),
runs ``[import_timeseries ->] workflow`` as a background task (progress, Cancel) that writes the
same report.html and deformcast.qgz as the main job, and loads the run's layer group (the same
tree as the .qgz: Decision, Uncertainty, Forecast, Residuals, Data; only the tier map visible),
zooms to it and shows the reports. The choices persist between QGIS sessions (QSettings);
*Reset to defaults* restores the algorithm's defaults. The engine (validation, jobs, task,
settings) lives in :mod:`ui.runner`, without widgets.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

from qgis.core import Qgis, QgsApplication, QgsCoordinateReferenceSystem, QgsMapLayerProxyModel, QgsProject
from qgis.gui import QgsCollapsibleGroupBox, QgsFileWidget, QgsMapLayerComboBox, QgsProjectionSelectionWidget
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

from ..algorithms import chain
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
    """Shows the HTML reports of a run, the first one first; 'Open in browser' hands one to the system browser."""

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
            self.combo.setCurrentIndex(0)  # the story (report.html) comes first
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


class Field:
    """One chain parameter as a widget: ``value()`` in Processing's form, ``set_value()``,
    ``changed`` (connect a slot)."""

    def __init__(self, p: "chain.Param", dialog: "WorkflowDialog"):
        self.p = p
        self.dialog = dialog
        self.layer = None  # raster: the layer combo beside the file widget
        k = p.kind
        if k == "raster":
            self.layer = QgsMapLayerComboBox()
            self.layer.setFilters(_raster_filter())
            self.layer.setAllowEmptyLayer(True)
            self.layer.setLayer(None)
            self.file = QgsFileWidget()
            self.file.setFilter("Rasters (*.tif *.tiff *.vrt *.img);;All files (*)")
            self.layer.layerChanged.connect(self._layer_changed)
            self.file.fileChanged.connect(self._file_changed)
            w = QWidget()
            lay = QVBoxLayout(w)
            lay.setContentsMargins(0, 0, 0, 0)
            lay.addWidget(self.layer)
            lay.addWidget(self.file)
            self.widget = w
        elif k == "rasters":
            w = QWidget()
            lay = QHBoxLayout(w)
            lay.setContentsMargins(0, 0, 0, 0)
            self.list = QListWidget()
            self.list.setMaximumHeight(80)
            btns = QVBoxLayout()
            self.add_btn = QPushButton("Add files…")
            self.layers_btn = QPushButton("Add project rasters")
            self.remove_btn = QPushButton("Remove")
            for b in (self.add_btn, self.layers_btn, self.remove_btn):
                btns.addWidget(b)
            btns.addStretch(1)
            lay.addWidget(self.list, 1)
            lay.addLayout(btns)
            self.add_btn.clicked.connect(self._add_files)
            self.layers_btn.clicked.connect(self._add_layers)
            self.remove_btn.clicked.connect(self._remove)
            self.widget = w
        elif k == "enum" and p.multiple:
            w = QWidget()
            grid = QGridLayout(w)
            grid.setContentsMargins(0, 0, 0, 0)
            self.boxes = {}
            for i, c in enumerate(p.choices):
                cb = QCheckBox(c)
                self.boxes[c] = cb
                grid.addWidget(cb, i // 3, i % 3)
            self.widget = w
        elif k == "enum":
            self.widget = QComboBox()
            self.widget.addItems(list(p.choices))
        elif k == "int":
            self.widget = QSpinBox()
            lo = int(p.minimum) if p.minimum is not None else -(2 ** 31) + 1
            hi = int(p.maximum) if p.maximum is not None else 2 ** 31 - 1
            self.widget.setRange(max(lo, -(2 ** 31) + 1), min(hi, 2 ** 31 - 1))
            if p.name == "WINDOW":
                self.widget.setSpecialValueText("tuned")
        elif k == "float":
            self.widget = QDoubleSpinBox()
            self.widget.setDecimals(1)
            self.widget.setRange(p.minimum if p.minimum is not None else -1e12,
                                 p.maximum if p.maximum is not None else 1e12)
        elif k == "string":
            self.widget = QLineEdit()
            if p.optional:
                self.widget.setPlaceholderText("optional")
        elif k == "folder":
            self.widget = QgsFileWidget()
            self.widget.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        else:  # pragma: no cover
            raise ValueError(p.kind)
        tip = (p.tip + " " if p.tip else "") + f"(Processing parameter {p.name})"
        self.widget.setToolTip(tip)
        self.set_value(p.default)

    # --- raster helpers --------------------------------------------------------------------
    def _layer_changed(self, layer):
        if layer is not None:
            self.file.setFilePath(layer.source())

    def _file_changed(self, path):
        """A file typed or browsed by hand: the layer combo no longer names it."""
        lyr = self.layer.currentLayer()
        if lyr is not None and lyr.source() != path:
            self.layer.blockSignals(True)
            self.layer.setLayer(None)
            self.layer.blockSignals(False)

    # --- rasters helpers -------------------------------------------------------------------
    def _add_files(self):
        files, _ = QFileDialog.getOpenFileNames(self.widget, self.p.label, "",
                                                "Rasters (*.tif *.tiff *.vrt);;All files (*)")
        self.add_paths(files)

    def _add_layers(self):
        exclude = {os.path.abspath(str(self.dialog.value("INPUT") or ""))}
        paths = [lyr.source() for lyr in QgsProject.instance().mapLayers().values()
                 if lyr.type() == lyr.RasterLayer and os.path.isfile(lyr.source())
                 and os.path.abspath(lyr.source()) not in exclude]
        self.add_paths(paths)

    def _remove(self):
        for it in self.list.selectedItems():
            self.list.takeItem(self.list.row(it))
        self.dialog.schedule_validation()

    def add_paths(self, paths):
        have = set(self.paths())
        for p in paths or []:
            if p and p not in have:
                it = QListWidgetItem(os.path.basename(p))
                it.setData(_USER_ROLE, p)
                it.setToolTip(p)
                self.list.addItem(it)
                have.add(p)
        self.dialog.schedule_validation()

    def paths(self) -> List[str]:
        return [self.list.item(i).data(_USER_ROLE) for i in range(self.list.count())]

    # --- value -----------------------------------------------------------------------------
    def value(self):
        p, k = self.p, self.p.kind
        if k == "raster":
            v = self.file.filePath().strip()
            return v or None
        if k == "rasters":
            return self.paths() or None
        if k == "enum" and p.multiple:
            return [c for c in p.choices if self.boxes[c].isChecked()]
        if k == "enum":
            return self.widget.currentText()
        if k == "int":
            return int(self.widget.value())
        if k == "float":
            return float(self.widget.value())
        if k == "string":
            v = self.widget.text().strip()
            return v if (v or not p.optional) else None
        if k == "folder":
            return self.widget.filePath().strip() or None
        return None

    def set_value(self, v) -> None:
        p, k = self.p, self.p.kind
        if k == "raster":
            self.file.setFilePath(str(v or ""))
        elif k == "rasters":
            self.list.clear()
            self.add_paths(list(v or []))
        elif k == "enum" and p.multiple:
            chosen = set(v or [])
            for c, cb in self.boxes.items():
                cb.setChecked(c in chosen)
        elif k == "enum":
            self.widget.setCurrentText(str(v if v is not None else p.choices[0]))
        elif k == "int":
            self.widget.setValue(int(v or 0))
        elif k == "float":
            self.widget.setValue(float(v or 0.0))
        elif k == "string":
            self.widget.setText("" if v is None else str(v))
        elif k == "folder":
            self.widget.setFilePath("" if v is None else str(v))

    def connect(self, slot) -> None:
        k = self.p.kind
        if k == "raster":
            self.file.fileChanged.connect(slot)
            self.layer.layerChanged.connect(slot)
        elif k == "enum" and self.p.multiple:
            for cb in self.boxes.values():
                cb.toggled.connect(slot)
        elif k == "enum":
            self.widget.currentIndexChanged.connect(slot)
        elif k in ("int", "float"):
            self.widget.valueChanged.connect(slot)
        elif k == "string":
            self.widget.textChanged.connect(slot)
        elif k == "folder":
            self.widget.fileChanged.connect(slot)


class WorkflowDialog(QDialog):
    """The workflow dialog. ``parameters()``/``set_parameters()`` read and fill it (scripts, tests);
    ``parameters()`` is what it hands to ``deformcast:workflow``.

    ``resultsLoaded(group, parameters)`` is emitted when a run's layers are in the project.
    ``restore=False`` opens it on the algorithm's defaults instead of the saved choices.
    """

    resultsLoaded = pyqtSignal(object, dict)

    def __init__(self, iface=None, parent=None, show_reports: bool = True, restore: bool = True):
        super().__init__(parent if parent is not None else (iface.mainWindow() if iface else None))
        self.iface = iface
        self.show_reports = show_reports
        self.runner: Optional[runner.WorkflowRunner] = None
        self.last_group = None
        self.last_results: Optional[dict] = None
        self.last_error: Optional[str] = None
        self.last_parameters: Optional[dict] = None
        self.validation: Optional[runner.Validation] = None
        self.viewer: Optional[ReportViewer] = None
        self.setWindowTitle("DeformCast workflow")
        self.resize(760, 860)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(250)
        self._timer.timeout.connect(self.validate_now)
        self._build()
        self._connect()
        saved = runner.load_settings() if restore else None
        if saved:
            self.set_parameters(saved["parameters"], saved["import"])
        self.validate_now()

    # --- layout --------------------------------------------------------------------------
    def _build(self):
        body = QWidget()
        form = QVBoxLayout(body)
        self.fields: Dict[str, Field] = {p.name: Field(p, self) for p in chain.PARAMETERS}
        f = self.fields

        # data: the stack (or an import first), dates, covariates, later observations
        g = QGroupBox(chain.SECTIONS["data"])
        gl = QGridLayout(g)
        self.rb_stack = QRadioButton("Use a displacement stack (multiband raster, one band per date; "
                                     "empty: the built-in demo scene)")
        self.rb_import = QRadioButton("Import one first (EGMS CSV, point layer, MintPy/LiCSBAS HDF5)")
        self.rb_stack.setChecked(True)
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
        self.units.addItems(runner.alg_options(runner.IMPORT_ID, "UNITS", ["mm"]))
        self.target_crs = QgsProjectionSelectionWidget()
        self.target_crs.setOptionVisible(QgsProjectionSelectionWidget.CrsOption.CrsNotSet, True)
        self.target_crs.setNotSetText("same as the input")
        self.target_crs.setCrs(QgsCoordinateReferenceSystem())
        r = 0
        gl.addWidget(self.rb_stack, r, 0, 1, 3); r += 1
        gl.addWidget(QLabel("Stack"), r, 0); gl.addWidget(f["INPUT"].widget, r, 1, 1, 2); r += 1
        gl.addWidget(QLabel("Dates"), r, 0); gl.addWidget(f["DATES"].widget, r, 1, 1, 2); r += 1
        f["DATES"].widget.setPlaceholderText("optional: text file or comma list (default: band descriptions)")
        gl.addWidget(self.rb_import, r, 0, 1, 3); r += 1
        gl.addWidget(QLabel("Point layer"), r, 0); gl.addWidget(self.import_layer, r, 1, 1, 2); r += 1
        gl.addWidget(QLabel("or file"), r, 0); gl.addWidget(self.import_file, r, 1, 1, 2); r += 1
        gl.addWidget(QLabel("Cell size / units"), r, 0); gl.addWidget(self.cell_size, r, 1); gl.addWidget(self.units, r, 2); r += 1
        gl.addWidget(QLabel("Target CRS"), r, 0); gl.addWidget(self.target_crs, r, 1, 1, 2); r += 1
        gl.addWidget(QLabel("Covariates"), r, 0); gl.addWidget(f["COVARIATES"].widget, r, 1, 1, 2); r += 1
        gl.addWidget(QLabel("Later observations"), r, 0); gl.addWidget(f["OBSERVED"].widget, r, 1, 1, 2); r += 1
        form.addWidget(g)
        placed = {"INPUT", "DATES", "COVARIATES", "OBSERVED", "OUTPUT_FOLDER"}

        # the other common parameters, by section; then the output folder
        for section in ("model", "maps", "run"):
            ps = [p for p in chain.visible() if p.section == section and p.name not in placed]
            if not ps:
                continue
            g = QGroupBox(chain.SECTIONS[section])
            fl = QFormLayout(g)
            for p in ps:
                fl.addRow(self._label(p), f[p.name].widget)
            form.addWidget(g)
        g = QGroupBox(chain.SECTIONS["output"])
        fl = QFormLayout(g)
        fl.addRow(chain.BY_NAME["OUTPUT_FOLDER"].label, f["OUTPUT_FOLDER"].widget)
        form.addWidget(g)

        # advanced: every expert parameter, folded
        self.advanced = QgsCollapsibleGroupBox("Advanced")
        self.advanced.setObjectName("advanced")
        al = QFormLayout(self.advanced)
        note = QLabel("Defaults are the configuration measured best (see the README); the names in the "
                      "tooltips are the Processing parameters of deformcast:workflow.")
        note.setWordWrap(True)
        al.addRow(note)
        for p in chain.advanced():
            al.addRow(self._label(p), f[p.name].widget)
        self.advanced.setCollapsed(True)
        form.addWidget(self.advanced)
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
        self.log.setPlaceholderText("Progress messages of the workflow appear here.")
        self.buttons = QDialogButtonBox()
        self.run_btn = self.buttons.addButton("Run", QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_btn = self.buttons.addButton("Cancel run", QDialogButtonBox.ButtonRole.ActionRole)
        self.reset_btn = self.buttons.addButton("Reset to defaults", QDialogButtonBox.ButtonRole.ResetRole)
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
    def _label(p: "chain.Param") -> QLabel:
        """The parameter's label (word-wrapped: the page never scrolls sideways)."""
        lab = QLabel(p.label)
        lab.setWordWrap(True)
        lab.setMinimumWidth(180)
        lab.setMaximumWidth(300)
        lab.setToolTip(f"{p.tip} (Processing parameter {p.name})".strip())
        return lab

    def _connect(self):
        later = self.schedule_validation
        for fld in self.fields.values():
            fld.connect(later)
        self.import_layer.layerChanged.connect(self._import_layer_changed)
        self.import_file.fileChanged.connect(later)
        self.import_file.fileChanged.connect(self._import_file_changed)
        self.cell_size.valueChanged.connect(later)
        for w in (self.rb_stack, self.rb_import):
            w.toggled.connect(later)
        self.rb_stack.toggled.connect(self._source_changed)
        self.run_btn.clicked.connect(self.start)
        self.cancel_btn.clicked.connect(self.cancel)
        self.reset_btn.clicked.connect(self.reset_defaults)
        self.help_btn.clicked.connect(self.show_help)
        self.close_btn.clicked.connect(self.close)
        self._source_changed()

    def _source_changed(self, *_):
        stack = self.rb_stack.isChecked()
        for w in (self.fields["INPUT"].widget, self.fields["DATES"].widget):
            w.setEnabled(stack)
        for w in (self.import_layer, self.import_file, self.cell_size, self.units, self.target_crs):
            w.setEnabled(not stack)

    def _import_file_changed(self, path):
        lyr = self.import_layer.currentLayer()
        if lyr is not None and lyr.source() != path:
            self.import_layer.blockSignals(True)
            self.import_layer.setLayer(None)
            self.import_layer.blockSignals(False)

    def _import_layer_changed(self, layer):
        if layer is not None:
            self.import_file.setFilePath(layer.source())
        self.schedule_validation()

    # --- parameters ----------------------------------------------------------------------
    def value(self, name: str):
        return self.fields[name].value()

    def parameters(self) -> Dict[str, Any]:
        """The ``deformcast:workflow`` parameters the dialog holds (unset optional ones left out)."""
        return runner.clean({name: fld.value() for name, fld in self.fields.items()})

    def set_parameters(self, params: Dict[str, Any], extra: Optional[dict] = None) -> None:
        """Fill the dialog: ``params`` over the algorithm's defaults; ``extra`` the import choices."""
        values = chain.defaults()
        values.update({k: v for k, v in (params or {}).items() if k in self.fields})
        for name, fld in self.fields.items():
            fld.set_value(values[name])
        self.set_import(extra)
        self.validate_now()

    def import_values(self) -> dict:
        crs = self.target_crs.crs()
        return {"source": "stack" if self.rb_stack.isChecked() else "import",
                "import_input": self.import_file.filePath().strip(),
                "cell_size": float(self.cell_size.value()), "units": self.units.currentText(),
                "target_crs": crs.authid() if crs.isValid() else ""}

    def set_import(self, extra: Optional[dict]) -> None:
        c = runner.import_choices(extra)
        (self.rb_import if c["source"] == "import" else self.rb_stack).setChecked(True)
        self.import_file.setFilePath(str(c["import_input"] or ""))
        self.cell_size.setValue(float(c["cell_size"] or 0))
        self.units.setCurrentText(str(c["units"]))
        self.target_crs.setCrs(QgsCoordinateReferenceSystem(str(c["target_crs"])) if c["target_crs"]
                               else QgsCoordinateReferenceSystem())

    def reset_defaults(self) -> None:
        """Back to ``deformcast:workflow``'s defaults; the saved choices are forgotten."""
        runner.clear_settings()
        self.set_parameters({}, None)

    def save_settings(self) -> None:
        runner.save_settings(self.parameters(), self.import_values())

    # --- validation ----------------------------------------------------------------------
    def schedule_validation(self, *_):
        self._timer.start()

    def validate_now(self) -> runner.Validation:
        self._timer.stop()
        v = runner.validate(self.parameters(), self.import_values())
        self.validation = v
        self.message.setText(v.html())
        self.run_btn.setEnabled(v.ok and self.runner is None)
        return v

    # --- running -------------------------------------------------------------------------
    def start(self) -> Optional[runner.WorkflowRunner]:
        """Validate, then run ``[import ->] deformcast:workflow`` in the background. Returns the runner."""
        if self.runner is not None:
            return None
        v = self.validate_now()
        if not v.ok:
            return None
        params = self.parameters()
        self.save_settings()
        jobs = runner.build_jobs(params, self.import_values())
        self.last_parameters = dict(jobs[-1].params)
        self.last_error = None
        self.last_results = None
        self.last_group = None
        self.log.clear()
        self.progress.setValue(0)
        self.runner = runner.WorkflowRunner(jobs, QgsProject.instance(), self)
        self.runner.progressChanged.connect(lambda p: self.progress.setValue(int(p)))
        self.runner.logMessage.connect(self.log.appendPlainText)
        self.runner.finished.connect(self._finished)
        self.run_btn.setEnabled(False)
        self.cancel_btn.setEnabled(True)
        self._log(f"Running deformcast:workflow into {self.last_parameters['OUTPUT_FOLDER']} …")
        self.runner.start()
        return self.runner

    def cancel(self):
        if self.runner is not None:
            self._log("Cancelling … (the running step stops at its next check)")
            self.runner.cancel()

    def _log(self, s: str):
        self.log.appendPlainText(s)

    def _finished(self):
        r = self.runner
        self.runner = None
        self.cancel_btn.setEnabled(False)
        if r is not None and r.error is None and r.results is not None:
            self.last_results = r.results
            self.progress.setValue(100)
            folder = r.results.get("OUTPUT_FOLDER") or self.last_parameters["OUTPUT_FOLDER"]
            self.last_group = runner.find_group(folder)
            name = chain.run_name(folder)
            if self.last_group is not None and self.iface is not None:
                from ..processing_provider.project import zoom_canvas

                try:
                    zoom_canvas(self.iface.mapCanvas(), self.last_group)
                except Exception:  # noqa: BLE001 - a stub interface without a canvas
                    pass
            self._log(f"Finished in {r.seconds:.0f} s; layers are in the group '{name}'; "
                      f"report: {r.results.get('OUTPUT_REPORT')}")
            self._bar("DeformCast", f"Workflow finished: layers in '{name}'.", Qgis.Success)
            if self.last_group is not None:
                self.resultsLoaded.emit(self.last_group, dict(self.last_parameters))
            reps = runner.reports(folder)
            if reps and self.show_reports:
                self.viewer = ReportViewer(reps, self)
                self.viewer.show()
        else:
            self.last_error = (r.error if r is not None else None) or runner.CANCELLED
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
        self.help_dialog = HelpDialog(self, select=runner.WORKFLOW_ID)
        self.help_dialog.show()
        return self.help_dialog

    def closeEvent(self, ev):  # noqa: N802
        # a running workflow keeps going in the task manager; the dialog only stops listening
        self.save_settings()
        super().closeEvent(ev)
