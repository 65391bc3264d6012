"""Time-series inspector: click a pixel, see the series behind the forecast maps.

A map tool (:class:`InspectorMapTool`, a ``QgsMapToolEmitPoint``) hands the clicked point to a
dock (:class:`InspectorDock`) that plots, for that pixel,

* the observed displacement series (the stack; dates from :func:`algorithms.raster.open_stack`),
* every ensemble member's forecast (``OUTPUT_MEMBERS``: bands ``member<k> <ISO date>``,
  member-major),
* the ensemble median (``OUTPUT_MEDIAN``) and the P10–P90 band (``OUTPUT_QUANTILES``: bands
  named ``P10``/``P50``/``P90``, with a date when the quantiles cover several epochs; quantiles
  of the final epoch only are drawn as a bar at the last forecast date),
* the susceptibility class (and class probabilities when a raster of them is set, or when the
  susceptibility raster carries them as extra bands) and the exceedance probability per
  threshold (``OUTPUT_EXCEEDANCE``, one band per threshold, named in its description),

and exports the plot as PNG and the numbers as CSV. The values are read at the clicked point,
transformed from the canvas CRS into each layer's CRS, with the core's ``raster.read_band`` (band
nodata, scale/offset and a displacement's length unit applied, as the algorithms read them;
QGIS's identify for sources GDAL cannot open) (:func:`sample_layers`, :func:`pixel_series`).
Nothing is computed here beyond picking values: the plotted numbers are raster values.
"""
from __future__ import annotations

import csv
import math
import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsMapLayerProxyModel,
    QgsPalettedRasterRenderer,
    QgsPointXY,
    QgsProject,
    QgsRaster,
    QgsRasterLayer,
)
from qgis.gui import QgsMapLayerComboBox, QgsMapToolEmitPoint
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QDockWidget,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

#: the layers the inspector reads, in the order of the dock's combo boxes
ROLES = [
    ("stack", "Observed stack"),
    ("members", "Ensemble members"),
    ("median", "Forecast median"),
    ("quantiles", "Forecast quantiles"),
    ("susceptibility", "Susceptibility"),
    ("probabilities", "Class probabilities"),
    ("exceedance", "Exceedance probability"),
]

#: file-name fragments used to pick the layers of a result group automatically
_HINTS = {  # checked in this order (an exceedance probability layer is not a class probability)
    "members": ("members",), "median": ("median",), "quantiles": ("quantile", "p10/p50/p90"),
    "susceptibility": ("susceptibility",), "exceedance": ("exceedance",),
    "probabilities": ("class_probabilit", "class probabilit"), "stack": ("stack", "displacement"),
}

_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})")
_MEMBER = re.compile(r"member\s*_?(\d+)", re.IGNORECASE)
_PCT = re.compile(r"\b[Pp](\d{1,2}(?:\.\d+)?)\b")


@dataclass
class Sample:
    """The values of all bands of one raster at one point."""

    values: np.ndarray            # float64, NaN where nodata / outside
    names: List[str]              # band descriptions
    row: Optional[int] = None
    col: Optional[int] = None
    class_labels: Dict[int, str] = field(default_factory=dict)


def band_names(layer: QgsRasterLayer) -> List[str]:
    """Band descriptions as GDAL reads them (ISO dates, ``member<k> <date>``, ``P10`` ...)."""
    n = layer.bandCount()
    try:
        from osgeo import gdal

        ds = gdal.Open(layer.source())
        if ds is not None:
            return [ds.GetRasterBand(i + 1).GetDescription() or "" for i in range(ds.RasterCount)]
    except Exception:  # noqa: BLE001 - not a GDAL file: fall back to QGIS's band names
        pass
    return [layer.bandName(i + 1) for i in range(n)]


def _class_labels(layer: QgsRasterLayer) -> Dict[int, str]:
    r = layer.renderer()
    if isinstance(r, QgsPalettedRasterRenderer):
        return {int(c.value): c.label for c in r.classes()}
    return {}


def _gdal_pixel(layer: QgsRasterLayer, pt: QgsPointXY, to_mm: bool):
    """``(values, row, col)`` of every band at ``pt`` (layer CRS) read by the core's
    :func:`algorithms.raster.read_band` (nodata, band scale/offset and, with ``to_mm``, the
    declared length unit applied, exactly as the algorithms read it); ``None`` when GDAL cannot
    open the source; ``(None, None, None)`` outside the raster."""
    try:
        from osgeo import gdal

        from ..algorithms.raster import read_band

        ds = gdal.OpenEx(layer.source(), gdal.OF_RASTER)
    except Exception:  # noqa: BLE001 - not a GDAL file: QGIS's identify is used instead
        return None
    if ds is None or ds.RasterCount != layer.bandCount():
        return None
    x0, dx, rx, y0, ry, dy = ds.GetGeoTransform()
    if rx or ry or not dx or not dy:
        return None  # rotated grids: left to QGIS
    col = int(math.floor((pt.x() - x0) / dx))
    row = int(math.floor((pt.y() - y0) / dy))
    if not (0 <= col < ds.RasterXSize and 0 <= row < ds.RasterYSize):
        return None, None, None
    vals = np.array([float(read_band(ds.GetRasterBand(b + 1), col, row, 1, 1, to_mm=to_mm)[0, 0])
                     for b in range(ds.RasterCount)], dtype=np.float64)
    return vals, row, col


def sample_layer(layer: QgsRasterLayer, point: QgsPointXY, crs: QgsCoordinateReferenceSystem,
                 to_mm: bool = False) -> Sample:
    """All band values of ``layer`` at ``point`` (given in ``crs``); NaN outside or nodata.

    GDAL rasters are read as the algorithms read them (band scale/offset applied; ``to_mm``: a
    displacement stack's length unit converted to mm); other sources through QGIS's identify.
    """
    names = band_names(layer)
    n = layer.bandCount()
    vals = np.full(n, np.nan)
    pt = QgsPointXY(point)
    if crs is not None and crs.isValid() and layer.crs().isValid() and crs != layer.crs():
        pt = QgsCoordinateTransform(crs, layer.crs(), QgsProject.instance()).transform(pt)
    got = _gdal_pixel(layer, pt, to_mm)
    if got is not None:
        v, row, col = got
        return Sample(vals if v is None else v, names, row, col, _class_labels(layer))
    ext = layer.extent()
    row = col = None
    if ext.contains(pt):
        prov = layer.dataProvider()
        res = prov.identify(pt, QgsRaster.IdentifyFormat.IdentifyFormatValue).results()
        for b in range(1, n + 1):
            v = res.get(b)
            try:
                vals[b - 1] = float(v) if v is not None else np.nan
            except (TypeError, ValueError):
                vals[b - 1] = np.nan
        col = int(math.floor((pt.x() - ext.xMinimum()) / layer.rasterUnitsPerPixelX()))
        row = int(math.floor((ext.yMaximum() - pt.y()) / layer.rasterUnitsPerPixelY()))
    return Sample(vals, names, row, col, _class_labels(layer))


def sample_layers(layers: Dict[str, Optional[QgsRasterLayer]], point: QgsPointXY,
                  crs: QgsCoordinateReferenceSystem) -> Dict[str, Sample]:
    """``sample_layer`` for every role that has a layer."""
    return {role: sample_layer(lyr, point, crs, to_mm=role in ("stack", "members", "median", "quantiles"))
            for role, lyr in layers.items() if lyr is not None}


def _date(text: str):
    m = _DATE.search(text or "")
    return np.datetime64(m.group(1), "D") if m else None


@dataclass
class PixelSeries:
    """What the inspector plots for one pixel (all values in the rasters' units)."""

    point: Tuple[float, float]
    observed: Optional[Tuple[np.ndarray, np.ndarray]] = None        # dates, mm
    members: Dict[int, Tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    median: Optional[Tuple[np.ndarray, np.ndarray]] = None
    quantiles: Dict[str, Tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # "P10" -> dates, mm
    susceptibility_class: Optional[Tuple[float, str]] = None
    class_probabilities: List[Tuple[str, float]] = field(default_factory=list)
    exceedance: List[Tuple[str, float]] = field(default_factory=list)
    pixel: Optional[Tuple[int, int]] = None  # row, col in the stack (or first layer)

    def is_empty(self) -> bool:
        return (self.observed is None and not self.members and self.median is None
                and not self.quantiles and self.susceptibility_class is None and not self.exceedance)

    def rows(self) -> List[Tuple[str, str, str, float]]:
        """(series, member, date or label, value) rows for the CSV export."""
        out = []
        if self.observed is not None:
            out += [("observed", "", str(d), float(v)) for d, v in zip(*self.observed)]
        for k in sorted(self.members):
            out += [("member", str(k), str(d), float(v)) for d, v in zip(*self.members[k])]
        if self.median is not None:
            out += [("median", "", str(d), float(v)) for d, v in zip(*self.median)]
        for q in sorted(self.quantiles, key=lambda s: float(s[1:]) if s[1:].replace(".", "").isdigit() else 0):
            out += [(q, "", str(d), float(v)) for d, v in zip(*self.quantiles[q])]
        if self.susceptibility_class is not None:
            out.append(("susceptibility class", "", self.susceptibility_class[1], float(self.susceptibility_class[0])))
        out += [("class probability", "", lab, float(v)) for lab, v in self.class_probabilities]
        out += [("exceedance probability", "", lab, float(v)) for lab, v in self.exceedance]
        return out


def pixel_series(layers: Dict[str, Optional[QgsRasterLayer]], point: QgsPointXY,
                 crs: QgsCoordinateReferenceSystem, dates: Optional[str] = None) -> PixelSeries:
    """Read every chosen raster at ``point`` (in ``crs``) and arrange the values for plotting.

    ``dates`` is the stack's DATES parameter when its bands carry no dates.
    """
    s = sample_layers(layers, point, crs)
    ps = PixelSeries((point.x(), point.y()))
    for role in ("stack", "members", "median", "quantiles", "susceptibility", "exceedance"):
        if role in s and s[role].row is not None:
            ps.pixel = (s[role].row, s[role].col)
            break
    if "stack" in s:
        from ..algorithms.raster import open_stack

        info = open_stack(layers["stack"].source(), dates or None)
        ps.observed = (info.dates, s["stack"].values)
    if "members" in s:
        by_member: Dict[int, List[Tuple[np.datetime64, float]]] = {}
        for name, v in zip(s["members"].names, s["members"].values):
            m, d = _MEMBER.search(name or ""), _date(name)
            if m is None or d is None:
                continue
            by_member.setdefault(int(m.group(1)), []).append((d, v))
        for k, items in by_member.items():
            ps.members[k] = (np.array([d for d, _ in items], dtype="datetime64[D]"), np.array([v for _, v in items]))
    last_date = None
    if "median" in s:
        ds = [_date(n) for n in s["median"].names]
        if all(d is not None for d in ds):
            ps.median = (np.array(ds, dtype="datetime64[D]"), s["median"].values)
            last_date = ds[-1] if ds else None
    if last_date is None and ps.members:
        last_date = max(d[-1] for d, _ in ps.members.values())
    if "quantiles" in s:
        for name, v in zip(s["quantiles"].names, s["quantiles"].values):
            m = _PCT.search(name or "")
            if m is None:
                continue
            d = _date(name) or last_date
            if d is None:
                continue
            key = "P" + m.group(1)
            dd, vv = ps.quantiles.get(key, (np.array([], dtype="datetime64[D]"), np.array([])))
            ps.quantiles[key] = (np.append(dd, np.datetime64(d, "D")), np.append(vv, v))
    if "susceptibility" in s:
        smp = s["susceptibility"]
        v = smp.values[0]
        if np.isfinite(v):
            ps.susceptibility_class = (float(v), smp.class_labels.get(int(round(v)), f"class {int(round(v))}"))
        if len(smp.values) > 1 and "probabilities" not in s:
            ps.class_probabilities = [(n or f"band {i + 2}", float(x))
                                      for i, (n, x) in enumerate(zip(smp.names[1:], smp.values[1:]))]
    if "probabilities" in s:
        p = s["probabilities"]
        ps.class_probabilities = [(n or f"class {i + 1}", float(x)) for i, (n, x) in enumerate(zip(p.names, p.values))]
    if "exceedance" in s:
        e = s["exceedance"]
        ps.exceedance = [(n or f"threshold {i + 1}", float(x)) for i, (n, x) in enumerate(zip(e.names, e.values))]
    return ps


# --------------------------------------------------------------------------------------------
# plotting
# --------------------------------------------------------------------------------------------
def _as_dates(d: np.ndarray):
    return np.asarray(d, dtype="datetime64[D]").astype("datetime64[ms]").astype(object)


def _zoom_window(ps: PixelSeries):
    """(start, end) dates showing the forecast and the epochs just before it, or None."""
    fdates = [d for d, _ in ps.members.values()] + ([ps.median[0]] if ps.median is not None else [])
    fdates = [np.asarray(d, dtype="datetime64[D]") for d in fdates if len(d)]
    if not fdates:
        return None
    first = min(d.min() for d in fdates)
    last = max(d.max() for d in fdates)
    n_fc = max(len(d) for d in fdates)
    start = first
    if ps.observed is not None and len(ps.observed[0]):
        before = ps.observed[0][ps.observed[0] < first]
        if len(before):
            start = before[-min(len(before), max(3 * n_fc, 6))]
    pad = max(np.timedelta64(1, "D"), (last - start) // 20)
    return start - pad, last + pad


def draw(fig, ps: Optional[PixelSeries], title: str = "", zoom: bool = False) -> None:
    """Draw ``ps`` into a matplotlib Figure. Artists carry gids (``observed``, ``member<k>``,
    ``median``, ``P10``..., ``band``) so a test can read back exactly what was plotted.
    ``zoom`` limits the time axis to the forecast and the epochs just before it."""
    fig.clear()
    has_bars = ps is not None and (ps.class_probabilities or ps.exceedance)
    if has_bars:
        gs = fig.add_gridspec(1, 3)
        ax = fig.add_subplot(gs[0, :2])
        axb = fig.add_subplot(gs[0, 2])
    else:
        ax, axb = fig.add_subplot(111), None
    if ps is None or ps.is_empty():
        ax.text(0.5, 0.5, "Choose the layers, then click a pixel on the map\n(Pick pixel tool)",
                ha="center", va="center", transform=ax.transAxes, color="#555")
        ax.set_axis_off()
        return
    if ps.observed is not None:
        ax.plot(_as_dates(ps.observed[0]), ps.observed[1], "o-", ms=2.5, lw=1, color="#222", label="observed",
                gid="observed")
    for i, k in enumerate(sorted(ps.members)):
        d, v = ps.members[k]
        ax.plot(_as_dates(d), v, "-", lw=0.8, color="#6baed6", alpha=0.7,
                label="ensemble members" if i == 0 else None, gid=f"member{k}")
    lo, hi = ps.quantiles.get("P10"), ps.quantiles.get("P90")
    if lo is not None and hi is not None and len(lo[0]) == len(hi[0]):
        if len(lo[0]) > 1:
            coll = ax.fill_between(_as_dates(lo[0]), lo[1], hi[1], color="#fd8d3c", alpha=0.25, label="P10–P90")
            coll.set_gid("band")
        else:
            mid = ps.quantiles.get("P50", (lo[0], (lo[1] + hi[1]) / 2.0))[1]
            eb = ax.errorbar(_as_dates(lo[0]), mid, yerr=[mid - lo[1], hi[1] - mid], fmt="none",
                             ecolor="#e6550d", elinewidth=2.5, capsize=5, label="P10–P90 (last epoch)")
            eb.lines[2][0].set_gid("band")
    for q in sorted(ps.quantiles):
        d, v = ps.quantiles[q]
        ax.plot(_as_dates(d), v, "_", ms=12, mew=2, color="#e6550d", gid=q)
    if ps.median is not None:
        ax.plot(_as_dates(ps.median[0]), ps.median[1], "s-", ms=3, lw=2, color="#d62728", label="ensemble median",
                gid="median")
    win = _zoom_window(ps) if zoom else None
    if win is not None:
        vals = []
        for ln in ax.get_lines():
            xd = np.asarray(ln.get_xdata()).astype("datetime64[D]")
            yd = np.asarray(ln.get_ydata(), dtype=float)
            keep = (xd >= win[0]) & (xd <= win[1]) & np.isfinite(yd)
            vals.extend(yd[keep].tolist())
        for q in ps.quantiles.values():
            vals.extend([v for v in q[1] if np.isfinite(v)])
        ax.set_xlim(_as_dates(np.array(win)))
        if vals:
            lo, hi = min(vals), max(vals)
            m = max(0.5, 0.08 * (hi - lo))
            ax.set_ylim(lo - m, hi + m)
    ax.set_ylabel("displacement (mm)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=7)
    sub = ""
    if ps.susceptibility_class is not None:
        sub = f" — susceptibility: {ps.susceptibility_class[1]}"
    ax.set_title((title or f"x={ps.point[0]:.1f}, y={ps.point[1]:.1f}") + sub, fontsize=9)
    fig.autofmt_xdate()
    if axb is not None:
        labels = [lab if lab.startswith("P(") else f"P({lab})" for lab, _ in ps.class_probabilities] + [lab for lab, _ in ps.exceedance]
        vals = [v for _, v in ps.class_probabilities] + [v for _, v in ps.exceedance]
        colours = ["#756bb1"] * len(ps.class_probabilities) + ["#e31a1c"] * len(ps.exceedance)
        labels = [lab if len(lab) <= 26 else lab[:25] + "…" for lab in labels]
        y = np.arange(len(vals))
        bars = axb.barh(y, np.nan_to_num(vals), color=colours)
        for b, lab in zip(bars, labels):
            b.set_gid(lab)
        axb.set_yticks(y)
        axb.set_yticklabels(labels, fontsize=7)
        axb.invert_yaxis()
        axb.set_xlim(0, 1)
        axb.set_xlabel("probability", fontsize=8)
        axb.set_title("class / exceedance", fontsize=9)
    fig.tight_layout()


def _figure_canvas():
    """A matplotlib Qt canvas (qtagg, else qt5agg), or None to fall back to a PNG label."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.6))
    for mod in ("matplotlib.backends.backend_qtagg", "matplotlib.backends.backend_qt5agg"):
        try:
            import importlib

            canvas_cls = importlib.import_module(mod).FigureCanvasQTAgg
            return fig, canvas_cls(fig)
        except Exception:  # noqa: BLE001 - try the next backend
            continue
    return fig, None


class InspectorMapTool(QgsMapToolEmitPoint):
    """Emits ``canvasClicked(QgsPointXY, Qt.MouseButton)`` when the mouse button is released
    (a completed click); the dock listens."""

    def __init__(self, canvas):
        super().__init__(canvas)
        try:
            self.setCursor(Qt.CursorShape.CrossCursor)
        except TypeError:  # pragma: no cover
            pass

    def canvasPressEvent(self, e):  # noqa: N802 - the click counts on release
        pass

    def canvasReleaseEvent(self, e):  # noqa: N802
        self.canvasClicked.emit(self.toMapCoordinates(e.pos()), e.button())


class InspectorDock(QDockWidget):
    """The dock: layer choices, the plot, 'Pick pixel', PNG and CSV export."""

    inspected = pyqtSignal(object)

    def __init__(self, iface=None, canvas=None, parent=None):
        super().__init__("DeformCast time-series inspector", parent)
        self.setObjectName("DeformCastInspector")
        self.iface = iface
        self.canvas = canvas if canvas is not None else (iface.mapCanvas() if iface is not None else None)
        self.series: Optional[PixelSeries] = None
        self.dates_param: Optional[str] = None
        self.tool = InspectorMapTool(self.canvas) if self.canvas is not None else None
        if self.tool is not None:
            self.tool.canvasClicked.connect(self._clicked)
        w = QWidget()
        lay = QVBoxLayout(w)
        form = QFormLayout()
        self.combos: Dict[str, QgsMapLayerComboBox] = {}
        for role, label in ROLES:
            cb = QgsMapLayerComboBox()
            cb.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
            cb.setAllowEmptyLayer(True)
            cb.setLayer(None)
            self.combos[role] = cb
            form.addRow(label, cb)
        lay.addLayout(form)
        self.figure, self.plot_canvas = _figure_canvas()
        if self.plot_canvas is not None:
            self.plot_canvas.setMinimumHeight(260)
            lay.addWidget(self.plot_canvas, 1)
        else:
            self.plot_label = QLabel()
            self.plot_label.setMinimumHeight(260)
            lay.addWidget(self.plot_label, 1)
        self.info = QLabel("Click 'Pick pixel', then a pixel on the map.")
        self.info.setWordWrap(True)
        lay.addWidget(self.info)
        row = QHBoxLayout()
        self.pick_btn = QPushButton("Pick pixel")
        self.pick_btn.setCheckable(True)
        self.auto_btn = QPushButton("Find result layers")
        self.zoom_box = QCheckBox("Zoom on the forecast")
        self.png_btn = QPushButton("Export PNG…")
        self.csv_btn = QPushButton("Export CSV…")
        for b in (self.pick_btn, self.auto_btn, self.zoom_box, self.png_btn, self.csv_btn):
            row.addWidget(b)
        lay.addLayout(row)
        self.setWidget(w)
        self.pick_btn.toggled.connect(self.activate)
        self.auto_btn.clicked.connect(lambda: self.auto_assign())
        self.zoom_box.toggled.connect(lambda _: self._redraw())
        self.png_btn.clicked.connect(lambda: self.export_png())
        self.csv_btn.clicked.connect(lambda: self.export_csv())
        self._redraw()

    # --- layers ----------------------------------------------------------------------------
    def layers(self) -> Dict[str, Optional[QgsRasterLayer]]:
        return {role: cb.currentLayer() for role, cb in self.combos.items()}

    def set_layers(self, **layers) -> None:
        for role, lyr in layers.items():
            self.combos[role].setLayer(lyr)

    def auto_assign(self, layers: Optional[Sequence] = None) -> Dict[str, QgsRasterLayer]:
        """Pick each role's layer by its file or layer name (the names the workflow writes)."""
        cands = list(layers) if layers is not None else list(QgsProject.instance().mapLayers().values())
        found = {}
        for lyr in cands:
            if not isinstance(lyr, QgsRasterLayer):
                continue
            base = os.path.basename(lyr.source()).lower() + " | " + lyr.name().lower()
            for role, hints in _HINTS.items():
                if role not in found and any(h in base for h in hints):
                    found[role] = lyr
                    break
        self.set_layers(**found)
        return found

    # --- map tool --------------------------------------------------------------------------
    def activate(self, on: bool = True) -> None:
        if self.canvas is None or self.tool is None:
            return
        if on:
            self.canvas.setMapTool(self.tool)
        elif self.canvas.mapTool() is self.tool:
            self.canvas.unsetMapTool(self.tool)

    def _clicked(self, point, button=None):
        self.inspect(point)

    def inspect(self, point: QgsPointXY, crs: Optional[QgsCoordinateReferenceSystem] = None) -> PixelSeries:
        """Read the chosen layers at ``point`` (canvas CRS unless ``crs``) and plot them."""
        if crs is None:
            crs = (self.canvas.mapSettings().destinationCrs() if self.canvas is not None
                   else QgsProject.instance().crs())
        try:
            self.series = pixel_series(self.layers(), QgsPointXY(point), crs, self.dates_param)
            px = f" — pixel row {self.series.pixel[0]}, col {self.series.pixel[1]}" if self.series.pixel else ""
            self.info.setText(f"x={point.x():.2f}, y={point.y():.2f} ({crs.authid()}){px}"
                              + ("" if self.series.pixel else " — outside the layers"))
        except Exception as e:  # noqa: BLE001 - e.g. a stack without dates: say so in the dock
            self.series = None
            self.info.setText(f"Cannot read this pixel: {e}")
        self._redraw()
        self.inspected.emit(self.series)
        return self.series

    def _redraw(self):
        draw(self.figure, self.series, zoom=self.zoom_box.isChecked())
        if self.plot_canvas is not None:
            self.plot_canvas.draw()
        else:
            import tempfile

            from qgis.PyQt.QtGui import QPixmap

            fd, tmp = tempfile.mkstemp(suffix=".png")
            os.close(fd)
            self.figure.savefig(tmp, dpi=90)
            self.plot_label.setPixmap(QPixmap(tmp))
            os.remove(tmp)

    # --- export ----------------------------------------------------------------------------
    def export_png(self, path: Optional[str] = None) -> Optional[str]:
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save plot", "pixel_series.png", "PNG (*.png)")
        if not path:
            return None
        self.figure.savefig(path, dpi=150)
        return path

    def export_csv(self, path: Optional[str] = None) -> Optional[str]:
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save data", "pixel_series.csv", "CSV (*.csv)")
        if not path or self.series is None:
            return None
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["x", "y", "series", "member", "date_or_label", "value"])
            for r in self.series.rows():
                w.writerow([f"{self.series.point[0]:.3f}", f"{self.series.point[1]:.3f}", *r[:3],
                            "" if not np.isfinite(r[3]) else f"{r[3]:.6g}"])
        return path
