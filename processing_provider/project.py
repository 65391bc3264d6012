"""A run's layers in QGIS, the same way from every entrance (QGIS side, no science).

:func:`add_run_group` puts one run into a layer tree: one group named after the run, with the
sub-groups, layer names, visibility and styles the chain declares
(:data:`algorithms.chain.LAYER_TREE`). :func:`build_project` writes it as a ``.qgz`` with a saved
view extent that covers the data; :func:`load_run` adds it to an open project (the desktop) and
zooms the map canvas to the data. ``deformcast:workflow`` calls both, so the toolbox, the workflow
dialog and the project file show the same tree.

Every layer of a run (and the run's group) carries the run's id in the custom property
:data:`RUN_ID_PROPERTY` (and its name in :data:`RUN_NAME_PROPERTY`); the layer metadata holds
both as the keyword vocabulary ``DeformCast run``. The time-series inspector binds its layers to
one run through them, so two runs loaded side by side are never mixed.
"""
from __future__ import annotations

import os
import tempfile
import uuid
from typing import Optional

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsLayerTreeGroup,
    QgsMapLayerLegendUtils,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsReferencedRectangle,
    QgsVectorLayer,
)

from ..algorithms import chain
from ..algorithms.errors import DeformCastError

_VECTOR_EXT = (".gpkg", ".shp", ".geojson", ".fgb")
#: custom property holding the id of the run a layer (or a run's group) belongs to
RUN_ID_PROPERTY = "deformcast/run_id"
#: custom property holding the run's name (its group name)
RUN_NAME_PROPERTY = "deformcast/run_name"
#: the layer-metadata keyword vocabulary that repeats both
RUN_KEYWORD = "DeformCast run"


def new_run_id() -> str:
    """A fresh run id (random, so two loads of runs with one name stay apart)."""
    return uuid.uuid4().hex


def stamp_run(lyr, run_id: str, run_name: str) -> None:
    """Write the run's id and name into ``lyr``'s custom properties and metadata keywords."""
    lyr.setCustomProperty(RUN_ID_PROPERTY, run_id)
    lyr.setCustomProperty(RUN_NAME_PROPERTY, run_name)
    md = lyr.metadata()
    kw = md.keywords()
    kw[RUN_KEYWORD] = [run_name, run_id]
    md.setKeywords(kw)
    lyr.setMetadata(md)


def _apply_qml(lyr, qml: str) -> None:
    fd, tmp = tempfile.mkstemp(suffix=".qml")
    os.close(fd)
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(qml)
        lyr.loadNamedStyle(tmp)
    finally:
        os.remove(tmp)


def _relabel(lyr) -> None:
    """Paletted legends without infinite bounds ('Low (< 3 mm)', not 'Low (-inf to 3 mm)')."""
    r = lyr.renderer()
    if r is None or r.type() != "paletted":
        return
    changed = False
    for c in r.classes():
        new = chain.relabel(c.label)
        if new != c.label:
            r.setLabel(c.value, new)
            changed = True
    if changed:
        lyr.triggerRepaint()


def make_layer(item: "chain.ResolvedLayer"):
    """A styled QGIS layer for one resolved layer of the chain's tree."""
    p = item.path
    if os.path.splitext(p)[1].lower() in _VECTOR_EXT:
        lyr = QgsVectorLayer(p, item.name, "ogr")
    else:
        lyr = QgsRasterLayer(p, item.name, "gdal")
    if not lyr.isValid():
        raise DeformCastError(f"QGIS cannot open the output '{p}' for the project.")
    qml = chain.layer_qml(item)
    if qml is not None:
        _apply_qml(lyr, qml)
    else:
        lyr.loadDefaultStyle()
    if isinstance(lyr, QgsRasterLayer):
        if lyr.renderer() is None or lyr.renderer().type() in ("singlebandgray", "multibandcolor"):
            _apply_qml(lyr, chain.fallback_qml(p))  # never a grey or RGB default
        _relabel(lyr)
    return lyr


def _band_title(node, lyr) -> None:
    """The legend's band title without GDAL's colour interpretation ('Band 1: tier', not '... (Gray)')."""
    r = lyr.renderer() if isinstance(lyr, QgsRasterLayer) else None
    if r is None or r.type() not in ("paletted", "singlebandpseudocolor") or not hasattr(r, "displayBandName"):
        return
    band = r.band()
    shown, plain = r.displayBandName(band), lyr.bandName(band)
    if shown != plain:
        QgsMapLayerLegendUtils.setLegendNodeUserLabel(node, 0, plain)


def add_run_group(project: QgsProject, run_name: str, tree, index: int = 0,
                  run_id: Optional[str] = None) -> QgsLayerTreeGroup:
    """Add the run's group (replacing one of the same name) at ``index`` of the layer tree.

    The group and each layer are stamped with ``run_id`` (a fresh one when not given)."""
    run_id = run_id or new_run_id()
    root = project.layerTreeRoot()
    old = root.findGroup(run_name)
    if old is not None:
        ids = [n.layerId() for n in old.findLayers()]
        root.removeChildNode(old)
        for i in ids:
            if project.mapLayer(i) is not None and not root.findLayer(i):
                project.removeMapLayer(i)
    group = root.insertGroup(index, run_name)
    group.setExpanded(True)
    group.setCustomProperty(RUN_ID_PROPERTY, run_id)
    group.setCustomProperty(RUN_NAME_PROPERTY, run_name)
    for gspec, items in tree:
        sub = group.addGroup(gspec.name)
        sub.setExpanded(gspec.expanded)
        for item in items:
            lyr = make_layer(item)
            stamp_run(lyr, run_id, run_name)
            project.addMapLayer(lyr, False)
            node = sub.addLayer(lyr)
            _band_title(node, lyr)
            node.setItemVisibilityChecked(item.visible)
            node.setExpanded(item.visible)
        sub.setItemVisibilityChecked(any(i.visible for i in items))
    return group


def group_extent(group: QgsLayerTreeGroup, crs: QgsCoordinateReferenceSystem, project: QgsProject) -> QgsRectangle:
    """Union of the extents of the group's layers, in ``crs``."""
    ext = QgsRectangle()
    ext.setMinimal()
    for node in group.findLayers():
        lyr = node.layer()
        if lyr is None or not lyr.isValid():
            continue
        e = lyr.extent()
        if crs.isValid() and lyr.crs().isValid() and lyr.crs() != crs:
            try:
                e = QgsCoordinateTransform(lyr.crs(), crs, project).transformBoundingBox(e)
            except Exception:  # noqa: BLE001 - QgsCsException: leave this layer out of the extent
                continue
        ext.combineExtentWith(e)
    return ext


def _padded(ext: QgsRectangle, frac: float = 0.03) -> QgsRectangle:
    r = QgsRectangle(ext)
    r.grow(max(r.width(), r.height()) * frac)
    return r


def build_project(path: str, run_name: str, tree, crs_wkt: str = "", title: str = "DeformCast results",
                  run_id: Optional[str] = None) -> str:
    """Write the run's tree as a QGIS project (``.qgz``) that opens zoomed on the data.

    Paths are stored relative to the project, so the folder can be moved. Returns the path.
    """
    project = QgsProject()
    project.setTitle(title)
    crs = QgsCoordinateReferenceSystem.fromWkt(crs_wkt) if crs_wkt else QgsCoordinateReferenceSystem()
    if crs.isValid():
        project.setCrs(crs)
    group = add_run_group(project, run_name, tree, run_id=run_id)
    if not crs.isValid():
        lyrs = [n.layer() for n in group.findLayers() if n.layer() is not None]
        crs = lyrs[0].crs() if lyrs else crs
        project.setCrs(crs)
    ext = group_extent(group, crs, project)
    if not ext.isEmpty():
        project.viewSettings().setDefaultViewExtent(QgsReferencedRectangle(_padded(ext), crs))
    tmp = path + ".part.qgz"
    if not project.write(tmp):
        raise DeformCastError(f"Cannot write the QGIS project '{path}': {project.error()}")
    os.replace(tmp, path)
    return path


def load_run(project: QgsProject, run_name: str, tree, canvas=None, run_id: Optional[str] = None) -> QgsLayerTreeGroup:
    """Add the run's group on top of an open project; zoom ``canvas`` (when given) to the data."""
    group = add_run_group(project, run_name, tree, run_id=run_id)
    if canvas is not None:
        zoom_canvas(canvas, group, project)
    return group


def zoom_canvas(canvas, group: QgsLayerTreeGroup, project: Optional[QgsProject] = None) -> Optional[QgsRectangle]:
    project = project or QgsProject.instance()
    crs = canvas.mapSettings().destinationCrs()
    if not crs.isValid():
        crs = project.crs()
    ext = group_extent(group, crs, project)
    if ext.isEmpty():
        return None
    ext = _padded(ext)
    canvas.setExtent(ext)
    canvas.refresh()
    return ext


def desktop_canvas():
    """The QGIS desktop's map canvas, or None (qgis_process, tests without an interface)."""
    try:
        from qgis.utils import iface
    except ImportError:
        return None
    try:
        return iface.mapCanvas() if iface is not None else None
    except Exception:  # noqa: BLE001 - a stub interface without a canvas
        return None
