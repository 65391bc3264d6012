"""QGIS layer styles (``.qml``) written as plain XML text, so the QGIS-free core can style its
outputs and they open styled in QGIS, qgis_process runs included.

Ramps are ColorBrewer-like lists of hex colours.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple
from xml.sax.saxutils import escape

import numpy as np

RAMPS = {
    # diverging, centred use: subsidence (negative) red, uplift blue
    "deformation": ["#67001f", "#b2182b", "#d6604d", "#f4a582", "#f7f7f7", "#92c5de", "#4393c3", "#2166ac", "#053061"],
    "residual": ["#40004b", "#762a83", "#9970ab", "#c2a5cf", "#f7f7f7", "#a6dba0", "#5aae61", "#1b7837", "#00441b"],
    "probability": ["#ffffcc", "#ffeda0", "#fed976", "#feb24c", "#fd8d3c", "#fc4e2a", "#e31a1c", "#b10026"],
    "spread": ["#f7fcf5", "#c7e9c0", "#74c476", "#238b45", "#00441b"],
    "ambiguity": ["#fff7f3", "#fcc5c0", "#f768a1", "#ae017e", "#49006a"],
    "confidence": ["#f7fbff", "#c6dbef", "#6baed6", "#2171b5", "#08306b"],
    "viridis": ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"],
}

CLASS_COLOURS = ["#1a9641", "#a6d96a", "#ffffbf", "#fdae61", "#d7191c", "#7b0000", "#3f007d"]

_HEAD = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n<qgis version=\"3.22.0\" styleCategories=\"AllStyleCategories\">\n"
_MINMAX = ("<minMaxOrigin><limits>None</limits><extent>WholeRaster</extent><statAccuracy>Estimated</statAccuracy>"
           "<cumulativeCutLower>0.02</cumulativeCutLower><cumulativeCutUpper>0.98</cumulativeCutUpper>"
           "<stdDevFactor>2</stdDevFactor></minMaxOrigin>")
_TAIL = ("<brightnesscontrast brightness=\"0\" contrast=\"0\" gamma=\"1\"/>"
         "<huesaturation saturation=\"0\" grayscaleMode=\"0\" colorizeOn=\"0\" colorizeRed=\"255\" colorizeGreen=\"128\" colorizeBlue=\"128\" colorizeStrength=\"100\" invertColors=\"0\"/>"
         "<rasterresampler maxOversampling=\"2\"/><resamplingStage>resamplingFilter</resamplingStage>"
         "</pipe>\n<blendMode>0</blendMode>\n</qgis>\n")


def _fmt(v: float) -> str:
    return f"{float(v):.6g}"


def pseudocolor(vmin: float, vmax: float, ramp: str | Sequence[str] = "viridis", band: int = 1,
                unit: str = "", discrete: bool = False, labels: Optional[Sequence[str]] = None) -> str:
    """Single-band pseudocolour style from ``vmin`` to ``vmax`` with an interpolated ramp."""
    colours = RAMPS[ramp] if isinstance(ramp, str) else list(ramp)
    if not np.isfinite(vmin) or not np.isfinite(vmax) or vmax <= vmin:
        vmin, vmax = (0.0, 1.0) if not np.isfinite(vmin) else (vmin, vmin + 1.0)
    vals = np.linspace(vmin, vmax, len(colours))
    items = []
    for i, (v, c) in enumerate(zip(vals, colours)):
        lab = labels[i] if labels is not None else f"{_fmt(v)}{(' ' + unit) if unit else ''}"
        items.append(f'<item alpha="255" value="{_fmt(v)}" label="{escape(lab)}" color="{c}"/>')
    kind = "DISCRETE" if discrete else "INTERPOLATED"
    return (_HEAD + "<pipe>\n"
            f'<rasterrenderer type="singlebandpseudocolor" band="{band}" opacity="1" alphaBand="-1" '
            f'classificationMin="{_fmt(vmin)}" classificationMax="{_fmt(vmax)}" nodataColor="">'
            "<rasterTransparency/>" + _MINMAX +
            f'<rastershader><colorrampshader colorRampType="{kind}" classificationMode="1" clip="0" '
            f'minimumValue="{_fmt(vmin)}" maximumValue="{_fmt(vmax)}" labelPrecision="2">'
            + "".join(items) + "</colorrampshader></rastershader></rasterrenderer>\n" + _TAIL)


def categorical(classes: Sequence[Tuple[int, str, str]], band: int = 1) -> str:
    """Paletted (unique values) style: ``classes`` = [(value, label, '#rrggbb'), ...].

    The labels are the legend QGIS shows, so class rasters carry their class names.
    """
    entries = "".join(
        f'<paletteEntry value="{int(v)}" color="{c}" alpha="255" label="{escape(str(lab))}"/>'
        for v, lab, c in classes)
    return (_HEAD + "<pipe>\n"
            f'<rasterrenderer type="paletted" band="{band}" opacity="1" alphaBand="-1" nodataColor="">'
            "<rasterTransparency/>" + _MINMAX + f"<colorPalette>{entries}</colorPalette>"
            "</rasterrenderer>\n" + _TAIL)


def robust_range(values: np.ndarray, lo: float = 2.0, hi: float = 98.0) -> Tuple[float, float]:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0, 1.0
    a, b = np.percentile(v, [lo, hi])
    if b <= a:
        b = a + 1.0
    return float(a), float(b)


def symmetric_range(values: np.ndarray, pct: float = 98.0) -> float:
    v = np.asarray(values, dtype=np.float64)
    v = np.abs(v[np.isfinite(v)])
    m = float(np.percentile(v, pct)) if v.size else 1.0
    return m if m > 0 else 1.0


def deformation_style(values: np.ndarray, band: int = 1, ramp: str = "deformation") -> str:
    """Diverging ramp centred on 0 mm (subsidence red, uplift blue)."""
    m = symmetric_range(values)
    return pseudocolor(-m, m, ramp, band, "mm")


def stack_style(values: np.ndarray) -> str:
    """A displacement stack shows its last epoch, centred on 0 mm."""
    v = np.asarray(values)
    last = v[-1] if v.ndim == 3 else v
    return deformation_style(last, band=(v.shape[0] if v.ndim == 3 else 1))


def residual_style(values: np.ndarray, band: int = 1) -> str:
    return deformation_style(values, band, ramp="residual")


def probability_style(band: int = 1) -> str:
    return pseudocolor(0.0, 1.0, "probability", band)


def class_style(labels: Sequence[str], colours: Optional[Sequence[str]] = None, first_value: int = 1) -> str:
    cols = list(colours) if colours is not None else CLASS_COLOURS
    return categorical([(first_value + i, lab, cols[i % len(cols)]) for i, lab in enumerate(labels)])


SUSCEPTIBILITY_LABELS_5 = ["Very low", "Low", "Moderate", "High", "Very high"]


def class_labels(n: int) -> List[str]:
    if n == 5:
        return list(SUSCEPTIBILITY_LABELS_5)
    if n == 3:
        return ["Low", "Moderate", "High"]
    return [f"Class {i + 1}" for i in range(n)]


# ------------------------------------------------------------------------------------------------
# the .qml sidecar: where it lies and what a paletted one names (the one place that reads QML)
# ------------------------------------------------------------------------------------------------
def sidecar_path(raster_path: str) -> str:
    """The ``.qml`` style beside a raster or vector file (``zones.tif`` -> ``zones.qml``), as QGIS
    loads it automatically."""
    import os

    return os.path.splitext(str(raster_path))[0] + ".qml"


def palette_labels(qml_path: str) -> Dict[int, str]:
    """``{value: label}`` of a paletted / unique-values raster style (``<paletteEntry value label>``),
    as QGIS and :func:`categorical` write them. Empty when the file is missing, not XML, or names
    nothing; entries without a label or with a non-numeric value are skipped."""
    import os
    import xml.etree.ElementTree as ET

    if not os.path.isfile(str(qml_path)):
        return {}
    try:
        root = ET.parse(str(qml_path)).getroot()
    except ET.ParseError:
        return {}
    names: Dict[int, str] = {}
    for e in root.iter("paletteEntry"):
        try:
            v = int(float(e.get("value", "")))
        except ValueError:
            continue
        lab = (e.get("label") or "").strip()
        if lab:
            names[v] = lab
    return names
