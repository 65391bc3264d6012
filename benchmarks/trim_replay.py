"""The local forecast's candidates trimmed to those whose pooled record lies near the best (session 48, docs/skill.md),
replayed like ``season_record_replay.py`` from several origins of each scene, classical forecasts only; ``--real`` on
the real tracks as ``smoothing_replay.py``.

Why: in the third generator's mining bowls that stopped (seed 24, session 48) the pooled records told the candidates
apart (persistence and the short means about 6 mm, the all-history fits 10-13 mm as root records), yet the inverse
squared records left the nine worse candidates a third of the weight; the local forecast scored 8.7-10.7 mm where
persistence scored 6.5-9.5. A sharper power everywhere helps there and loses on the second generator, whose records
are mostly noise (``quiet_power_replay.py``). Trimming (as forecast combinations trim their worst members) gives no
weight to a candidate whose pooled record is more than ``k`` times the pixel's best: where the records lie close, as
noise makes them, nothing changes.

Variants: ``shipped``; ``trim 2x`` and ``trim 4x`` (the pooled record, a squared error, at most 2 or 4 times the best);
``se trim z3``, ``z2`` and ``z1`` (:data:`SE_VARIANTS`: withheld only where the record is worse than the best by more
than 3, 2 or 1 standard errors of the difference, which noise cannot make).

Usage::

    .venv/bin/python benchmarks/trim_replay.py --out build/trim.json build/srr/*/seed_*
    .venv/bin/python benchmarks/trim_replay.py --real build/real_ps/asc build/real_ps/desc
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ensure_pkg  # noqa: E402

ensure_pkg()
from deformcast.algorithms.data import anchors as anc, pooling  # noqa: E402
from season_record_replay import H, patched_variants  # noqa: E402
from smoothing_replay import variants_main  # noqa: E402

#: ``pooling.LOCAL_TRIM`` of each variant: a candidate is withheld where its pooled record exceeds k times the best
VARIANTS = {"shipped": None, "trim 2x": 2.0, "trim 4x": 4.0}
#: ``pooling.SE_TRIM`` of each variant: withheld where the pooled record exceeds the best one's by more than z standard
#: errors of the difference (the two sampling variances of ``pooling.sampling_variance`` summed; the shipped seven
#: origins' also at the quiet pixels, whose longer record has a smaller one)
SE_VARIANTS = {"se trim z3": 3.0, "se trim z2": 2.0, "se trim z1": 1.0}


def variants(y, o, hd, td, tf, fam, only=None, lead=H) -> dict:
    """Each variant's local forecast (lead, pixels) from origin ``o`` of the stack ``y``: the shipped local forecast
    with the variant's switch of :mod:`pooling` set."""
    cache = anc.FamilyCache(y[:o + 1], hd, lead, tf)

    def compute():
        return anc.local_forecast(y[:o + 1], hd, td, lead, tf, family=fam, past_family=cache).reshape(lead, -1)

    out = patched_variants(VARIANTS, only, "LOCAL_TRIM", VARIANTS.get, compute, module=pooling)
    return {**out, **patched_variants(SE_VARIANTS, only, "SE_TRIM", SE_VARIANTS.get, compute, module=pooling)}


def main(argv=None):
    variants_main(variants, __doc__.split("\n")[0], argv)


if __name__ == "__main__":
    main()
