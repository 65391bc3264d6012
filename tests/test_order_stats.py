"""The members' median by a sorting network against ``np.median``, bit for bit."""
import numpy as np
import pytest

from deformcast.algorithms.order_stats import MAX_NETWORK, member_median


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_member_median_is_numpys_median_bit_for_bit(dtype):
    rng = np.random.default_rng(7)
    for n in range(1, MAX_NETWORK + 3):
        for axis in (0, 1, -1):
            # values over six orders of magnitude, ties, a NaN and infinities in some columns
            a = rng.normal(size=(n, 6, 11)) * 10.0 ** rng.uniform(-3, 3, size=(n, 6, 11))
            a[:, 0, 0] = 1.5                                  # all equal
            a[: max(1, n // 2), 1, 1] = -2.0                  # ties at the middle
            a = np.moveaxis(a.astype(dtype), 0, axis)
            idx = [slice(None)] * 3
            idx[axis] = 0
            a[tuple(idx)][2, 3] = np.nan
            a[tuple(idx)][4, 5] = np.inf
            if n > 1:
                idx[axis] = n - 1
                a[tuple(idx)][4, 6] = -np.inf
            got, want = member_median(a, axis), np.median(a, axis=axis)
            assert got.dtype == want.dtype and got.shape == want.shape
            assert np.array_equal(got, want, equal_nan=True), (n, axis)
            assert np.array_equal(np.isnan(got), np.isnan(want))


def test_member_median_leaves_its_input_alone():
    a = np.random.default_rng(1).normal(size=(10, 5, 4)).astype(np.float32)
    keep = a.copy()
    member_median(a)
    assert np.array_equal(a, keep)


def test_member_median_of_one_series_is_a_scalar_as_numpys():
    for v in ([3.0, 1.0, 2.0], [3.0, 1.0, 2.0, 5.0], [np.nan, 1.0, 2.0], [1.0, np.nan]):
        a = np.array(v)
        got, want = member_median(a), np.median(a)
        assert np.ndim(got) == 0 and (got == want or (np.isnan(got) and np.isnan(want)))


@pytest.mark.parametrize("chunk", [7, 64])
def test_member_median_in_chunks_is_numpys_median_bit_for_bit(monkeypatch, chunk):
    """More values than a chunk (``CHUNK``, 65 536 in use; small here so the loop and its last, shorter chunk run on
    small arrays): the same bits as ``np.median``, NaN in some chunks, on every axis, the input left alone."""
    from deformcast.algorithms import order_stats

    monkeypatch.setattr(order_stats, "CHUNK", chunk)
    rng = np.random.default_rng(8)
    for dtype in (np.float32, np.float64):
        for n in (2, 3, 10, 11):
            for axis in (0, 1, -1):
                a = rng.normal(size=(n, 9, 13)).astype(dtype)
                a[0, 2, 3] = np.nan
                a[-1, 8, 12] = np.nan
                a = np.moveaxis(a, 0, axis)
                keep = a.copy()
                got, want = member_median(a, axis), np.median(a, axis=axis)
                assert got.dtype == want.dtype and got.shape == want.shape
                assert np.array_equal(got, want, equal_nan=True), (n, axis)
                assert np.array_equal(a, keep, equal_nan=True)
