"""The ensemble's weight in the local blend (algorithms.data.track_record.blend_weight): the least-squares weight
of the combination of two forecasts over their track record, pooled over a neighbourhood and shrunk towards the
block's (session 18)."""
import numpy as np

from deformcast.algorithms.data import track_record as TR


def _record(rng, R, Wd, T_, L, origins, w_true, noise):
    """A track record where ``w_true`` E + (1 - w_true) F is the best combination at every pixel: the truth is that
    combination, the observations add white noise of sd ``noise``."""
    n = R * Wd
    F = {o: rng.normal(0, 2, (1, L, n)) for o in origins}
    E = {o: rng.normal(0, 2, (1, L, n)) for o in origins}
    flat = rng.normal(0, noise, (T_, n))
    for o in origins:
        flat[o + 1:o + L + 1] += w_true * E[o][0] + (1 - w_true) * F[o][0]
    return flat, E.get, F.get


def test_the_blend_weight_matches_hand_sums_and_the_prior_adds_the_blocks_mean_sums():
    rng = np.random.default_rng(0)
    R, Wd, T_, L = 3, 4, 30, 4
    origins = [20, 25]
    flat, ens, loc = _record(rng, R, Wd, T_, L, origins, 0.3, 1.0)
    num, den = np.zeros(R * Wd), np.zeros(R * Wd)
    for o in origins:                     # by hand: w = sum (F - y)(F - E) / sum (F - E)^2, means over each origin
        y = flat[o + 1:o + L + 1]
        a, b = loc(o)[0] - y, loc(o)[0] - ens(o)[0]
        num += (a * b).mean(axis=0)
        den += (b * b).mean(axis=0)
    # box 1: the pixel's own sums; prior 0 gives them alone (sessions 9-17)
    w0 = TR.blend_weight(flat, L, origins, ens, loc, (R, Wd), 1, prior=0.0)
    np.testing.assert_allclose(w0, np.clip(num / den, 0, 1), atol=1e-12)
    w1 = TR.blend_weight(flat, L, origins, ens, loc, (R, Wd), 1, prior=1.0)
    np.testing.assert_allclose(w1, np.clip((num + num.mean()) / (den + den.mean()), 0, 1), atol=1e-12)
    w3 = TR.blend_weight(flat, L, origins, ens, loc, (R, Wd), 1, prior=3.0)
    np.testing.assert_allclose(w3, np.clip((num + 3 * num.mean()) / (den + 3 * den.mean()), 0, 1), atol=1e-12)
    # the scene's sums given from outside (predict's blocks: gating.scene_blend_prior) stand for the block's own
    n_, d_, k = TR.blend_sums(flat, L, origins, ens, loc, R * Wd)
    assert k == 2
    np.testing.assert_allclose(n_, num, atol=1e-12)
    np.testing.assert_allclose(TR.blend_weight(flat, L, origins, ens, loc, (R, Wd), 1, prior=1.0,
                                               prior_sums=(num.mean(), den.mean())), w1, atol=1e-12)
    other = TR.blend_weight(flat, L, origins, ens, loc, (R, Wd), 1, prior=1.0, prior_sums=(0.0, 4 * den.mean()))
    np.testing.assert_allclose(other, np.clip(num / (den + 4 * den.mean()), 0, 1), atol=1e-12)
    # the default is the module's prior
    np.testing.assert_allclose(TR.blend_weight(flat, L, origins, ens, loc, (R, Wd), 1),
                               TR.blend_weight(flat, L, origins, ens, loc, (R, Wd), 1, prior=TR.BLEND_PRIOR))


def test_the_prior_steadies_a_noisy_neighbourhood_weight():
    """Where every pixel's best weight is the same and each neighbourhood's record is a few noisy draws, the weight
    shrunk towards the block's is closer to the best one than the neighbourhood's alone."""
    rng = np.random.default_rng(1)
    R, Wd, T_, L = 40, 40, 60, 6
    origins = [40, 44, 48, 52]
    flat, ens, loc = _record(rng, R, Wd, T_, L, origins, 0.2, 6.0)
    w0 = TR.blend_weight(flat, L, origins, ens, loc, (R, Wd), 3, prior=0.0)
    w1 = TR.blend_weight(flat, L, origins, ens, loc, (R, Wd), 3, prior=1.0)
    err0, err1 = np.sqrt(np.mean((w0 - 0.2) ** 2)), np.sqrt(np.mean((w1 - 0.2) ** 2))
    assert err1 < 0.8 * err0
    assert w1.std() < w0.std()
    # no record at all: the ensemble keeps its weight 1 whatever the prior
    none = TR.blend_weight(flat, L, origins, lambda o: None, loc, (R, Wd), 3, prior=1.0)
    assert (none == 1.0).all()


def test_the_combined_family_is_the_weighted_mean_of_its_members_with_and_without_gaps():
    """``combined``: each pixel's weighted mean of the members that have a forecast there. A complete family
    takes a path without masks (session 26); both give what the masked sums give, bit for bit."""
    rng = np.random.default_rng(4)
    C, m, n = 6, 5, 300
    fam = rng.normal(size=(C, m, n)).astype(np.float32)
    w = rng.random((C, n))
    w[:, :10] = 0.0                            # no weight at all: NaN

    def by_hand(f):
        ok = np.isfinite(f)
        num = sum(w[c] * np.where(ok[c], f[c], 0.0) for c in range(C))
        den = sum(w[c] * ok[c] for c in range(C))
        with np.errstate(invalid="ignore", divide="ignore"):
            return (num / np.where(den > 0, den, np.nan))[None]

    got = TR.combined(w, fam)
    np.testing.assert_array_equal(got, by_hand(fam))
    assert np.isnan(got[0, :, :10]).all() and np.isfinite(got[0, :, 10:]).all()
    gappy = fam.copy()
    gappy[2, :, 50:60] = np.nan                # a member without a forecast at some pixels: the others' mean
    got = TR.combined(w, gappy)
    np.testing.assert_array_equal(got, by_hand(gappy))
    keep = [c for c in range(C) if c != 2]
    ref = (w[keep, None, 55] * fam[keep, :, 55]).sum(axis=0) / w[keep, 55].sum()
    np.testing.assert_allclose(got[0, :, 55], ref, rtol=1e-12)
    assert TR.combined(w, None) is None


def test_the_sums_on_the_ensembles_record_pixels_are_the_sums_everywhere():
    """``predict`` keeps the ensemble's record on every ninth pixel (NaN elsewhere); ``local_on`` makes the classical
    forecast there only (session 27). The sums equal those made with the classical forecast everywhere, 0 where the
    ensemble has no record, and the weight is the same."""
    rng = np.random.default_rng(4)
    R, Wd, T_, L = 9, 12, 40, 5
    origins = [25, 28, 31, 34]
    flat, ens, loc = _record(rng, R, Wd, T_, L, origins, 0.4, 1.5)
    lattice = np.zeros((R, Wd), bool)
    lattice[::3, ::3] = True
    lattice = lattice.ravel()

    def sparse(o):
        e = ens(o).copy()
        e[:, :, ~lattice] = np.nan
        e[:, 3, 0] = np.nan                  # a gap in one record pixel's past forecast
        return e

    calls = []

    def loc_on(o, px):
        calls.append(np.asarray(px).size)
        return loc(o)[:, :, px]

    ref = TR.blend_sums(flat, L, origins, sparse, loc, R * Wd)
    got = TR.blend_sums(flat, L, origins, sparse, loc, R * Wd, local_on=loc_on)
    assert calls == [int(lattice.sum())] * len(origins)
    for a, b in zip(ref, got):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)
    assert (got[1][~lattice] == 0).all() and (got[1][lattice] > 0).all()
    np.testing.assert_allclose(TR.blend_weight(flat, L, origins, sparse, loc, (R, Wd), 3),
                               TR.blend_weight(flat, L, origins, sparse, loc, (R, Wd), 3, local_on=loc_on),
                               rtol=1e-13, atol=1e-13)
    # a complete record: no selection, the classical forecast everywhere as before
    calls.clear()
    TR.blend_sums(flat, L, origins, ens, loc, R * Wd, local_on=loc_on)
    assert calls == []


def test_on_scattered_points_the_means_are_over_the_pixels_with_a_record(monkeypatch):
    """Points gridded onto a raster (session 42): a few cells hold a record, the others none (0 in the sums). The
    neighbourhood's and the scene's mean sums are over the cells with a record, so the scene's prior weighs beside
    a box with one point as beside a full one; over every cell (sessions 18-41) the empty cells diluted the scene's
    mean to nearly nothing. A box without a record takes the scene's weight."""
    rng = np.random.default_rng(5)
    R, Wd, T_, L = 30, 30, 40, 5
    origins = [25, 28, 31, 34]
    flat, ens, loc = _record(rng, R, Wd, T_, L, origins, 0.4, 3.0)
    cells = [(10, 10), (11, 12), (2, 2), (2, 25), (25, 3), (26, 26), (18, 20)]   # two in one 5 x 5 box
    pts = np.zeros((R, Wd), bool)
    for r, c in cells:
        pts[r, c] = True
    pts = pts.ravel()

    def sparse(o):
        e = ens(o).copy()
        e[:, :, ~pts] = np.nan
        return e

    num, den, _ = TR.blend_sums(flat, L, origins, sparse, loc, R * Wd)
    assert (den[pts] > 0).all() and (den[~pts] == 0).all()
    gn, gd = num[pts].mean(), den[pts].mean()
    monkeypatch.setattr(TR, "BLEND_RECORD_MEANS", True)
    w = TR.blend_weight(flat, L, origins, sparse, loc, (R, Wd), 5, prior=1.0)
    p, q = 10 * Wd + 10, 11 * Wd + 12
    for i in (p, q):            # the two cells of one box pool their sums
        want = ((num[p] + num[q]) / 2 + gn) / ((den[p] + den[q]) / 2 + gd)
        np.testing.assert_allclose(w[i], np.clip(want, 0, 1), atol=1e-12)
    lone = 2 * Wd + 2           # a point alone in its box: its own sums beside the scene's, equally
    np.testing.assert_allclose(w[lone], np.clip((num[lone] + gn) / (den[lone] + gd), 0, 1), atol=1e-12)
    far = 20 * Wd + 5           # no record within the box: the scene's weight
    np.testing.assert_allclose(w[far], np.clip(gn / gd, 0, 1), atol=1e-12)
    monkeypatch.setattr(TR, "BLEND_RECORD_MEANS", False)      # sessions 18-41: means over every cell
    old = TR.blend_weight(flat, L, origins, sparse, loc, (R, Wd), 5, prior=1.0)
    np.testing.assert_allclose(old[lone], np.clip((num[lone] / 25 + num.mean()) / (den[lone] / 25 + den.mean()), 0, 1),
                               atol=1e-12)
    # there the scene's prior weighed (7 / 900) / (1 / 25), a fifth of the lone point's own sums
    assert abs(old[lone] - np.clip(num[lone] / den[lone], 0, 1)) < abs(w[lone] - np.clip(num[lone] / den[lone], 0, 1))
    # a block of empty cells only (the ensemble's past forecasts all NaN there): the ensemble keeps its weight 1
    for on in (True, False):
        monkeypatch.setattr(TR, "BLEND_RECORD_MEANS", on)
        empty = TR.blend_weight(flat, L, origins, lambda o: np.full((1, L, R * Wd), np.nan), loc, (R, Wd), 5)
        assert (empty == 1.0).all()


def test_the_record_is_the_squared_mean_error_and_was_the_mean_squared_error(monkeypatch):
    rng = np.random.default_rng(3)
    f = rng.normal(0, 2, (3, 6, 5))
    obs = rng.normal(0, 2, (4, 5))                # four scored epochs of a six-epoch forecast
    w = np.array([1.0, 0.5, 2.0, 1.0])
    err = f[:, :4] - obs[None]
    want = ((err * w[None, :, None]).sum(axis=1) / w.sum()) ** 2          # session 41: the squared mean error
    np.testing.assert_allclose(TR.squared_errors(f, obs, w), want, rtol=1e-12)
    monkeypatch.setattr(TR, "RECORD_MEAN", False)      # sessions 4-40: the mean squared error
    want_mse = (err ** 2 * w[None, :, None]).sum(axis=1) / w.sum()
    np.testing.assert_allclose(TR.squared_errors(f, obs, w), want_mse, rtol=1e-12)
    assert (want <= want_mse + 1e-12).all()


def test_the_squared_mean_error_holds_about_one_mth_of_the_targets_noise_and_ranks_the_forecasts_the_same(
        monkeypatch):
    """Two forecasts 1 mm and 2 mm off a truth observed with white noise of 4 mm over 15 epochs: as a mean squared
    error the noise (16 mm^2) swamps them (17 against 20: inverse squared weights 0.58 / 0.42); as a squared mean
    error it enters 16/15 (2.1 against 5.1: weights 0.86 / 0.14), and the better forecast still ranks first."""
    rng = np.random.default_rng(4)
    m, n = 15, 20000
    obs = rng.normal(0.0, 4.0, (m, n))
    f = np.stack([np.full((m, n), 1.0), np.full((m, n), 2.0)])
    rec = TR.squared_errors(f, obs).mean(axis=1)
    np.testing.assert_allclose(rec, [1.0 + 16.0 / m, 4.0 + 16.0 / m], rtol=0.05)
    monkeypatch.setattr(TR, "RECORD_MEAN", False)
    mse = TR.squared_errors(f, obs).mean(axis=1)
    np.testing.assert_allclose(mse, [17.0, 20.0], rtol=0.02)
    share = lambda r: r[0] ** -2 / (r ** -2).sum()     # noqa: E731 (the local forecast's inverse squared weights)
    assert share(rec) > 0.8 > 0.6 > share(mse) > 0.5


def test_record_over_runs_of_epochs_hand_values(monkeypatch):
    """``RECORD_BLOCKS``: the squared mean error of each run of consecutive scored epochs, averaged by their epochs;
    1 (shipped): the squared mean over all of them."""
    f = np.zeros((1, 6, 2))
    obs = np.array([[1.0, 2.0], [1.0, np.nan], [1.0, np.nan], [-1.0, np.nan], [-1.0, np.nan], [-1.0, 4.0]])
    monkeypatch.setattr(TR, "RECORD_BLOCKS", 1)
    np.testing.assert_allclose(TR.squared_errors(f, obs)[0], [0.0, 9.0])         # means 0 and 3
    monkeypatch.setattr(TR, "RECORD_BLOCKS", 2)
    np.testing.assert_allclose(TR.squared_errors(f, obs)[0], [1.0, 10.0])        # runs [1,1,1], [-1,-1,-1]; 2 and 4
    monkeypatch.setattr(TR, "RECORD_BLOCKS", 3)                                  # runs of 2: 1, 0, 1 squared
    np.testing.assert_allclose(TR.squared_errors(f, obs)[0], [2.0 / 3.0, 10.0])
    w = np.array([1.0, 1.0, 1.0, 3.0, 1.0, 1.0])
    np.testing.assert_allclose(TR.squared_errors(f, obs, w)[0], [(1 + 0.25 + 1) * 2 / 6, 10.0])
    monkeypatch.setattr(TR, "RECORD_BLOCKS", 9)                                  # no more runs than epochs
    np.testing.assert_allclose(TR.squared_errors(f, obs)[0], [1.0, 10.0])
    assert np.isnan(TR.squared_errors(f, np.full((6, 2), np.nan))[0]).all()
