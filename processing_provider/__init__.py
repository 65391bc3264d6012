"""QGIS Processing provider of DeformCast: thin wrappers around the QGIS-free core."""
