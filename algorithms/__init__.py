"""DeformCast core: QGIS-free science (numpy, torch, optuna, scipy, statsmodels, GDAL).

Nothing in this package imports qgis or Qt. Heavy dependencies (torch, optuna, statsmodels)
are imported inside the modules that need them, so ``import algorithms`` works with only
numpy installed and :mod:`algorithms.deps` can report what is missing.
"""

import os as _os

# OpenMP threads that spin while waiting for work make torch on a shared, small CPU many times slower
# (measured here: a training epoch took 0.5 s alone and 40 s beside another 2-thread process on 2
# cores; 3 s with passive waiting). libgomp reads this once, when torch loads it, so it is set before
# any module imports torch; a value the user set wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__all__ = ["__version__"]
__version__ = "0.1.0"
