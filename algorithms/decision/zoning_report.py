"""The zoning report (HTML): area per tier, the tier map, the rule table with the minimum mapping
unit's sieve, and the differential-movement summary. Written by :func:`zoning.run_zoning`."""
from __future__ import annotations

from typing import List

import numpy as np

from .discontinuities import STEP_HALF_LENGTH, STEP_HALF_WIDTH, STEP_NULL_MEDIAN_T, n_step_orientations
from .sieve import PROTECTED_TIERS


def sieve_rule_rows(sv: dict) -> List[list]:
    """Rule-table rows of the minimum mapping unit and what its sieve changed."""
    if not sv:
        return []
    prot = ", ".join(str(t) for t in PROTECTED_TIERS)
    moved = "; ".join(f"tier {k.replace('->', ' to ')}: {v}" for k, v in sorted(sv.get("transitions", {}).items()))
    return [["mmu_m2", sv["mmu_m2"], "minimum mapping unit (m²): a zone smaller than this merges into the tier holding "
             f"most of its boundary (a tie: the more severe tier); tier {prot} is never merged away; 0 = off"],
            ["zones before / after the sieve", f"{sv['zones_before']} / {sv['zones_after']}",
             "contiguous zones of one tier (polygons before MIN_AREA)"],
            ["zones merged", sv["zones_merged"], "zones under the MMU merged into a neighbouring tier"],
            ["pixels changed", sv["pixels_changed"], "pixels whose tier the sieve changed"
             + (f" ({moved})" if moved else "")],
            [f"tier-{prot} zones under the MMU kept", sv["protected_small_zones"],
             "small zones of immediate control are kept: a small confident hazard is still a hazard"],
            ["isolated zones under the MMU kept", sv["isolated_small_zones"], "no valid neighbour to merge into"]]


def write_report(path: str, res, uncertainty_type: str, min_area: float, tiers: np.ndarray,
                 with_hotspots: bool, TIERS: dict, RULE_DOC: dict) -> str:  # noqa: N803 (zoning's constants)
    from ..report import Report, new_figure

    rep = Report("DeformCast – tiered control zones")
    total = sum(res.tier_area_m2.values())
    rep.heading("Area per tier")
    rep.table([[TIERS[t][0], res.tier_pixels[t], res.tier_area_m2[t] / 1e6,
                100 * res.tier_area_m2[t] / total if total else float("nan"), TIERS[t][2]] for t in TIERS],
              ["tier", "pixels", "area (km²)", "% of valid area", "action"])
    rep.paragraph(f"{res.n_zones} zone polygon(s) of at least {min_area:g} m²; {res.n_zones_dropped} smaller "
                  "contiguous zone(s) keep their tier in the raster but get no polygon.")
    fig = new_figure(6, 4)
    ax = fig.add_subplot(111)
    cmap_cols = ["#ffffff"] + [TIERS[t][1] for t in TIERS]
    from matplotlib.colors import ListedColormap

    ax.imshow(tiers, cmap=ListedColormap(cmap_cols), vmin=-0.5, vmax=4.5, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    rep.figure(fig, "Tier map (red 1, orange 2, yellow 3, green 4; white = no data).")
    rep.heading("Rule table")
    rows = [[k, res.rules[k], RULE_DOC[k]] for k in RULE_DOC] + sieve_rule_rows(res.sieve)
    rep.table(rows, ["rule", "value", "meaning"])
    if "uncertainty_max_source" in res.rules:
        rep.paragraph(f"uncertainty_max: {res.rules['uncertainty_max_source']} (uncertainty layer: {uncertainty_type}).",
                      cls="muted")
    rep.html("<ol><li><b>Tier 1 immediate control</b>: high susceptibility AND P(exceed) &ge; exceedance_high AND "
             "uncertainty &le; uncertainty_max.</li><li><b>Tier 2 verify &amp; densify</b>: high susceptibility AND "
             "uncertainty &gt; uncertainty_max (with P(exceed) &ge; exceedance_moderate), OR residual hot spot "
             "(Gi* z &ge; hotspot_z" + ("" if with_hotspots else "; no HOTSPOTS layer was given")
             + ") where the class is at least moderate or P(exceed) &ge; exceedance_moderate, OR within "
             "discontinuity_buffer_m of a differential-movement discontinuity trace ("
             + ("applied" if res.discontinuity.get("applied") else "not applied: "
                + res.discontinuity.get("note", "")) + ").</li>"
             "<li><b>Tier 3 enhanced monitoring</b>: P(exceed) &ge; "
             "exceedance_moderate.</li><li><b>Tier 4 routine</b>: the rest.</li></ol>"
             "<p class='muted'>The first rule that holds wins.</p>")
    d = res.discontinuity
    rep.heading("Differential movement (discontinuities)")
    if d.get("applied"):
        ms = d.get("max_step_mm")
        rep.paragraph(
            f"Step test on FORECAST ({d.get('forecast_band')}): a local plane plus a step fitted in an oriented "
            f"{2 * STEP_HALF_LENGTH + 1} x {2 * STEP_HALF_WIDTH + 1} pixel window, {n_step_orientations()} "
            f"orientations; noise-inflation factor {d['inflation']:.2f} (median |t| / {STEP_NULL_MEDIAN_T}, floored "
            f"at 1). A trace needs |step| ≥ step_mm = {res.rules['step_mm']:g} mm, one pixel with calibrated t "
            f"≥ step_z = {res.rules['step_z']:g}, its other pixels ≥ step_link_z = {res.rules['step_link_z']:g}, "
            f"and at least {STEP_HALF_LENGTH + 1} linked pixels of one sign"
            + ("; traces restricted to mapped faults (KNOWN_FAULTS)" if d.get("known_faults") else "") + ". "
            f"{d['trace_pixels']} trace pixel(s); {d.get('buffer_pixels', 0)} pixel(s) within "
            f"{res.rules['discontinuity_buffer_m']:g} m, {d.get('buffer_tier2_pixels', 0)} of them in tier 2"
            + (f"; largest step on a trace {ms:+.1f} mm." if ms is not None else "."))
    else:
        rep.paragraph(f"Not applied: {d.get('note', '')}.", cls="muted")
    return rep.save(path)
