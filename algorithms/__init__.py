"""DeformCast core: QGIS-free science (numpy, torch, optuna, scipy, statsmodels, GDAL).

Nothing in this package imports qgis or Qt. Heavy dependencies (torch, optuna, statsmodels)
are imported inside the modules that need them, so ``import algorithms`` works with only
numpy installed and :mod:`algorithms.deps` can report what is missing.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
