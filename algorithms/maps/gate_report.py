"""The skill gate in words: the verdict with the held-out test period, the sentence of the report's
summary, the report's section (moved out of :mod:`skill_gate`, which fits and applies the gate and
imports them from here)."""
from __future__ import annotations

import os

ENSEMBLE_LOCAL = "ensemble, local blend"   # the ensemble blended with the local forecast by their track records
#: a held-out ratio within this of 1 is reported as a tie: one test period is one draw of each date's noise
#: (over six origins of one benchmark scene the networks' ratio swung from 0.87 to 1.52, docs/skill.md), and
#: 2 % is the tolerance issue 12 sets for real data
TIE = 0.02


def _tie(ratio: float) -> str:
    """The words a held-out ratio within :data:`TIE` of 1 gets (empty otherwise)."""
    return (f" The difference is under {TIE:.0%}: one test period cannot tell the two apart (a tie)."
            if abs(float(ratio) - 1.0) < TIE else "")


def with_held_out(gate: dict, back: dict) -> dict:
    """The gate's verdict with the backtest on the models' test period beside the rolling origins.

    The rolling origins end before the test period and score the validation pixels only; the test
    period is the latest stretch of the record, out of sample for every pixel (no network trained on
    it). The ensemble is declared a win only when both say so: over the twenty benchmark seeds the
    rolling origins alone agreed with the true future on 16, the test period alone on 18, and seeds 14
    and 19, where the rolling origins said win and the future lose, were the test period's two losses
    (docs/skill.md). ``back`` from ``backtest.run_backtest`` (or the workflow summary's copy): its rows
    ``ensemble median`` (raw), ``delivered ...`` (gated) and the best ``baseline: ...`` against the
    observations of the test period (never the truth; the backtest ranks by the truth when a synthetic
    scene gives one). Returns a new dict with ``verdict`` (combined), ``verdict_rolling`` and
    ``held_out`` (with ``verdict_delivered``: the gated forecast against that baseline)."""
    rows = back["rows"]
    raw = next(r for r in rows if r["model"] == "ensemble median")
    best = min((r for r in rows if r["model"].startswith("baseline")), key=lambda r: r["rmse_observed"])
    r_e, r_b = float(raw["rmse_observed"]), float(best["rmse_observed"])
    held = "win" if r_e < r_b else "lose"
    rolling = gate.get("verdict_rolling", gate["verdict"])
    # what the user receives (the gated forecast; the raw ensemble where there is no gate), out of sample
    # for the networks and for the gate (fitted on the rolling origins before the test period)
    r_d = float(next((r for r in rows if r["model"].startswith("delivered")), raw)["rmse_observed"])
    return dict(gate, verdict_rolling=rolling, verdict="win" if rolling == "win" and held == "win" else "lose",
                held_out={"verdict": held, "rmse_ensemble": r_e, "rmse_best": r_b,
                          "best": str(best["model"]).replace("baseline: ", ""),
                          "ratio": r_e / r_b if r_b > 0 else float("nan"), "origin": back.get("forecast_start"),
                          "verdict_delivered": "win" if r_d < r_b else "lose", "rmse_delivered": r_d,
                          "ratio_delivered": r_d / r_b if r_b > 0 else float("nan")})


def gate_sentence(gate: dict) -> str:
    s = gate["scores"]
    ens, ref = s["ensemble median"], s[gate["reference"]]
    head = (f"Over {gate['n_origins']} rolling origins the ensemble median "
            + ("beats" if gate.get("verdict_rolling", gate["verdict"]) == "win" else "does NOT beat")
            + f" the best classical forecast ({gate['reference']}): "
            + (f"origin by origin its RMSE is {gate['ratio']:.2f} x the classical one (geometric mean over origins), "
               if gate.get("aggregation") == "geometric" else "")
            + f"RMSE {ens['rmse']:.2f} vs {ref['rmse']:.2f} mm over all values "
            f"(won {gate['origins_won']} of {gate['n_origins']} origins). ")
    own = ("The forecast is the ensemble's, blended pixel by pixel with the local classical forecast by their "
           "track records over the last horizon." if gate.get("local_blend") else "The forecast is the ensemble's.")
    refs = sorted(set(gate.get("references") or [gate["reference"]]))
    fallback = " / ".join("local (the classical forecasts weighted by each neighbourhood's recent track record)"
                          if r == "local" else r for r in refs)
    act = {"ensemble kept": own,
           "classical forecast": f"The delivered forecast falls back to the classical {fallback} forecast.",
           "blended": f"The delivered forecast blends the ensemble with the classical {fallback} forecast "
                      f"(mean ensemble weight {gate['mean_weight']:.2f})."}[gate["action"]]
    if gate.get("held"):
        act += f" The gate was held: {gate['held']}."
    g = s["gated forecast"]["rmse"]
    held = ""
    if gate.get("held_out"):
        h = gate["held_out"]
        tie = _tie(h.get("ratio", float("nan")))
        held = (f" In the held-out test period (every pixel, from {h['origin']}) the ensemble median "
                + ("beats" if h["verdict"] == "win" else "does NOT beat")
                + f" the best classical baseline ({h['best']}): {h['rmse_ensemble']:.2f} vs {h['rmse_best']:.2f} mm."
                + tie + " "
                + (("Verdict: the networks beat the classical forecasts at the rolling origins, and the test period "
                    "does not contradict it." if tie else
                    "Verdict: the networks beat the classical forecasts.") if gate["verdict"] == "win" else
                   "Verdict: the networks are NOT shown to beat the classical forecasts."))
        if "verdict_delivered" in h:
            held += (f" The delivered forecast (after the gate) scored {h['rmse_delivered']:.2f} mm there: it "
                     + ("beats" if h["verdict_delivered"] == "win" else "does NOT beat")
                     + f" the best classical baseline ({h['ratio_delivered']:.2f} x its RMSE)."
                     + _tie(h.get("ratio_delivered", float("nan"))))
    return head + act + f" Gated forecast: {g:.2f} mm over the same origins." + held


def report_section(rep, gate: dict) -> None:
    """Rolling-origin skill and the skill gate (the report's verdict rests on these)."""
    sc = gate["scores"]
    rep.paragraph(f"Forecasts from {gate['n_origins']} origins ({gate['origin_dates'][0]} .. {gate['origin_dates'][-1]}), "
                  "each over the full horizon, with every target before the test period, scored on the validation "
                  "pixels (spatial validation) or in the validation period (time validation), never on a training target. RMSE against the observations, mean and spread over the origins; "
                  "every row on the same pixels and epochs (rolling_origins.csv).")
    own = ("gated forecast", "ensemble median", ENSEMBLE_LOCAL)
    geo = all("rmse_geo" in v for v in sc.values())   # gates fitted since session 25
    key = "rmse_geo" if geo and gate.get("aggregation") == "geometric" else "rmse"   # the rule the gate decided by
    names = [k for k in own if k in sc] + sorted([k for k in sc if not k.startswith("member") and k not in own],
                                                 key=lambda k: sc[k][key])
    rep.table([[("delivered forecast (after the gate)" if k == "gated forecast" else
                 k if k in own else "classical: " + k),
                sc[k]["rmse"]] + ([sc[k]["rmse_geo"]] if geo else [])
               + [sc[k]["rmse_mean"], sc[k]["rmse_std"], sc[k]["mae_mean"]] for k in names],
              ["forecast", "RMSE pooled (mm)"] + (["RMSE, geometric mean over origins (mm; what the gate compares)"]
                                                 if geo else [])
              + ["RMSE mean over origins (mm)", "spread over origins (mm)", "MAE (mm)"],
              highlight=0)
    rep.note(gate_sentence(gate))
    if gate["verdict"] != "win":
        where = ("in the held-out test period" if gate.get("verdict_rolling", "lose") == "win"
                 else "at the rolling origins")
        rep.note(f"Warning: validation ({where}) shows that the networks do not beat the classical forecasts on "
                 "this stack; the maps use the gated forecast above, not the raw ensemble.")
    h = gate.get("held_out") or {}
    if h.get("verdict_delivered") == "lose":
        rep.note(f"Warning: in the held-out test period the delivered forecast (after the gate) did worse than the "
                 f"classical {h['best']} forecast ({h['rmse_delivered']:.2f} vs {h['rmse_best']:.2f} mm). Compare the "
                 f"maps with that classical forecast before acting on them.")
    rep.table([[c["class"], c["n"], c["reference"], c["rmse_ensemble"], c["rmse_reference"], c["rmse_gated"],
                c["mean_weight"]] for c in gate["per_class"]],
              [f"pixels by the movement the {gate.get('classifier', 'reference')} forecast expects", "values scored",
               "classical reference", "ensemble RMSE (mm)", "reference RMSE (mm)", "gated RMSE (mm)",
               "mean ensemble weight"])


def append_to_report(path: str, gate: dict, title: str = "Skill over rolling origins and the skill gate") -> str:
    """Insert :func:`report_section` before the end of an existing HTML report (``tune``'s)."""
    from ..report import Report

    rep = Report(title)
    rep.heading(title)
    report_section(rep, gate)
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    frag = "".join(rep.parts)
    k = text.rfind("</body>")
    text = text[:k] + frag + text[k:] if k >= 0 else text + frag
    tmp = path + ".part"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return path
