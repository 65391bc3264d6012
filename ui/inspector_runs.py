"""Which result layers belong to one run, so the inspector never mixes runs.

A run's layers are recognised, in this order, by

1. the run id that :func:`processing_provider.project.add_run_group` stamps into every layer it
   loads (custom property ``deformcast/run_id``; also on the run's layer-tree group);
2. the top-level layer-tree group the layer sits in (a run's group, ``DeformCast <folder>``);
3. the folder of the layer's file (layers added by hand from one output folder).

Inside one run each role is found by the names the workflow writes (file or layer name).
"""
from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from qgis.core import QgsLayerTreeGroup, QgsProject, QgsRasterLayer

from ..processing_provider.project import RUN_ID_PROPERTY, RUN_NAME_PROPERTY

#: file/layer-name fragments per role, checked in this order (an exceedance probability layer is
#: not a class probability; later observations are not the stack)
HINTS = OrderedDict([
    ("members", ("members",)), ("median", ("median",)), ("quantiles", ("quantile", "p10/p50/p90")),
    ("susceptibility", ("susceptibility",)), ("exceedance", ("exceedance",)),
    ("probabilities", ("class_probabilit", "class probabilit")),
    ("later", ("later observ", "later_observ", "future_observ", "observed_future", "later_obs")),
    ("stack", ("stack", "displacement")),
])


@dataclass
class Run:
    key: str
    label: str
    layers: List[QgsRasterLayer] = field(default_factory=list)

    def roles(self) -> Dict[str, QgsRasterLayer]:
        """Each role's layer among this run's layers (the first that matches, tree order)."""
        found: Dict[str, QgsRasterLayer] = {}
        for lyr in self.layers:
            base = os.path.basename(lyr.source()).lower() + " | " + lyr.name().lower()
            for role, hints in HINTS.items():
                if any(h in base for h in hints):
                    if role not in found:
                        found[role] = lyr
                    break
        return found


def _top_group(node, root) -> Optional[QgsLayerTreeGroup]:
    top = None
    p = node.parent() if node is not None else None
    while p is not None and p is not root:
        if isinstance(p, QgsLayerTreeGroup):
            if p.customProperty(RUN_ID_PROPERTY):
                return p
            top = p
        p = p.parent()
    return top


def run_of(layer: QgsRasterLayer, project: Optional[QgsProject] = None):
    """``(key, label)`` of the run ``layer`` belongs to (run id, run group or folder)."""
    project = project or QgsProject.instance()
    rid = layer.customProperty(RUN_ID_PROPERTY)
    if rid:
        return f"id:{rid}", str(layer.customProperty(RUN_NAME_PROPERTY) or rid)
    root = project.layerTreeRoot()
    g = _top_group(root.findLayer(layer.id()), root)
    if g is not None:
        gid = g.customProperty(RUN_ID_PROPERTY)
        return (f"id:{gid}" if gid else f"group:{g.name()}"), g.name()
    folder = os.path.dirname(os.path.abspath(layer.source().split("|")[0]))
    return f"folder:{os.path.normcase(folder)}", os.path.basename(folder) or folder


def project_rasters(project: Optional[QgsProject] = None) -> List[QgsRasterLayer]:
    """The project's raster layers, layer-tree order (top first), then those not in the tree."""
    project = project or QgsProject.instance()
    out = [n.layer() for n in project.layerTreeRoot().findLayers() if isinstance(n.layer(), QgsRasterLayer)]
    seen = {lyr.id() for lyr in out}
    out += [lyr for lyr in project.mapLayers().values() if isinstance(lyr, QgsRasterLayer) and lyr.id() not in seen]
    return out


def find_runs(layers: Optional[Sequence] = None, project: Optional[QgsProject] = None) -> "OrderedDict[str, Run]":
    """The runs among ``layers`` (default: the project's rasters), in the order first met."""
    cands = list(layers) if layers is not None else project_rasters(project)
    runs: "OrderedDict[str, Run]" = OrderedDict()
    for lyr in cands:
        if not isinstance(lyr, QgsRasterLayer) or not lyr.isValid():
            continue
        key, label = run_of(lyr, project)
        runs.setdefault(key, Run(key, label)).layers.append(lyr)
    # two runs of one name (same group name in different places): tell them apart
    labels = [r.label for r in runs.values()]
    for r in runs.values():
        if labels.count(r.label) > 1:
            r.label = f"{r.label} ({r.key.split(':', 1)[1][:8]})"
    return OrderedDict((k, r) for k, r in runs.items() if r.roles())


def choose_run(runs: "OrderedDict[str, Run]", prefer=None, active_layer=None) -> Optional[Run]:
    """The run to show: ``prefer`` (a key or label) when present, else the run of the active layer,
    else the run with the most roles found (the first, i.e. the topmost, on a tie)."""
    if not runs:
        return None
    if prefer is not None:
        for r in runs.values():
            if prefer in (r.key, r.label):
                return r
    if active_layer is not None:
        for r in runs.values():
            if any(lyr.id() == active_layer.id() for lyr in r.layers):
                return r
    return max(runs.values(), key=lambda r: len(r.roles()))
