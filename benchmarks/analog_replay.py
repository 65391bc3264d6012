"""The spatial analog among the local forecast's candidates (session 49, docs/skill.md), replayed like
``season_record_replay.py`` from several origins of each scene, classical forecasts only; ``--real`` on the real tracks
as ``smoothing_replay.py``.

Why: the third generator's longwall panels move a subsidence front across the pixels, a motion no fit through a
pixel's own past extrapolates (docs/skill.md, "Session 46": persistence was the least wrong in the mining zones). A
pixel the front has reached follows the path its neighbours behind the front took a few epochs earlier
(:mod:`deformcast.algorithms.data.analog`).

Variants: ``off`` (the default); ``on`` (offered wherever the block is dense, ``analog.offer``; the record decides);
``on, T3`` and ``on, T5`` (offered only within ``analog.RADIUS`` pixels of a pixel whose two-year velocity is 3 or 5
standard errors from zero). The session-49 figures of docs/skill.md were measured before the dense-block rule, which
changes nothing on the written scenes (dense) and withholds the analog on the real tracks.

Usage::

    .venv/bin/python benchmarks/analog_replay.py --origins 15 9 3 --out build/analog.json build/srr/*/seed_*
    .venv/bin/python benchmarks/analog_replay.py --real build/real_ps/asc build/real_ps/desc
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ensure_pkg  # noqa: E402

ensure_pkg()
from deformcast.algorithms.data import analog, anchors as anc  # noqa: E402
from season_record_replay import H  # noqa: E402
from smoothing_replay import variants_main  # noqa: E402

#: the switches of :mod:`analog` of each variant
VARIANTS = {"off": {"ANALOG": False}, "on": {"ANALOG": True, "OFFER_T": 0.0},
            "on, T3": {"ANALOG": True, "OFFER_T": 3.0}, "on, T5": {"ANALOG": True, "OFFER_T": 5.0}}


def variants(y, o, hd, td, tf, fam, only=None, lead=H) -> dict:
    """Each variant's local forecast (lead, pixels) from origin ``o`` of the stack ``y``."""
    out = {}
    for name, switches in VARIANTS.items():
        if only and name not in only:
            continue
        shipped = {k: getattr(analog, k) for k in switches}
        for k, v in switches.items():
            setattr(analog, k, v)
        try:
            cache = anc.FamilyCache(y[:o + 1], hd, lead, tf)
            out[name] = anc.local_forecast(y[:o + 1], hd, td, lead, tf, family=fam,
                                           past_family=cache).reshape(lead, -1)
        finally:
            for k, v in shipped.items():
                setattr(analog, k, v)
    return out


def main(argv=None):
    variants_main(variants, __doc__.split("\n")[0], argv)


if __name__ == "__main__":
    main()
