"""The local forecast's track record as squared mean errors over runs of each origin's scored epochs (session 48,
docs/skill.md), replayed like ``season_record_replay.py`` from several origins of each scene, classical forecasts
only; ``--real`` on the real tracks as ``smoothing_replay.py``.

Why: since session 41 each origin's record is the squared mean error over all its scored epochs (up to 15), which
holds about 1/m of the targets' noise but cannot tell a forecast of the right shape over the lead from one right on
average. On the third generator's quiet background the all-history linear fit (no seasons) held the best record and
the all-history trajectory (with them) the best forecast, origin after origin (session 48, blind seeds 0 and 22). Runs
of consecutive epochs keep part of the shape and more of the noise.

Variants: ``track_record.RECORD_BLOCKS`` 1 (shipped), 2, 3 and 5.

Usage::

    .venv/bin/python benchmarks/record_blocks_replay.py --out build/rbr.json build/srr/*/seed_*
    .venv/bin/python benchmarks/record_blocks_replay.py --real build/real_ps/asc build/real_ps/desc
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ensure_pkg  # noqa: E402

ensure_pkg()
from deformcast.algorithms.data import anchors as anc, track_record  # noqa: E402
from season_record_replay import H, patched_variants  # noqa: E402
from smoothing_replay import variants_main  # noqa: E402

VARIANTS = {"shipped": 1, "runs of 2": 2, "runs of 3": 3, "runs of 5": 5}


def variants(y, o, hd, td, tf, fam, only=None, lead=H) -> dict:
    """Each variant's local forecast (lead, pixels) from origin ``o`` of the stack ``y``."""
    cache = anc.FamilyCache(y[:o + 1], hd, lead, tf)     # the families from earlier origins; the records made anew
    return patched_variants(VARIANTS, only, "RECORD_BLOCKS", VARIANTS.get, lambda: anc.local_forecast(
        y[:o + 1], hd, td, lead, tf, family=fam, past_family=cache).reshape(lead, -1), module=track_record)


def main(argv=None):
    variants_main(variants, __doc__.split("\n")[0], argv)


if __name__ == "__main__":
    main()
