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
