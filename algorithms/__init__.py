"""DeformCast core: QGIS-free science (numpy, torch, optuna, scipy, statsmodels, GDAL).

Nothing in this package imports qgis or Qt. Heavy dependencies (torch, optuna, statsmodels)
are imported inside the modules that need them, so ``import algorithms`` works with only
numpy installed and :mod:`algorithms.deps` can report what is missing.
"""

import os as _os

# OpenMP threads that spin while waiting for work make torch on a shared, small CPU many times slower
# (measured on 2 cores, a small ResNet+Transformer epoch: alone 0.45 s spinning, 0.8 s passive; two
# such runs at once 4.7 s each with libgomp's default spin count, 21-40 s with OMP_WAIT_POLICY=ACTIVE,
# 1.0 s passive). A QGIS desktop or a server is rarely idle, so we take the bounded cost. On a
# dedicated machine set OMP_WAIT_POLICY=ACTIVE (a value set in the environment wins). libgomp reads it
# once, when torch loads it, so it is set before any module imports torch.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__all__ = ["__version__"]
__version__ = "0.1.0"
