"""The inspector's map tools (pick a pixel, draw a polygon) and its marks on the map canvas.

Lifetime: the canvas items made here (the polygon's rubber band, the picks' markers) live in the
canvas's scene, not in the dock, so they are taken out of the scene explicitly
(:meth:`PolygonMapTool.release`, :meth:`MapMarks.remove_all`) when the dock is disposed of;
:func:`remove_item` hands each one back to Python so it is deleted there, in the main thread.
"""
from __future__ import annotations

from typing import List, Optional

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsGeometry,
    QgsPointXY,
    QgsProject,
    QgsWkbTypes,
)
from qgis.gui import QgsMapTool, QgsMapToolEmitPoint, QgsRubberBand, QgsVertexMarker
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QColor

try:
    from qgis.PyQt import sip
except ImportError:  # pragma: no cover - older PyQt5 builds
    import sip


def alive(obj) -> bool:
    """False for None and for a wrapper whose C++ object is gone."""
    return obj is not None and not sip.isdeleted(obj)


def remove_item(canvas, item) -> None:
    """Take a canvas item (rubber band, vertex marker) out of ``canvas``'s scene for good: the item
    is reset, removed from the scene and handed to Python, which deletes it when its last
    reference goes (here, in the main thread)."""
    if not alive(item):
        return
    if isinstance(item, QgsRubberBand):
        item.reset(QgsWkbTypes.PolygonGeometry)
    if alive(canvas) and item.scene() is not None:
        canvas.scene().removeItem(item)
        sip.transferback(item)


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


class PolygonMapTool(QgsMapTool):
    """Left clicks add vertices, a right click (or a double click) closes the polygon and emits
    ``polygonDone(QgsGeometry)`` in the canvas CRS; Esc drops the vertices."""

    polygonDone = pyqtSignal(object)

    def __init__(self, canvas):
        super().__init__(canvas)
        self.points: List[QgsPointXY] = []
        self.band: Optional[QgsRubberBand] = None     # made on the first vertex, removed by release()
        try:
            self.setCursor(Qt.CursorShape.CrossCursor)
        except TypeError:  # pragma: no cover
            pass

    def _band(self) -> QgsRubberBand:
        if self.band is None:
            self.band = QgsRubberBand(self.canvas(), QgsWkbTypes.PolygonGeometry)
            self.band.setStrokeColor(QColor(0, 0, 0, 200))
            self.band.setFillColor(QColor(0, 0, 0, 30))
            self.band.setWidth(1)
        return self.band

    def _show(self, floating: Optional[QgsPointXY] = None):
        pts = self.points + ([floating] if floating is not None else [])
        band = self._band()
        band.reset(QgsWkbTypes.PolygonGeometry)
        for p in pts:
            band.addPoint(p, False)
        band.show()
        band.updatePosition()

    def canvasMoveEvent(self, e):  # noqa: N802
        if self.points:
            self._show(self.toMapCoordinates(e.pos()))

    def canvasReleaseEvent(self, e):  # noqa: N802
        if e.button() == Qt.MouseButton.RightButton:
            self.finish()
        else:
            self.points.append(self.toMapCoordinates(e.pos()))
            self._show()

    def canvasDoubleClickEvent(self, e):  # noqa: N802
        self.finish()

    def keyPressEvent(self, e):  # noqa: N802
        if e.key() == Qt.Key.Key_Escape:
            self.reset()

    def finish(self) -> Optional[QgsGeometry]:
        pts = [p for i, p in enumerate(self.points) if i == 0 or p != self.points[i - 1]]
        self.reset()
        if len(pts) < 3:
            return None
        geom = QgsGeometry.fromPolygonXY([pts + [pts[0]]])
        self.polygonDone.emit(geom)
        return geom

    def reset(self):
        self.points = []
        if alive(self.band):
            self.band.reset(QgsWkbTypes.PolygonGeometry)

    def deactivate(self):
        self.reset()
        super().deactivate()

    def release(self):
        """Drop the vertices and take the rubber band out of the canvas."""
        self.points = []
        band, self.band = self.band, None
        remove_item(self.canvas(), band)


class MapMarks:
    """The picks' marks on the canvas: a vertex marker per pixel, an outline per area, in the
    colour of the pick's curves; the reference is a black square (or a black dashed outline)."""

    def __init__(self, canvas):
        self.canvas = canvas
        self.items: list = []       # (item, colour name, kind)
        self.reference: list = []
        self.visible = True

    def _to_canvas(self, obj, crs: Optional[QgsCoordinateReferenceSystem]):
        dest = self.canvas.mapSettings().destinationCrs()
        if crs is None or not crs.isValid() or not dest.isValid() or crs == dest:
            return obj
        tr = QgsCoordinateTransform(crs, dest, QgsProject.instance())
        if isinstance(obj, QgsGeometry):
            g = QgsGeometry(obj)
            g.transform(tr)
            return g
        return tr.transform(obj)

    def _point(self, pt, colour: str, reference: bool):
        m = QgsVertexMarker(self.canvas)
        m.setCenter(pt)
        m.setColor(QColor(colour))
        m.setIconType(QgsVertexMarker.ICON_BOX if reference else QgsVertexMarker.ICON_CIRCLE)
        m.setIconSize(14 if reference else 12)
        m.setPenWidth(3)
        return m

    def _area(self, geom, colour: str, reference: bool):
        rb = QgsRubberBand(self.canvas, QgsWkbTypes.PolygonGeometry)
        rb.setToGeometry(geom, None)
        c = QColor(colour)
        rb.setStrokeColor(c)
        c.setAlpha(40)
        rb.setFillColor(c)
        rb.setWidth(2)
        if reference:
            rb.setLineStyle(Qt.PenStyle.DashLine)
        return rb

    def add(self, pick, colour: str, crs=None, reference: bool = False):
        """Mark a pick (a ``PixelSeries``; ``pick.wkt`` set for an area) given in ``crs``."""
        if self.canvas is None:
            return None
        if pick.kind == "area":
            item = self._area(self._to_canvas(QgsGeometry.fromWkt(pick.wkt), crs), colour, reference)
        else:
            item = self._point(self._to_canvas(QgsPointXY(*pick.point), crs), colour, reference)
        if reference:
            self.clear_reference()
            self.reference.append((item, colour, pick.kind))
        else:
            self.items.append((item, colour, pick.kind))
        item.setVisible(self.visible)
        self.canvas.refresh()
        return item

    def _drop(self, items):
        for item, _, _ in items:
            remove_item(self.canvas, item)
        items.clear()

    def clear_reference(self):
        self._drop(self.reference)

    def clear(self):
        self._drop(self.items)
        if alive(self.canvas):
            self.canvas.refresh()

    def set_visible(self, on: bool) -> None:
        """Show or hide every mark (the dock hides them while it is closed)."""
        self.visible = bool(on)
        for item, _, _ in self.items + self.reference:
            if alive(item):
                item.setVisible(self.visible)

    def remove_all(self) -> None:
        """Every mark out of the canvas (the dock is disposed of)."""
        self._drop(self.items)
        self._drop(self.reference)
