"""Shared helpers of the benchmark scripts."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKGROOT = ROOT / "build" / "pkgroot"


def ensure_pkg() -> None:
    """Make ``import deformcast`` work from a checkout with any folder name."""
    PKGROOT.mkdir(parents=True, exist_ok=True)
    link = PKGROOT / "deformcast"
    if not link.exists():
        link.symlink_to(ROOT, target_is_directory=True)
    if str(PKGROOT) not in sys.path:
        sys.path.insert(0, str(PKGROOT))


def vm_mb(key: str = "VmHWM") -> float:
    """A memory figure of this process from /proc/self/status, in MB (VmHWM = peak resident set)."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def rmse(a, b, m) -> float:
    """RMSE of ``a`` against ``b`` ((epochs, rows, cols)) over the pixels ``m``; NaN when ``m`` holds none."""
    import numpy as np

    d = (a[:, m] - b[:, m]).astype(np.float64)
    return float(np.sqrt(np.mean(d * d))) if d.size else float("nan")


def common_mode(flat, dates):
    """Each date's common mode of a stack (epochs, pixels): the median over the complete series of the
    residual of each pixel's all-history fit (offset, velocity, acceleration, annual and semi-annual terms)
    at that date, as regional filtering does for GNSS networks. (epochs,)."""
    import numpy as np
    from deformcast.algorithms.data.common_mode import common_residual

    return common_residual(flat[:, np.isfinite(flat).all(axis=0)], dates)
