"""The inspector's plot: one or several picks (pixels or areas) drawn into a matplotlib Figure.

Each pick has one colour (the colour of its marker on the map): its observed series (dots), the
later observations (open diamonds), the members' P5-P95 and P10-P90 fans over every lead step
(:func:`inspector_data.fan`), the forecast median (squares), the quantiles raster's values (ticks)
and, for an area, the spread across its pixels (hatched). :func:`draw` returns the rows of
everything it drew, which the CSV export writes, so the file holds exactly the plot's numbers.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np

from .inspector_data import PixelSeries, fan

#: pick colours, in pick order (the map markers use the same)
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
#: the reference pick's colour
REFERENCE_COLOUR = "#000000"

Row = Tuple[str, str, float, float, str, str, str, str, float]
#: the CSV columns, one :data:`Row` per value drawn
COLUMNS = ["pick", "kind", "x", "y", "reference", "series", "member", "date_or_label", "value"]


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _as_dates(d: np.ndarray):
    return np.asarray(d, dtype="datetime64[D]").astype("datetime64[ms]").astype(object)


def _zoom_window(picks: Sequence[PixelSeries]):
    """(start, end) dates showing the forecast and the epochs just before it, or None."""
    fdates = []
    for ps in picks:
        fdates += [d for d, _ in ps.members.values()] + ([ps.median[0]] if ps.median is not None else [])
        fdates += [ps.later[0]] if ps.later is not None else []
    fdates = [np.asarray(d, dtype="datetime64[D]") for d in fdates if len(d)]
    if not fdates:
        return None
    first = min(d.min() for d in fdates)
    last = max(d.max() for d in fdates)
    n_fc = max(len(d) for d in fdates)
    start = first
    obs = [ps.observed[0] for ps in picks if ps.observed is not None and len(ps.observed[0])]
    if obs:
        before = obs[0][obs[0] < first]
        if len(before):
            start = before[-min(len(before), max(3 * n_fc, 6))]
    pad = max(np.timedelta64(1, "D"), (last - start) // 20)
    return start - pad, last + pad


def _placeholder(ax):
    ax.text(0.5, 0.5, "Choose the layers (or 'Find result layers'),\nthen click a pixel on the map "
            "('Pick pixel')\nor draw a polygon ('Polygon average')",
            ha="center", va="center", transform=ax.transAxes, color="#555")
    ax.set_axis_off()


def _pick_rows(ps: PixelSeries) -> Tuple[str, str, float, float, str]:
    return ps.label, ps.kind, float(ps.point[0]), float(ps.point[1]), ps.reference


def draw(fig, picks: Sequence[Optional[PixelSeries]], title: str = "", zoom: bool = False,
         members: bool = False) -> List[Row]:
    """Draw the picks into ``fig``; return a :data:`Row` per value drawn.

    Artists carry gids ``<what>:<pick index>`` (``observed:0``, ``later:0``, ``median:0``,
    ``member<k>:0``, ``P10:0`` (quantiles raster), ``fan P10-P90:0``, ``fan P5-P95:0``,
    ``spread observed:0``; bars ``<label>:<pick index>``) so a test can read back what was
    plotted. ``zoom`` limits the time axis to the forecast and the epochs just before it;
    ``members`` also draws every member."""
    fig.clear()
    picks = [p for p in picks if p is not None and not p.is_empty()]
    rows: List[Row] = []
    has_bars = any(p.class_probabilities or p.exceedance for p in picks)
    if has_bars:
        gs = fig.add_gridspec(1, 3)
        ax = fig.add_subplot(gs[0, :2])
        axb = fig.add_subplot(gs[0, 2])
    else:
        ax, axb = fig.add_subplot(111), None
    if not picks:
        _placeholder(ax)
        if axb is not None:
            axb.set_axis_off()
        return rows
    multi = len(picks) > 1
    spread_labelled = False
    for i, ps in enumerate(picks):
        c = colour(i)
        tag = f"{ps.label} " if multi else ""
        first = i == 0
        head = _pick_rows(ps)

        def add(series, d, v, member=""):
            rows.extend((*head, series, member, str(dd), float(vv)) for dd, vv in zip(d, v))

        if ps.observed is not None:
            ax.plot(_as_dates(ps.observed[0]), ps.observed[1], "o-", ms=2.5, lw=1, color=c,
                    label=f"{tag}observed", gid=f"observed:{i}")
            add("observed", *ps.observed)
        for j, (name, (d, lo, hi)) in enumerate(ps.spread.items()):
            lab = "spread across the area's pixels (P10–P90)" if j == 0 and not spread_labelled else None
            spread_labelled = spread_labelled or lab is not None
            coll = ax.fill_between(_as_dates(d), lo, hi, facecolor="none", edgecolor=c, hatch="////", lw=0,
                                   alpha=0.5, label=lab)
            coll.set_gid(f"spread {name}:{i}")
            add(f"pixel spread {name} P10", d, lo)
            add(f"pixel spread {name} P90", d, hi)
        fq = fan(ps)
        if fq:
            for lo, hi, alpha in ((5, 95, 0.14), (10, 90, 0.30)):
                coll = ax.fill_between(_as_dates(fq[lo][0]), fq[lo][1], fq[hi][1], color=c, alpha=alpha, lw=0,
                                       label=f"P{lo}–P{hi} (members)" if first else None)
                coll.set_gid(f"fan P{lo}-P{hi}:{i}")
            for p in sorted(fq):
                add(f"fan P{p}", *fq[p])
        else:
            lo, hi = ps.quantiles.get("P10"), ps.quantiles.get("P90")
            if lo is not None and hi is not None and len(lo[0]) == len(hi[0]) and len(lo[0]):
                if len(lo[0]) > 1:
                    coll = ax.fill_between(_as_dates(lo[0]), lo[1], hi[1], color=c, alpha=0.3, lw=0,
                                           label="P10–P90" if first else None)
                    coll.set_gid(f"band:{i}")
                else:
                    mid = ps.quantiles.get("P50", (lo[0], (lo[1] + hi[1]) / 2.0))[1]
                    eb = ax.errorbar(_as_dates(lo[0]), mid, yerr=[mid - lo[1], hi[1] - mid], fmt="none", ecolor=c,
                                     elinewidth=2.5, capsize=5, label="P10–P90 (last epoch)" if first else None)
                    eb.lines[2][0].set_gid(f"band:{i}")
        if members:
            for j, k in enumerate(sorted(ps.members)):
                d, v = ps.members[k]
                ax.plot(_as_dates(d), v, "-", lw=0.7, color=c, alpha=0.35,
                        label="ensemble members" if first and j == 0 else None, gid=f"member{k}:{i}")
                add("member", d, v, str(k))
        for q in sorted(ps.quantiles, key=lambda s: float(s[1:])):
            d, v = ps.quantiles[q]
            ax.plot(_as_dates(d), v, "_", ms=12, mew=2, color=c, gid=f"{q}:{i}")
            add(q, d, v)
        if ps.median is not None:
            ax.plot(_as_dates(ps.median[0]), ps.median[1], "s-", ms=3, lw=2, color=c,
                    label=f"{tag}forecast median", gid=f"median:{i}")
            add("median", *ps.median)
        if ps.later is not None and len(ps.later[0]):
            ax.plot(_as_dates(ps.later[0]), ps.later[1], "D", ms=4.5, mfc="white", mec=c, mew=1.3, ls="none",
                    label="later observations" if first else None, gid=f"later:{i}")
            add("later observed", *ps.later)
    win = _zoom_window(picks) if zoom else None
    if win is not None:
        _zoom(ax, win)
    ref = picks[0].reference
    ax.set_ylabel(f"displacement relative to {ref} (mm)" if ref else "displacement (mm)", fontsize=8)
    ax.grid(True, alpha=0.3)
    n_labels = len(ax.get_legend_handles_labels()[1])
    if n_labels:
        ax.legend(loc="best", fontsize=7, framealpha=0.8, ncol=2 if n_labels > 6 else 1)
    ps = picks[0]
    if multi:
        head = ", ".join(f"{p.label}: {p.where()}" for p in picks[:3]) + (" …" if len(picks) > 3 else "")
    else:
        head = f"{ps.label + ': ' if ps.label else ''}{ps.where()}"
        if ps.susceptibility_class is not None:
            head += f" — susceptibility: {ps.susceptibility_class[1]}"
    ax.set_title((title or head) + (f" (relative to {ref})" if ref else ""), fontsize=8)
    ax.tick_params(labelsize=7)
    fig.autofmt_xdate()
    for ps in picks:
        head = _pick_rows(ps)
        if ps.susceptibility_class is not None:
            rows.append((*head, "susceptibility class", "", ps.susceptibility_class[1],
                         float(ps.susceptibility_class[0])))
        rows.extend((*head, "class probability", "", lab, float(v)) for lab, v in ps.class_probabilities)
        rows.extend((*head, "exceedance probability", "", lab, float(v)) for lab, v in ps.exceedance)
    if axb is not None:
        _bars(axb, picks)
    fig.tight_layout()
    return rows


def _zoom(ax, win):
    vals = []
    for ln in ax.get_lines():
        xd = np.asarray(ln.get_xdata()).astype("datetime64[D]")
        yd = np.asarray(ln.get_ydata(), dtype=float)
        keep = (xd >= win[0]) & (xd <= win[1]) & np.isfinite(yd)
        vals.extend(yd[keep].tolist())
    for coll in ax.collections:
        for path in coll.get_paths():
            v = path.vertices
            xd = v[:, 0]
            lo, hi = (_num(win[0]), _num(win[1]))
            keep = (xd >= lo) & (xd <= hi) & np.isfinite(v[:, 1])
            vals.extend(v[keep, 1].tolist())
    ax.set_xlim(_as_dates(np.array(win)))
    if vals:
        lo, hi = min(vals), max(vals)
        m = max(0.5, 0.08 * (hi - lo))
        ax.set_ylim(lo - m, hi + m)


def _num(d):
    import matplotlib.dates as mdates

    return mdates.date2num(_as_dates(np.array([d]))[0])


def _label(lab: str, prob: bool) -> str:
    lab = lab if (not prob or lab.startswith("P(")) else f"P({lab})"
    return lab if len(lab) <= 30 else lab[:29] + "…"


def _bars(axb, picks: Sequence[PixelSeries]) -> None:
    labels: List[str] = []
    kinds = {}
    for ps in picks:
        for lab, _ in ps.class_probabilities:
            if _label(lab, True) not in labels:
                labels.append(_label(lab, True))
                kinds[labels[-1]] = "#756bb1"
        for lab, _ in ps.exceedance:
            if _label(lab, False) not in labels:
                labels.append(_label(lab, False))
                kinds[labels[-1]] = "#e31a1c"
    n = len(picks)
    h = 0.8 / n
    y = np.arange(len(labels))
    for i, ps in enumerate(picks):
        vals = {_label(lab, True): v for lab, v in ps.class_probabilities}
        vals.update({_label(lab, False): v for lab, v in ps.exceedance})
        v = np.array([vals.get(lab, np.nan) for lab in labels], dtype=float)
        cols = [kinds[lab] for lab in labels] if n == 1 else colour(i)
        bars = axb.barh(y - 0.4 + h * (i + 0.5), np.nan_to_num(v), height=h, color=cols)
        for b, lab in zip(bars, labels):
            b.set_gid(f"{lab}:{i}")
    axb.set_yticks(y)
    axb.set_yticklabels(labels, fontsize=7)
    axb.invert_yaxis()
    axb.set_xlim(0, 1)
    axb.tick_params(axis="x", labelsize=7)
    axb.set_xlabel("probability", fontsize=8)
    axb.set_title("class / exceedance", fontsize=8)


def figure_canvas(size=(7.6, 3.9)):
    """A matplotlib Qt canvas (qtagg, else qt5agg), or None to fall back to a PNG label."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    for mod in ("matplotlib.backends.backend_qtagg", "matplotlib.backends.backend_qt5agg"):
        try:
            import importlib

            canvas_cls = importlib.import_module(mod).FigureCanvasQTAgg
            return fig, canvas_cls(fig)
        except Exception:  # noqa: BLE001 - try the next backend
            continue
    return fig, None
