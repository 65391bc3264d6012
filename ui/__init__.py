"""DeformCast Qt dialogs (qgis.PyQt imports only, so Qt5 and Qt6 builds both work)."""


def gui_entries(plugin):
    """(menu text, slot) pairs the plugin adds to its menu; dialogs are built on demand."""
    return []
