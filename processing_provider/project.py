"""Build a QGIS project file (.qgz) with the outputs grouped and styled (QGIS side, no science)."""
from __future__ import annotations

import os
from typing import Sequence, Tuple

from qgis.core import QgsCoordinateReferenceSystem, QgsProject, QgsRasterLayer, QgsVectorLayer

from ..algorithms.errors import DeformCastError


def build_project(path: str, groups: Sequence[Tuple[str, Sequence[Tuple[str, str]]]], crs_wkt: str = "",
                  title: str = "DeformCast results") -> str:
    """``groups`` = [(group name, [(file path, layer name), ...]), ...], top group first.

    Raster layers get their ``.qml`` sidecar as style (QGIS's default-style lookup); vector
    layers too. Paths are stored relative to the project, so the folder can be moved.
    Layers whose file is missing are skipped. Returns the project path.
    """
    project = QgsProject()
    project.setTitle(title)
    if crs_wkt:
        project.setCrs(QgsCoordinateReferenceSystem.fromWkt(crs_wkt))
    root = project.layerTreeRoot()
    first_group = True
    for gname, layers in groups:
        existing = [(p, n) for p, n in layers if p and os.path.exists(p)]
        if not existing:
            continue
        group = root.addGroup(gname)
        for p, name in existing:
            ext = os.path.splitext(p)[1].lower()
            if ext in (".gpkg", ".shp", ".geojson"):
                lyr = QgsVectorLayer(p, name, "ogr")
            else:
                lyr = QgsRasterLayer(p, name, "gdal")
            if not lyr.isValid():
                raise DeformCastError(f"QGIS cannot open the output '{p}' for the project.")
            lyr.loadDefaultStyle()
            project.addMapLayer(lyr, False)
            node = group.addLayer(lyr)
            if not first_group:
                node.setItemVisibilityChecked(False)
        first_group = False
    tmp = path + ".part.qgz"
    if not project.write(tmp):
        raise DeformCastError(f"Cannot write the QGIS project '{path}': {project.error()}")
    os.replace(tmp, path)
    return path
