"""The classical family of a block from any origin, computed once (:class:`FamilyCache`): the local track
record (:func:`anchors.local_forecast`), the candidates of the skill gate and the calibration's evidence ask
for the same origins. With a basis of the scene's temporal EOFs (:mod:`eof`) it also gives the family on the
series projected on them, candidates of the local track record (session 13)."""
from __future__ import annotations

import numpy as np

from .anchors import FAMILY, LOCAL_EXTRA, family_forecasts
from .eof import projected_forecasts

#: the members computed on the projected series: the family and the local track record's extra candidates
EOF_MEMBERS = FAMILY + LOCAL_EXTRA


class FamilyCache:
    """The family of a block from any origin ``o`` over the next ``lead`` epochs, computed once:
    the local track record and the candidates of the skill gate ask for the same origins."""

    def __init__(self, hist: np.ndarray, dates, lead: int, time_function=None, basis=None):
        self.flat = np.asarray(hist, dtype=np.float64).reshape(np.shape(hist)[0], -1)
        self.dates = np.asarray(dates, dtype="datetime64[D]")
        self.lead, self.tf, self.basis = int(lead), time_function, basis   # basis: :func:`eof.stack_basis`
        self._memo = {}

    def eof(self, o: int, target_dates=None) -> np.ndarray:
        """:data:`EOF_MEMBERS` from origin ``o`` on the series projected on the basis at ``o``, (M, h, n)
        (NaN without a basis at ``o``, and at pixels with a gap): :func:`eof.projected_forecasts`."""
        o = int(o)
        key = (o, "eof", None if target_dates is None else len(target_dates))
        if key not in self._memo:
            d, u = self.dates, self.basis.get(o)
            td = d[o + 1:o + self.lead + 1] if target_dates is None else target_dates
            if u is None:
                self._memo[key] = np.full((len(EOF_MEMBERS), len(td), self.flat.shape[1]), np.nan)
            else:
                fu = family_forecasts(u, d[:o + 1], td, None, EOF_MEMBERS)
                self._memo[key] = projected_forecasts(self.flat[:o + 1], u, fu)
        return self._memo[key]

    def __call__(self, o: int) -> np.ndarray:
        return self._get(int(o), FAMILY)

    def extra(self, o: int) -> np.ndarray:
        """:data:`LOCAL_EXTRA` from origin ``o`` over the next ``lead`` epochs, (len(LOCAL_EXTRA), lead, n)."""
        return self._get(int(o), LOCAL_EXTRA)

    def _get(self, o: int, members) -> np.ndarray:
        key = (o, tuple(members))
        if key not in self._memo:
            self._memo[key] = family_forecasts(self.flat[:o + 1], self.dates[:o + 1],
                                               self.dates[o + 1:o + self.lead + 1], self.tf, members)
        return self._memo[key]
