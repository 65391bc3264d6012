"""Sharper candidate weights on quiet ground (session 48, docs/skill.md), replayed like ``season_record_replay.py`` from
several origins of each scene, classical forecasts only.

Why: on the third generator's quiet background the local forecast lost to the all-history fits (session 46:
1.00-1.52 of the best family member there; blind seed 0, session 48: 1.03-1.13 over six origins). Its weights, the
inverse squared pooled record, spread over all sixteen candidates there: the best-recorded candidate took 0.1-0.2 of
the weight, short-window candidates whose forecasts scatter widely the rest. Where the ground is quiet
(``flat_record.quiet_ground``) the longer record (session 47) scores the candidates over fourteen origins; a sharper
power puts more of the weight where that record is best.

Variants: ``shipped`` (power ``anchors.LOCAL_POWER`` = 2 everywhere), ``quiet p3`` / ``quiet p4`` / ``quiet p8`` (that
power at the quiet pixels, 2 elsewhere), ``everywhere p3`` and ``everywhere p4``.

Usage::

    .venv/bin/python benchmarks/quiet_power_replay.py --out build/qpr.json build/srr/*/seed_*
    .venv/bin/python benchmarks/quiet_power_replay.py --real build/real_ps/asc build/real_ps/desc
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ensure_pkg  # noqa: E402

ensure_pkg()
from deformcast.algorithms.data import anchors as anc, flat_record  # noqa: E402
from season_record_replay import H, patched_variants  # noqa: E402
from smoothing_replay import variants_main  # noqa: E402

#: ``flat_record.QUIET_POWER`` of each variant (the power at the quiet pixels)
VARIANTS = {"shipped": None, "quiet p3": 3.0, "quiet p4": 4.0, "quiet p8": 8.0}
#: ``anchors.LOCAL_POWER`` of each variant (the power everywhere)
EVERYWHERE = {"everywhere p3": 3.0, "everywhere p4": 4.0}


def variants(y, o, hd, td, tf, fam, only=None, lead=H) -> dict:
    """Each variant's local forecast (lead, pixels) from origin ``o`` of the stack ``y``: the shipped local forecast
    with the variant's power set."""
    cache = anc.FamilyCache(y[:o + 1], hd, lead, tf)

    def compute():
        return anc.local_forecast(y[:o + 1], hd, td, lead, tf, family=fam, past_family=cache).reshape(lead, -1)

    out = patched_variants(VARIANTS, only, "QUIET_POWER", VARIANTS.get, compute, module=flat_record)
    return {**out, **patched_variants(EVERYWHERE, only, "LOCAL_POWER", EVERYWHERE.get, compute)}


def main(argv=None):
    variants_main(variants, __doc__.split("\n")[0], argv)


if __name__ == "__main__":
    main()
