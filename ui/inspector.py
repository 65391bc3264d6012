"""Time-series inspector: click pixels or draw polygons, see the series behind the forecast maps.

The dock (:class:`InspectorDock`) reads, for each pick (a pixel, or the pixels inside a polygon,
averaged), the rasters of **one run** (:mod:`ui.inspector_runs`):

* the observed displacement series (the stack) and the later observations (a stack covering the
  dates after the forecast start), as dots and open diamonds;
* the ensemble members (``OUTPUT_MEMBERS``: bands ``member<k> <ISO date>``) as P5-P95 and P10-P90
  fans over every lead step (percentiles across the members per step; the members themselves on
  request), the median (``OUTPUT_MEDIAN``) and the quantiles raster (``OUTPUT_QUANTILES``);
* the susceptibility class and class / exceedance probabilities as bars.

Several picks are overlaid, each in the colour of its marker on the map; a pick can be made the
**reference** (its series is subtracted from the others', as InSAR analysts change the reference
point). The plot exports as PNG and everything drawn as CSV. Reading is in
:mod:`ui.inspector_data`, drawing in :mod:`ui.inspector_plot`, map tools in :mod:`ui.inspector_tools`.

Lifetime (a parentless dock crashed QGIS now and then while a workflow task ran; docs/README_ui.md).
Qt widgets must be deleted in the main thread; a Python-owned widget is deleted wherever its last
Python reference goes, and that can be any thread: the dock sits in reference cycles (lambda
slots holding ``self``, before; the exceptions matplotlib's pyparsing grammars raise and catch
during the first plot keep the dock's frames in cycles through their tracebacks), which only
Python's cyclic garbage collector frees, in whichever thread allocates when it runs (a QgsTask
running the workflow). So:

* the dock always belongs to Qt: to its parent (the plugin: QGIS's main window) or, parentless,
  to no one until :meth:`InspectorDock.dispose` (which deletes it through the main thread's event
  loop); its Python side is kept with it (``_PARENTLESS``), never collected half-way;
* its map tools are its Qt children; its slots are bound methods (no reference cycle through it);
* it keeps no layer object: the role combo boxes hold the layers, and
  ``QgsProject.layersWillBeRemoved`` (connected before the combo boxes exist, so it runs before
  their models move to another layer) empties each role whose layer goes;
* closing it unsets its map tools and hides its marks; ``dispose`` also takes the marks and the
  polygon's rubber band out of the canvas and disconnects it from the project.
"""
from __future__ import annotations

import csv
import os
import string
from typing import Dict, List, Optional, Sequence

import numpy as np
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsGeometry,
    QgsMapLayerProxyModel,
    QgsPointXY,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
    QgsWkbTypes,
)
from qgis.gui import QgsCollapsibleGroupBox, QgsMapLayerComboBox
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from .inspector_data import (  # noqa: F401 - re-exported: the inspector's public names
    ROLES,
    PixelSeries,
    Sample,
    area_series,
    band_names,
    fan,
    pixel_series,
    relative_to,
    sample_area,
    sample_layer,
    sample_layers,
)
from .inspector_plot import COLUMNS, REFERENCE_COLOUR, colour, draw, figure_canvas
from .inspector_runs import choose_run, find_runs
from .inspector_tools import InspectorMapTool, MapMarks, PolygonMapTool, alive, sip  # noqa: F401

TITLE = "DeformCast time-series inspector"
#: the parentless docks not disposed of yet, by id: Qt owns them, this keeps their Python side
_PARENTLESS: Dict[int, "InspectorDock"] = {}


def _forget(key: int):
    """A slot for ``destroyed`` that drops a dock from ``_PARENTLESS`` (holds its id, not the dock)."""
    return lambda *_: _PARENTLESS.pop(key, None)


class InspectorDock(QDockWidget):
    """The dock: the run and its layers, the plot, the pick tools, the reference, PNG/CSV export."""

    inspected = pyqtSignal(object)

    def __init__(self, iface=None, canvas=None, parent=None):
        super().__init__(TITLE, parent)
        self.setObjectName("DeformCastInspector")
        if parent is None:
            # never deleted by Python (in whatever thread lets go of it last): see the module's doc
            sip.transferto(self, None)
            _PARENTLESS[id(self)] = self
            self.destroyed.connect(_forget(id(self)))
        self.iface = iface
        self.canvas = canvas if canvas is not None else (iface.mapCanvas() if iface is not None else None)
        self.series: Optional[PixelSeries] = None     # the last pick (as read, without reference)
        self.picks: List[PixelSeries] = []
        self.reference: Optional[PixelSeries] = None
        self.drawn: list = []                          # rows of everything drawn (the CSV)
        self.dates_param: Optional[str] = None
        self.missing: List[str] = []
        self._sources: list = []                       # (kind, point/geometry, crs) of each pick
        self._ref_source = None
        self._n_labels = 0
        self._quiet = False
        self._disposed = False
        # before the combo boxes exist: this slot then runs before their models pick another layer
        self._project = QgsProject.instance()
        self._project.layersWillBeRemoved.connect(self._layers_removed)
        self.marks = MapMarks(self.canvas) if self.canvas is not None else None
        self.tool = InspectorMapTool(self.canvas) if self.canvas is not None else None
        self.poly_tool = PolygonMapTool(self.canvas) if self.canvas is not None else None
        if self.tool is not None:
            # the dock owns its tools (Qt children): deleted with it, in its thread
            self.tool.setParent(self)
            self.poly_tool.setParent(self)
            self.tool.canvasClicked.connect(self._clicked)
            self.poly_tool.polygonDone.connect(self._polygon_drawn)
        self._build()
        self._redraw()

    # --- widgets -----------------------------------------------------------------------------
    def _build(self):
        w = QWidget()
        lay = QVBoxLayout(w)
        top = QHBoxLayout()
        top.addWidget(QLabel("Run"))
        self.run_combo = QComboBox()
        self.run_combo.setToolTip("The run whose layers are read; layers of different runs are never mixed")
        top.addWidget(self.run_combo, 1)
        self.auto_btn = QPushButton("Find result layers")
        top.addWidget(self.auto_btn)
        lay.addLayout(top)
        self.layers_box = box = QgsCollapsibleGroupBox("Layers")
        form = QFormLayout(box)
        self.combos: Dict[str, QgsMapLayerComboBox] = {}
        for role, label in ROLES:
            cb = QgsMapLayerComboBox()
            cb.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
            cb.setAllowEmptyLayer(True)
            cb.setLayer(None)
            cb.layerChanged.connect(self._layers_changed)
            self.combos[role] = cb
            form.addRow(label, cb)
        lay.addWidget(box)
        self.figure, self.plot_canvas = figure_canvas()
        if self.plot_canvas is not None:
            self.plot_canvas.setMinimumHeight(300)
            lay.addWidget(self.plot_canvas, 1)
        else:
            self.plot_label = QLabel()
            self.plot_label.setMinimumHeight(300)
            lay.addWidget(self.plot_label, 1)
        self.info = QLabel("Click 'Pick pixel', then a pixel on the map.")
        self.info.setWordWrap(True)
        lay.addWidget(self.info)
        row1, row2 = QHBoxLayout(), QHBoxLayout()
        self.pick_btn = QPushButton("Pick pixel")
        self.pick_btn.setCheckable(True)
        self.poly_btn = QPushButton("Polygon average")
        self.poly_btn.setCheckable(True)
        self.poly_btn.setToolTip("Left clicks add vertices, a right click closes the polygon")
        self.sel_btn = QPushButton("Selected polygons")
        self.sel_btn.setToolTip("Average over the selected features of the active polygon layer")
        self.ref_btn = QPushButton("Set reference")
        self.ref_btn.setCheckable(True)
        self.ref_btn.setToolTip("The next pixel or polygon picked becomes the reference: its series is "
                                "subtracted from every other")
        self.unref_btn = QPushButton("Clear reference")
        for b in (self.pick_btn, self.poly_btn, self.sel_btn, self.ref_btn, self.unref_btn):
            row1.addWidget(b)
        self.overlay_box = QCheckBox("Overlay picks")
        self.overlay_box.setChecked(True)
        self.members_box = QCheckBox("Members")
        self.zoom_box = QCheckBox("Zoom on the forecast")
        self.clear_btn = QPushButton("Clear")
        self.png_btn = QPushButton("Export PNG…")
        self.csv_btn = QPushButton("Export CSV…")
        for b in (self.overlay_box, self.members_box, self.zoom_box, self.clear_btn, self.png_btn, self.csv_btn):
            row2.addWidget(b)
        lay.addLayout(row1)
        lay.addLayout(row2)
        fm = self.fontMetrics()
        width = getattr(fm, "horizontalAdvance", fm.width)
        w.setMinimumWidth(max(640, width(TITLE) + 160))
        self.setWidget(w)
        # bound methods only: a lambda holding ``self`` would make the dock a reference cycle
        self.pick_btn.toggled.connect(self.activate)
        self.poly_btn.toggled.connect(self.activate_polygon)
        self.sel_btn.clicked.connect(self._selection_clicked)
        self.unref_btn.clicked.connect(self._unref_clicked)
        self.auto_btn.clicked.connect(self._auto_clicked)
        self.run_combo.activated.connect(self._run_chosen)
        for b in (self.zoom_box, self.members_box):
            b.toggled.connect(self._option_toggled)
        self.clear_btn.clicked.connect(self._clear_clicked)
        self.png_btn.clicked.connect(self._png_clicked)
        self.csv_btn.clicked.connect(self._csv_clicked)

    # button slots (the signals' arguments are not the methods' parameters)
    def _selection_clicked(self, *_):
        self.inspect_selection()

    def _unref_clicked(self, *_):
        self.clear_reference()

    def _auto_clicked(self, *_):
        self.auto_assign()

    def _run_chosen(self, i):
        self.auto_assign(run=self.run_combo.itemData(i))

    def _option_toggled(self, *_):
        self._redraw()

    def _clear_clicked(self, *_):
        self.clear_picks()

    def _png_clicked(self, *_):
        self.export_png()

    def _csv_clicked(self, *_):
        self.export_csv()

    # --- layers ------------------------------------------------------------------------------
    def layers(self) -> Dict[str, Optional[QgsRasterLayer]]:
        return {role: cb.currentLayer() for role, cb in self.combos.items()}

    def set_layers(self, **layers) -> None:
        self._quiet = True
        try:
            for role, lyr in layers.items():
                self.combos[role].setLayer(lyr)
        finally:
            self._quiet = False
        self._layers_changed()

    def auto_assign(self, layers: Optional[Sequence] = None, run=None) -> Dict[str, QgsRasterLayer]:
        """Bind the inspector to one run: each role's layer from that run (by the names the
        workflow writes), roles the run lacks cleared. ``layers``: the candidates (default: the
        project's rasters); ``run``: a run key or label (default: the active layer's run, else
        the run with the most roles, the topmost on a tie)."""
        runs = find_runs(layers)
        active = None
        if run is None and layers is None and self.iface is not None:
            try:
                active = self.iface.activeLayer()
            except Exception:  # noqa: BLE001 - a stub interface
                active = None
        chosen = choose_run(runs, run, active)
        found = chosen.roles() if chosen is not None else {}
        self.run_combo.blockSignals(True)
        self.run_combo.clear()
        for r in runs.values():
            self.run_combo.addItem(r.label, r.key)
        if chosen is not None:
            self.run_combo.setCurrentIndex(self.run_combo.findData(chosen.key))
        self.run_combo.blockSignals(False)
        self.set_layers(**{role: found.get(role) for role, _ in ROLES})
        labels = dict(ROLES)
        self.missing = [role for role, _ in ROLES if role not in found]
        self.layers_box.setCollapsed(chosen is not None)   # more room for the plot; a click reopens it
        if chosen is None:
            msg = "No DeformCast result layers found; choose the layers by hand."
        else:
            msg = f"Run '{chosen.label}': {len(found)} of {len(ROLES)} layers found."
            if self.missing:
                msg += " Not found (left empty): " + ", ".join(labels[r].lower() for r in self.missing) + "."
            if len(runs) > 1:
                msg += f" {len(runs) - 1} other run(s) in the project: choose in the Run list."
        self.info.setText(msg)
        return found

    def _layers_changed(self, *_):
        if not self._quiet and not self._disposed and (self._sources or self._ref_source):
            self._reread()

    def _layers_removed(self, removed) -> None:
        """``QgsProject.layersWillBeRemoved``: empty every role whose layer goes (the combo box
        would otherwise move to some other layer, maybe of another run); the picks stay where
        they are and are read again from the layers left."""
        if self._disposed or not alive(self):
            return
        gone = {x if isinstance(x, str) else x.id() for x in removed}
        roles = [role for role, cb in self.combos.items()
                 if cb.currentLayer() is not None and cb.currentLayer().id() in gone]
        if not roles:
            return
        self.set_layers(**{role: None for role in roles})
        self.missing = [role for role, _ in ROLES if self.combos[role].currentLayer() is None]
        labels = dict(ROLES)
        self.info.setText("Layers removed from the project: " + ", ".join(labels[r].lower() for r in roles)
                          + ". 'Find result layers' binds the dock to a run again.")

    # --- map tools ---------------------------------------------------------------------------
    def activate(self, on: bool = True) -> None:
        self._use_tool(self.tool, on, self.poly_btn)

    def activate_polygon(self, on: bool = True) -> None:
        self._use_tool(self.poly_tool, on, self.pick_btn)

    def _use_tool(self, tool, on, other_btn):
        if self.canvas is None or tool is None or self._disposed:
            return
        if on:
            other_btn.blockSignals(True)
            other_btn.setChecked(False)
            other_btn.blockSignals(False)
            self.canvas.setMapTool(tool)
        elif self.canvas.mapTool() is tool:
            self.canvas.unsetMapTool(tool)

    def _clicked(self, point, button=None):
        self.inspect(point)

    def _polygon_drawn(self, geom):
        self.inspect_area(geom)

    def _canvas_crs(self) -> QgsCoordinateReferenceSystem:
        return (self.canvas.mapSettings().destinationCrs() if self.canvas is not None
                else QgsProject.instance().crs())

    # --- picks -------------------------------------------------------------------------------
    def _read(self, kind, obj, crs) -> PixelSeries:
        if kind == "area":
            return area_series(self.layers(), obj, crs, self.dates_param)
        return pixel_series(self.layers(), QgsPointXY(obj), crs, self.dates_param)

    def _pick(self, kind, obj, crs, add, reference):
        crs = crs if crs is not None else self._canvas_crs()
        as_ref = reference or self.ref_btn.isChecked()
        try:
            ps = self._read(kind, obj, crs)
        except Exception as e:  # noqa: BLE001 - e.g. a stack without dates: say so in the dock
            self.series = None
            self.info.setText(f"Cannot read this {'area' if kind == 'area' else 'pixel'}: {e}")
            self._redraw()
            self.inspected.emit(None)
            return None
        if as_ref:
            ps.label = "R"
            self.reference, self._ref_source = ps, (kind, obj, crs)
            self.ref_btn.setChecked(False)
            if self.marks is not None:
                self.marks.add(ps, REFERENCE_COLOUR, crs, reference=True)
            self.info.setText(f"Reference R: {ps.where()}; its series is subtracted from every pick.")
        else:
            if not (self.overlay_box.isChecked() if add is None else add):
                self.clear_picks(redraw=False)
            ps.label = self._next_label()
            self.picks.append(ps)
            self._sources.append((kind, obj, crs))
            self.series = ps
            if self.marks is not None:
                self.marks.add(ps, colour(len(self.picks) - 1), crs)
            where = ps.where() if ps.kind == "area" or ps.pixel else "outside the layers"
            self.info.setText(f"{ps.label}: x={ps.point[0]:.2f}, y={ps.point[1]:.2f} ({crs.authid()}) — {where}"
                              + (f"; relative to {self.reference.where()}" if self.reference else ""))
        self._redraw()
        self.inspected.emit(ps)
        return ps

    def _next_label(self) -> str:
        n = self._n_labels
        self._n_labels += 1
        letters = string.ascii_uppercase.replace("R", "")
        return letters[n % len(letters)] + (str(n // len(letters)) if n >= len(letters) else "")

    def inspect(self, point: QgsPointXY, crs: Optional[QgsCoordinateReferenceSystem] = None,
                add: Optional[bool] = None, reference: bool = False) -> Optional[PixelSeries]:
        """Read the chosen layers at ``point`` (canvas CRS unless ``crs``) and plot them.

        ``add``: keep the earlier picks (default: the 'Overlay picks' box); ``reference``: make
        this pixel the reference instead of a pick."""
        return self._pick("pixel", QgsPointXY(point), crs, add, reference)

    def inspect_area(self, geometry: QgsGeometry, crs: Optional[QgsCoordinateReferenceSystem] = None,
                     add: Optional[bool] = None, reference: bool = False) -> Optional[PixelSeries]:
        """Average the chosen layers over the pixels whose centres fall inside ``geometry``."""
        return self._pick("area", QgsGeometry(geometry), crs, add, reference)

    def inspect_selection(self, layer: Optional[QgsVectorLayer] = None, reference: bool = False):
        """An area pick from the selected polygons of ``layer`` (default: the active layer)."""
        if layer is None and self.iface is not None:
            layer = self.iface.activeLayer()
        if not isinstance(layer, QgsVectorLayer) or layer.geometryType() != QgsWkbTypes.PolygonGeometry:
            self.info.setText("Make a polygon layer active and select polygons in it (e.g. Control zones).")
            return None
        geoms = [f.geometry() for f in layer.selectedFeatures() if f.hasGeometry()]
        if not geoms:
            self.info.setText(f"Select one or more polygons in '{layer.name()}' first.")
            return None
        return self.inspect_area(QgsGeometry.unaryUnion(geoms), layer.crs(), reference=reference)

    def clear_reference(self) -> None:
        self.reference, self._ref_source = None, None
        if self.marks is not None:
            self.marks.clear_reference()
        self._redraw()

    def clear_picks(self, redraw: bool = True) -> None:
        """Remove every pick and its marker (the reference stays)."""
        self.picks, self._sources, self.series, self._n_labels = [], [], None, 0
        if self.marks is not None:
            self.marks.clear()
        if redraw:
            self._redraw()

    def _reread(self):
        """Read every pick again (the layers changed): same places, same labels."""
        try:
            labels = [p.label for p in self.picks]
            self.picks = [self._read(*src) for src in self._sources]
            for p, lab in zip(self.picks, labels):
                p.label = lab
            if self._ref_source is not None:
                self.reference = self._read(*self._ref_source)
                self.reference.label = "R"
            self.series = self.picks[-1] if self.picks else None
        except Exception as e:  # noqa: BLE001 - e.g. the new stack has no dates
            self.info.setText(f"Cannot read the picks from these layers: {e}")
        self._redraw()

    def shown(self) -> List[PixelSeries]:
        """The picks as drawn (relative to the reference when one is set)."""
        if self.reference is None:
            return list(self.picks)
        return [relative_to(p, self.reference) for p in self.picks]

    def _redraw(self):
        if self._disposed or not alive(self):
            return
        self.drawn = draw(self.figure, self.shown(), zoom=self.zoom_box.isChecked(),
                          members=self.members_box.isChecked())
        if self.plot_canvas is not None:
            if alive(self.plot_canvas):
                self.plot_canvas.draw()
        else:
            import tempfile

            from qgis.PyQt.QtGui import QPixmap

            fd, tmp = tempfile.mkstemp(suffix=".png")
            os.close(fd)
            self.figure.savefig(tmp, dpi=90)
            self.plot_label.setPixmap(QPixmap(tmp))
            os.remove(tmp)

    # --- lifetime ----------------------------------------------------------------------------
    def _release_canvas(self) -> None:
        """Unset the dock's map tools (and untick their buttons); drop a polygon being drawn."""
        for btn in (self.pick_btn, self.poly_btn, self.ref_btn):
            btn.blockSignals(True)
            btn.setChecked(False)
            btn.blockSignals(False)
        if not alive(self.canvas):
            return
        for tool in (self.tool, self.poly_tool):
            if alive(tool) and self.canvas.mapTool() is tool:
                self.canvas.unsetMapTool(tool)
        if alive(self.poly_tool):
            self.poly_tool.reset()

    def closeEvent(self, ev):  # noqa: N802
        """Closed (hidden: the plugin shows it again): no map tool of ours stays on the canvas,
        and the marks are hidden until the dock is shown again."""
        self._release_canvas()
        if self.marks is not None and alive(self.canvas):
            self.marks.set_visible(False)
        super().closeEvent(ev)

    def showEvent(self, ev):  # noqa: N802
        if self.marks is not None and alive(self.canvas):
            self.marks.set_visible(True)
        super().showEvent(ev)

    def dispose(self) -> None:
        """The end of the dock: its map tools, its marks and rubber band leave the canvas, it
        leaves the project's signals, and it is deleted by the main thread's event loop
        (``deleteLater``; a test without one sends the ``DeferredDelete`` event itself). Call it
        instead of dropping the dock (the plugin's unload, a test's end)."""
        if self._disposed or not alive(self):
            return
        self._release_canvas()
        self._disposed = True
        try:
            self._project.layersWillBeRemoved.disconnect(self._layers_removed)
        except (TypeError, RuntimeError):  # already disconnected, or the project is gone
            pass
        if alive(self.canvas):
            if self.marks is not None:
                self.marks.remove_all()
            if alive(self.poly_tool):
                self.poly_tool.release()
            self.canvas.refresh()
        self.picks, self._sources, self.series, self.reference, self._ref_source = [], [], None, None, None
        _PARENTLESS.pop(id(self), None)
        self.deleteLater()

    # --- export ------------------------------------------------------------------------------
    def export_png(self, path: Optional[str] = None) -> Optional[str]:
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save plot", "pixel_series.png", "PNG (*.png)")
        if not path:
            return None
        self.figure.savefig(path, dpi=150)
        return path

    def export_csv(self, path: Optional[str] = None) -> Optional[str]:
        """Every value drawn, one row each (``pick, kind, x, y, reference, series, member,
        date_or_label, value``; x/y: the pixel clicked or the polygon's centroid)."""
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save data", "pixel_series.csv", "CSV (*.csv)")
        if not path or not self.drawn:
            return None
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(COLUMNS)
            for r in self.drawn:
                w.writerow([r[0], r[1], f"{r[2]:.3f}", f"{r[3]:.3f}", *r[4:8],
                            "" if not np.isfinite(r[8]) else f"{r[8]:.6g}"])
        return path
