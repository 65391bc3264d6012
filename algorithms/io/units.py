"""Length units of raster bands (GDAL ``GetUnitType``) and their factor to millimetres."""
from __future__ import annotations

from typing import Optional

#: band unit names (GDAL ``GetUnitType``, lower case) -> mm per unit
LENGTH_UNITS = {"mm": 1.0, "millimetre": 1.0, "millimetres": 1.0, "millimeter": 1.0, "millimeters": 1.0,
                "cm": 10.0, "centimetre": 10.0, "centimetres": 10.0, "centimeter": 10.0, "centimeters": 10.0,
                "m": 1000.0, "metre": 1000.0, "metres": 1000.0, "meter": 1000.0, "meters": 1000.0}


def unit_to_mm(unit: Optional[str]) -> Optional[float]:
    """mm per band unit; None when the band declares no unit or one that is not a length."""
    u = (unit or "").strip().lower()
    return LENGTH_UNITS.get(u) if u else None


def band_unit(band) -> str:
    try:
        return (band.GetUnitType() or "").strip()
    except Exception:  # noqa: BLE001 - drivers without units
        return ""
