"""DeformCast QGIS plugin entry point.

Nothing here imports QGIS at module level, so the package (and its QGIS-free core in
``algorithms``) can be imported by plain Python and pytest.
"""


def classFactory(iface):  # noqa: N802 (QGIS API name)
    from .plugin import DeformCastPlugin

    return DeformCastPlugin(iface)
