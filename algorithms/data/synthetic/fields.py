"""Small numerical helpers of the synthetic scene (numpy only): the error function, the Knothe
influence integral, time laws, power-law and smooth random fields, the radial spectrum."""
from __future__ import annotations

from typing import Optional

import numpy as np

from .scene import YEAR_DAYS


def erf(x: np.ndarray) -> np.ndarray:
    """Vectorised error function (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7)."""
    x = np.asarray(x, dtype=np.float64)
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return s * (1.0 - poly * np.exp(-a * a))


def knothe_panel(xi: np.ndarray, eta: np.ndarray, a: float, b: float, r: float) -> np.ndarray:
    """Knothe influence integral (0..1) of a rectangular panel of half-sizes ``a`` x ``b``.

    ``xi``, ``eta``: coordinates in the panel's own frame (m, origin at its centre);
    ``r``: influence radius H / tan(beta). 1 means full subsidence ``S_max``.
    """
    c = np.sqrt(np.pi) / r
    fx = 0.5 * (erf(c * (a - xi)) + erf(c * (a + xi)))
    fy = 0.5 * (erf(c * (b - eta)) + erf(c * (b + eta)))
    return fx * fy


def accelerating_law(u: np.ndarray, onset: float, alpha: float, power: float) -> np.ndarray:
    """``alpha w + (1 - alpha) w**power``, ``w = max(0, u - onset) / (1 - onset)``; 1 at u = 1."""
    w = np.maximum(0.0, np.asarray(u, dtype=np.float64) - onset) / (1.0 - onset)
    return alpha * w + (1.0 - alpha) * w ** power


def rebound_law(t_years: np.ndarray, onset: float, tau: float) -> np.ndarray:
    """``1 - exp(-(t - onset) / tau)`` after onset, 0 before."""
    dt = np.maximum(0.0, np.asarray(t_years, dtype=np.float64) - onset)
    return 1.0 - np.exp(-dt / tau)


def spectral_filter(shape, beta: float, k0: float) -> np.ndarray:
    """Amplitude filter ``(k^2 + k0^2)^(-beta/4)`` on the rfft2 grid (k in cycles/pixel)."""
    h, w = shape
    ky = np.fft.fftfreq(h)[:, None]
    kx = np.fft.rfftfreq(w)[None, :]
    k2 = kx * kx + ky * ky
    filt = np.zeros_like(k2)
    nz = k2 > 0
    filt[nz] = (k2[nz] + k0 * k0) ** (-beta / 4.0)
    return filt  # the k = 0 (mean) term is 0: fields have zero spatial mean


def powerlaw_noise(rng: np.random.Generator, n: int, shape, beta: float = 8.0 / 3.0,
                   k0: float = 0.0, filt: Optional[np.ndarray] = None) -> np.ndarray:
    """``n`` independent zero-mean, unit-std Gaussian fields (n, H, W) with P(k) ~ k^-beta."""
    h, w = shape
    if filt is None:
        filt = spectral_filter(shape, beta, k0)
    wr = filt.shape[1]
    spec = rng.standard_normal((n, h, wr), dtype=np.float32).astype(np.complex64)
    spec.imag = rng.standard_normal((n, h, wr), dtype=np.float32)
    spec *= filt.astype(np.float32)
    f = np.fft.irfft2(spec, s=(h, w), axes=(1, 2))
    f -= f.mean(axis=(1, 2), keepdims=True)
    sd = f.std(axis=(1, 2), keepdims=True)
    sd[sd == 0] = 1.0
    return (f / sd).astype(np.float32)


def smooth_field(rng: np.random.Generator, shape, corr_px: float) -> np.ndarray:
    """Zero-mean unit-std Gaussian random field with a Gaussian correlation of ``corr_px`` px."""
    h, w = shape
    ky = np.fft.fftfreq(h)[:, None]
    kx = np.fft.rfftfreq(w)[None, :]
    filt = np.exp(-2.0 * (np.pi * corr_px) ** 2 * (kx * kx + ky * ky))
    white = rng.standard_normal((h, w))
    f = np.fft.irfft2(np.fft.rfft2(white) * filt, s=(h, w))
    f -= f.mean()
    sd = f.std()
    return f / (sd if sd > 0 else 1.0)


def radial_spectrum(field: np.ndarray):
    """Radially averaged power spectrum of a 2-D field -> (k cycles/pixel, power)."""
    f = np.asarray(field, dtype=np.float64)
    f = f - f.mean()
    p = np.abs(np.fft.fft2(f)) ** 2
    ky = np.fft.fftfreq(f.shape[0])[:, None]
    kx = np.fft.fftfreq(f.shape[1])[None, :]
    k = np.sqrt(kx * kx + ky * ky)
    dk = 1.0 / max(f.shape)
    idx = np.rint(k / dk).astype(int)
    n = np.bincount(idx.ravel())
    s = np.bincount(idx.ravel(), p.ravel())
    ok = (n > 0) & (np.arange(n.size) > 0)
    kk = np.arange(n.size)[ok] * dk
    return kk, s[ok] / n[ok]


def rotate_frame(dx, dy, deg):
    """Coordinates in a frame rotated by ``deg`` (counter-clockwise from east)."""
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return dx * c + dy * s, -dx * s + dy * c


def decimal_year(dates: np.ndarray) -> np.ndarray:
    d = np.asarray(dates, dtype="datetime64[D]").astype(np.int64)  # days since 1970-01-01
    return 1970.0 + d / YEAR_DAYS
