"""Minimum mapping unit (MMU): a sieve that merges zones smaller than the MMU into their neighbours.

A tier raster computed pixel by pixel is speckled: isolated Tier-2 or Tier-3 pixels dot the quiet
background wherever one input (the exceedance probability, a Gi* hot spot, the class ambiguity)
crosses its limit by noise. A map an authority acts on is made of zones, not pixels, so the tiers
are generalised before they are polygonised:

* Contiguous pixels of one tier form a zone (4-connected, or 8-connected with ``EIGHT_CONNECTED``:
  the same connectivity as the polygons). Its area is the sum of its pixels' areas (m²; geographic
  grids: per-row cell areas).
* Zones smaller than ``mmu_m2`` are merged, smallest first, into the tier that holds the largest
  share of their boundary (shared pixel edges; 8-connected: corner contacts count too): a
  majority rule at zone level. A tie goes to the **more severe** tier (the lower tier number): a
  generalisation error should err towards more monitoring, not less. The merged zone joins every
  neighbouring zone of that tier (they now touch), and is examined again if still under the MMU.
* **Tier 1 is never merged away** (``PROTECTED_TIERS``): a Tier-1 pixel is severe, likely *and*
  confident; erasing a small confident hazard because it is small would hide exactly what the
  zoning exists to show (one building over a collapsing void is a small zone). Small Tier-1 zones
  stay, and are counted in the report. Other tiers may be upgraded into Tier 1 when Tier 1 holds
  most of their boundary (holes and notches of a control zone), never the reverse.
* A zone with no valid neighbour (an island of data in nodata) cannot merge and is kept.

No pixel-level majority (mode) filter runs before the sieve: it would also move pixels of zones
far larger than the MMU (eroding corners of thin bands such as a discontinuity's buffer and thin
Tier-1 strips), so the MMU would no longer be the one control of what is generalised. The
boundary-majority rule above is that filter applied to the small zones only.

The default, ``DEFAULT_MMU_M2`` = 1 ha (10 000 m²), is about a city block (100 m x 100 m): the
smallest area on which a monitoring network is densified or a control measure planned; below it
decisions are made per building, after a site visit. On the demo scene's 50 m pixels it is 4
pixels (a 2 x 2 block, the common MMU of pixel classifications), on EGMS Ortho's 100 m pixels one
pixel (no zone is removed), on 20 m pixels 25. ``mmu_m2 = 0`` keeps the pixel-level tiers.
QGIS-free; scipy is imported inside the functions.
"""
from __future__ import annotations

import heapq
from dataclasses import asdict, dataclass, field
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from ..errors import DeformCastError
from ..progress import Progress, silent

#: Default minimum mapping unit (m²): 1 ha; see the module doc.
DEFAULT_MMU_M2 = 10000.0
#: Tiers whose zones the sieve never merges into another tier (Tier 1: immediate control).
PROTECTED_TIERS: Tuple[int, ...] = (1,)


@dataclass
class SieveStats:
    """What the sieve changed (all counts over the valid pixels)."""

    mmu_m2: float
    zones_before: int = 0
    zones_after: int = 0
    zones_merged: int = 0          # zones under the MMU merged into a neighbouring tier
    pixels_changed: int = 0
    protected_small_zones: int = 0  # Tier-1 zones under the MMU, kept
    isolated_small_zones: int = 0   # zones under the MMU with no valid neighbour, kept
    #: pixels moved from one tier to another: {"2->4": n, ...}
    transitions: Dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def label_zones(tiers: np.ndarray, eight_connected: bool = False, n_tiers: int = 4):
    """(labels, n) of the contiguous zones of each tier 1..n_tiers (0 = nodata, label 0)."""
    from scipy import ndimage

    structure = np.ones((3, 3), bool) if eight_connected else None
    labels = np.zeros(tiers.shape, np.int64)
    offset = 0
    for t in range(1, n_tiers + 1):
        lab, n = ndimage.label(tiers == t, structure=structure)
        labels[lab > 0] = lab[lab > 0] + offset
        offset += n
    return labels, offset


def _neighbour_pairs(labels: np.ndarray, eight_connected: bool):
    """(a, b) label pairs of every pair of touching pixels of different zones, both directions."""
    shifts = [(0, 1), (1, 0)] + ([(1, 1), (1, -1)] if eight_connected else [])
    src, dst = [], []
    H, W = labels.shape
    for dr, dc in shifts:
        if dc >= 0:
            a, b = labels[:H - dr, :W - dc], labels[dr:, dc:]
        else:
            a, b = labels[:H - dr, -dc:], labels[dr:, :W + dc]
        m = (a != b) & (a > 0) & (b > 0)
        src += [a[m], b[m]]
        dst += [b[m], a[m]]
    if not src:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(src), np.concatenate(dst)


def sieve_tiers(tiers: np.ndarray, pixel_area, mmu_m2: float, eight_connected: bool = False,
                protected: Sequence[int] = PROTECTED_TIERS,
                progress: Optional[Progress] = None) -> Tuple[np.ndarray, SieveStats]:
    """Tiers with every zone under ``mmu_m2`` merged into its neighbours (see the module doc).

    ``tiers``: uint8 (H, W), 0 = nodata; ``pixel_area``: m² per pixel, broadcastable to (H, W).
    Returns the new tier raster and the :class:`SieveStats`.
    """
    progress = progress or silent()
    if mmu_m2 is None or not np.isfinite(mmu_m2) or mmu_m2 < 0:
        raise DeformCastError("MMU (minimum mapping unit) must be a number of m² >= 0; 0 keeps the pixel tiers.")
    tiers = np.asarray(tiers)
    labels, n = label_zones(tiers, eight_connected)
    stats = SieveStats(float(mmu_m2), zones_before=int(n), zones_after=int(n))
    if mmu_m2 <= 0 or n == 0:
        return tiers.copy(), stats
    flat = labels.ravel()
    area = np.bincount(flat, weights=np.broadcast_to(pixel_area, tiers.shape).ravel(), minlength=n + 1)
    tier_of = np.zeros(n + 1, np.int64)
    tier_of[flat] = tiers.ravel()
    prot = np.isin(tier_of, np.asarray(list(protected), np.int64))
    small = (area < mmu_m2) & ~prot
    small[0] = False
    stats.protected_small_zones = int(((area < mmu_m2) & prot)[1:].sum())
    if not small.any():
        return tiers.copy(), stats
    progress.set(0.2)
    # boundary lengths between a small zone and its neighbours (pixel pairs), as sparse lists
    a, b = _neighbour_pairs(labels, eight_connected)
    keep = small[a]
    a, b = a[keep], b[keep]
    adj: Dict[int, Dict[int, int]] = {}
    if a.size:
        key, cnt = np.unique(a * (n + 1) + b, return_counts=True)
        for k, c in zip((key // (n + 1)).tolist(), zip((key % (n + 1)).tolist(), cnt.tolist())):
            adj.setdefault(k, {})[c[0]] = c[1]
    progress.set(0.4)
    parent = np.arange(n + 1)

    def find(x: int) -> int:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    area = area.copy()
    tier_now = tier_of.copy()
    heap = [(float(area[k]), int(k)) for k in np.nonzero(small)[0]]
    heapq.heapify(heap)
    merged = isolated = 0
    steps = 0
    while heap:
        ar, z = heapq.heappop(heap)
        steps += 1
        if steps % 4096 == 0:
            progress.check()
        if find(z) != z or area[z] != ar or area[z] >= mmu_m2 or tier_now[z] in protected:
            continue  # absorbed, grown since it was queued, or no longer small
        weight: Dict[int, int] = {}
        roots_by_tier: Dict[int, set] = {}
        for nb, w in adj.get(z, {}).items():
            r = find(nb)
            if r == z:
                continue
            t = int(tier_now[r])
            weight[t] = weight.get(t, 0) + w
            roots_by_tier.setdefault(t, set()).add(r)
        if not weight:
            isolated += 1
            continue
        target = min(weight, key=lambda t: (-weight[t], t))  # most boundary; a tie: the more severe tier
        members = [z] + sorted(roots_by_tier[target])
        root = max(members, key=lambda m: (area[m], -m))
        tot = float(sum(area[m] for m in members))
        nadj: Dict[int, int] = {}
        for m in members:
            parent[m] = root
            for nb, w in adj.pop(m, {}).items():
                nadj[nb] = nadj.get(nb, 0) + w
        area[root] = tot
        tier_now[root] = target
        adj[root] = nadj
        merged += 1
        if tot < mmu_m2 and target not in protected:
            heapq.heappush(heap, (tot, int(root)))
    progress.set(0.8)
    roots = np.array([find(k) for k in range(n + 1)])
    out = tier_now[roots][labels].astype(tiers.dtype)
    out[tiers == 0] = 0
    stats.isolated_small_zones = isolated
    stats.zones_merged = merged
    ch = out != tiers
    stats.pixels_changed = int(ch.sum())
    if ch.any():
        pairs, cnt = np.unique(np.stack([tiers[ch].astype(np.int64), out[ch].astype(np.int64)]), axis=1,
                               return_counts=True)
        stats.transitions = {f"{int(f)}->{int(t)}": int(c) for (f, t), c in zip(pairs.T, cnt)}
    stats.zones_after = int(label_zones(out, eight_connected)[1])
    progress.set(1.0)
    return out, stats
