"""The inspector dock's lifetime: layers removed under it, closing, disposing, and deletion only in
the main thread (a parentless dock was deleted by Python's garbage collector in a QgsTask's
thread, and QGIS crashed now and then while a workflow task ran: docs/README_ui.md)."""
from __future__ import annotations

import gc
import threading
import time

import numpy as np
from qgis.core import QgsApplication, QgsGeometry, QgsProject, QgsTask
from qgis.gui import QgsRubberBand, QgsVertexMarker
from qgis.PyQt import sip
from qgis.PyQt.QtCore import QCoreApplication, QEvent
from test_ui_inspector import _canvas, _centre, _gdal_pixel, _layers, _write_run


def _items(canvas, cls):
    return [i for i in canvas.scene().items() if isinstance(i, cls)]


def _delete_now(dock):
    """What the main thread's event loop does after ``dispose`` (pytest runs none)."""
    QCoreApplication.sendPostedEvents(dock, QEvent.DeferredDelete)


def test_removed_layers_are_dropped_and_dispose_cleans_the_canvas(qgis_new_project, qgis_iface, qgis_canvas,
                                                                   tmp_path):
    from deformcast.ui.inspector import InspectorDock

    pa, g = _write_run(tmp_path / "a", seed=3)
    pb, _ = _write_run(tmp_path / "b", seed=4)
    la, lb = _layers(pa), _layers(pb)
    _canvas(qgis_canvas, la)
    markers0, bands0 = len(_items(qgis_canvas, QgsVertexMarker)), len(_items(qgis_canvas, QgsRubberBand))
    dock = InspectorDock(qgis_iface, qgis_canvas)
    assert not sip.ispyowned(dock)      # parentless, yet never deleted by Python's garbage collector
    dock.show()
    dock.auto_assign(list(la.values()))
    dock.inspect(_centre(g, 2, 3))
    dock.inspect(_centre(g, 4, 1))
    dock.inspect_area(QgsGeometry.fromRect(la["stack"].extent()), la["stack"].crs(), reference=True)
    dock.activate_polygon(True)
    dock.poly_tool.points = [_centre(g, 1, 1), _centre(g, 1, 5), _centre(g, 4, 5)]
    dock.poly_tool._show()             # a polygon half drawn: the rubber band is on the canvas
    assert qgis_canvas.mapTool() is dock.poly_tool
    assert len(_items(qgis_canvas, QgsVertexMarker)) == markers0 + 2
    assert len(_items(qgis_canvas, QgsRubberBand)) == bands0 + 2   # the reference area, the polygon

    # run A's layers leave the project one by one, as a new run of the same name replaces them
    for lyr in la.values():
        QgsProject.instance().removeMapLayer(lyr.id())
        QgsApplication.processEvents()
    assert dock.layers() == {role: None for role in dock.layers()}   # dropped, none taken from run B
    assert "removed from the project" in dock.info.text()
    assert [p.label for p in dock.picks] == ["A", "B"] and dock.reference is not None   # the places stay
    assert all(p.observed is None and p.median is None for p in dock.shown())
    assert dock.drawn == []
    # bound to run B, the picks are read again at the same places
    dock.auto_assign(list(lb.values()))
    assert {r: lyr.source() for r, lyr in dock.layers().items()} == pb
    ref = dock.reference.observed[1]
    np.testing.assert_allclose(dock.picks[0].observed[1] - ref, dock.shown()[0].observed[1], atol=1e-5)
    np.testing.assert_allclose(dock.picks[0].observed[1], _gdal_pixel(pb["stack"], 2, 3), atol=1e-5)

    # closed: no map tool of the dock stays on the canvas; marks hidden until it is shown again
    dock.close()
    assert qgis_canvas.mapTool() not in (dock.tool, dock.poly_tool) and not dock.poly_btn.isChecked()
    assert not any(item.isVisible() for item, _, _ in dock.marks.items + dock.marks.reference)
    dock.show()
    assert all(item.isVisible() for item, _, _ in dock.marks.items + dock.marks.reference)
    dock.pick_btn.setChecked(True)
    assert qgis_canvas.mapTool() is dock.tool

    # disposed: marks and rubber band leave the canvas, the project's signals leave the dock
    tool = dock.tool
    dock.dispose()
    assert qgis_canvas.mapTool() is not tool
    assert len(_items(qgis_canvas, QgsVertexMarker)) == markers0
    assert len(_items(qgis_canvas, QgsRubberBand)) == bands0
    QgsProject.instance().removeMapLayers([lyr.id() for lyr in lb.values()])
    _delete_now(dock)
    assert sip.isdeleted(dock) and sip.isdeleted(tool)


def test_a_dropped_dock_is_not_deleted_in_a_task_thread(qgis_new_project, qgis_iface, qgis_canvas, tmp_path):
    """The crash's mechanism: a parentless dock nobody refers to any more, and Python's cyclic
    garbage collector running in a QgsTask's thread. The dock must outlive it and be deleted by
    the main thread (``dispose``)."""
    from deformcast.ui import inspector

    paths, g = _write_run(tmp_path / "run")
    lyrs = _layers(paths)
    _canvas(qgis_canvas, lyrs)
    dock = inspector.InspectorDock(qgis_iface, qgis_canvas)
    dock.auto_assign(list(lyrs.values()))
    dock.inspect(_centre(g, 2, 3))
    deleted_in = []
    dock.destroyed.connect(lambda *_: deleted_in.append(threading.current_thread().name))
    key = id(dock)
    del dock
    done = []

    def collect(task):
        gc.collect()
        done.append(threading.current_thread().name)
        return True

    task = QgsTask.fromFunction("collect garbage", collect)
    QgsApplication.taskManager().addTask(task)
    t0 = time.time()
    while not done and time.time() - t0 < 60:
        QgsApplication.processEvents()
        time.sleep(0.01)
    assert done and done[0] != threading.main_thread().name
    assert deleted_in == []                           # the collector in the task's thread left it alone
    dock = inspector._PARENTLESS[key]
    assert dock.picks and dock.layers()["stack"] is not None
    dock.dispose()
    _delete_now(dock)
    assert deleted_in == [threading.main_thread().name] and key not in inspector._PARENTLESS


def test_a_dock_deleted_by_qt_leaves_the_registry(qgis_app, qgis_iface):
    from deformcast.ui import inspector

    dock = inspector.InspectorDock(qgis_iface)
    key = id(dock)
    assert inspector._PARENTLESS[key] is dock
    dock.deleteLater()                  # not through dispose: Qt deletes it, the registry follows
    _delete_now(dock)
    assert sip.isdeleted(dock) and key not in inspector._PARENTLESS
