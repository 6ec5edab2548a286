"""NIQE, the "completely blind" natural image quality evaluator, in numpy (no scipy, no network).

Mittal, Soundararajan and Bovik, "Making a 'Completely Blind' Image Quality Analyzer", IEEE Signal
Processing Letters 20(3), 2013. Lower is more natural.

The algorithm follows the authors' MATLAB release (``niqe_release.zip``) as re-implemented in BasicSR's
``basicsr/metrics/niqe.py`` (which matches MATLAB R2021a to 4 decimals), step for step:

1. Y of BT.601 YCbCr (``16 + 65.481 R + 128.553 G + 24.966 B`` for RGB in [0, 1]), in [0, 255], rounded;
   cropped to whole 96 × 96 patches, no overlap.
2. Two scales: the image, then MATLAB's ``imresize(·, 0.5)`` (bicubic with antialiasing, symmetric edges).
3. At each scale, MSCN coefficients ``(I − μ) / (σ + 1)`` with the 7 × 7 Gaussian window of the pristine
   model (edges replicated), cut into the same patches (96 px, then 48 px at half scale).
4. Per patch, 18 features: the generalized Gaussian fit of the MSCN values (shape, mean of the two
   scales) and, for the products with the 4 neighbours (right, below, diagonal, anti-diagonal; the
   patch wraps around), the asymmetric generalized Gaussian fit (shape, mean, left and right scales).
   Shapes are found by moment matching on the grid 0.2:0.001:10.
5. A multivariate Gaussian fitted to the 36-dimensional features of all patches (NaN rows left out of
   the covariance) is compared with the pristine one:
   ``sqrt((μp − μd)ᵀ · pinv((Σp + Σd) / 2) · (μp − μd))``.

The pristine model ``niqe_pris_params.npz`` (μ, Σ and the Gaussian window, fitted by the authors on
125 pristine photos) ships beside this file. It is copied unchanged from BasicSR 1.4.2
(https://github.com/XPixelGroup/BasicSR, ``basicsr/metrics/niqe_pris_params.npz``, Apache-2.0,
Copyright 2018-2022 BasicSR Authors).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np
import torch

PATCH = 96
_GRID = np.arange(0.2, 10.001, 0.001)  # candidate shape parameters, as in the reference


@dataclass(frozen=True)
class PristineModel:
    mu: np.ndarray  # [36]
    cov: np.ndarray  # [36, 36]
    window: np.ndarray  # [7, 7] Gaussian, sums to 1


@lru_cache(maxsize=1)
def pristine_model() -> PristineModel:
    """The authors' pristine model, read from the package (``niqe_pris_params.npz``)."""
    with resources.files("air_restore.core").joinpath("niqe_pris_params.npz").open("rb") as f:
        d = np.load(f)
        return PristineModel(d["mu_pris_param"].reshape(-1).astype(np.float64),
                             d["cov_pris_param"].astype(np.float64), d["gaussian_window"].astype(np.float64))


@lru_cache(maxsize=1)
def _ratio_table() -> np.ndarray:
    """r(γ) = Γ(2/γ)² / (Γ(1/γ) Γ(3/γ)) on the shape grid (log-gamma for stability)."""
    lg = np.vectorize(math.lgamma)
    return np.exp(2 * lg(2 / _GRID) - lg(1 / _GRID) - lg(3 / _GRID))


def _gamma(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.gamma, otypes=[np.float64])(x)


def aggd_fit(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Asymmetric generalized Gaussian fit of each row of ``blocks`` [N, P]: shape α, left and right
    scales β_l, β_r (each [N]), by moment matching on the shape grid."""
    neg, pos = blocks < 0, blocks > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        left_std = np.sqrt((np.where(neg, blocks, 0) ** 2).sum(1) / neg.sum(1))
        right_std = np.sqrt((np.where(pos, blocks, 0) ** 2).sum(1) / pos.sum(1))
        gammahat = left_std / right_std
        rhat = np.abs(blocks).mean(1) ** 2 / (blocks**2).mean(1)
        rhatnorm = rhat * (gammahat**3 + 1) * (gammahat + 1) / (gammahat**2 + 1) ** 2
    table = _ratio_table()
    # argmin over the grid of (r(γ) − r̂)², row by row. Like the reference (and MATLAB's min), a patch
    # with no negative or no positive value (flat) gets the first grid value, 0.2, and NaN scales:
    # its shape still counts in the mean, and the NaN row is left out of the covariance.
    idx = np.argmin((table[None, :] - rhatnorm[:, None]) ** 2, axis=1)
    alpha = _GRID[idx]
    with np.errstate(invalid="ignore"):
        k = np.sqrt(_gamma(1 / alpha) / _gamma(3 / alpha))
    return alpha, left_std * k, right_std * k


def patch_features(mscn: np.ndarray, patch: int) -> np.ndarray:
    """The 18 NIQE features of every ``patch`` × ``patch`` block of an MSCN map [H, W] → [N, 18]."""
    h, w = mscn.shape[0] // patch, mscn.shape[1] // patch
    blocks = mscn[: h * patch, : w * patch].reshape(h, patch, w, patch).transpose(0, 2, 1, 3).reshape(-1, patch, patch)
    flat = blocks.reshape(len(blocks), -1)
    alpha, bl, br = aggd_fit(flat)
    feats = [alpha, (bl + br) / 2]
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
        prod = (blocks * np.roll(blocks, shift, axis=(1, 2))).reshape(len(blocks), -1)
        a, l, r = aggd_fit(prod)
        with np.errstate(invalid="ignore"):
            mean = (r - l) * _gamma(2 / a) / _gamma(1 / a)
        feats += [a, mean, l, r]
    return np.stack(feats, axis=1)


def _filter_replicate(img: np.ndarray, window: np.ndarray) -> np.ndarray:
    """``img`` filtered by a symmetric odd ``window`` with replicated edges (scipy's mode='nearest')."""
    r = window.shape[0] // 2
    pad = np.pad(img, r, mode="edge")
    out = np.zeros_like(img)
    h, w = img.shape
    for i in range(window.shape[0]):
        for j in range(window.shape[1]):
            out += window[i, j] * pad[i : i + h, j : j + w]
    return out


def mscn(img: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalized coefficients of a Y image in [0, 255]."""
    mu = _filter_replicate(img, window)
    sigma = np.sqrt(np.abs(_filter_replicate(img * img, window) - mu * mu))
    return (img - mu) / (sigma + 1)


def _matlab_resize_matrix(n: int, scale: float) -> np.ndarray:
    """[ceil(n·scale), n] matrix of MATLAB's bicubic ``imresize`` along one axis, with antialiasing
    (kernel widened by 1/scale when shrinking) and symmetric edge handling folded in."""
    out_n = math.ceil(n * scale)
    x = np.arange(1, out_n + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    width = 4 / scale if scale < 1 else 4.0
    left = np.floor(u - width / 2)
    taps = math.ceil(width) + 2
    idx = left[:, None] + np.arange(taps)[None, :]  # 1-based input positions
    d = (u[:, None] - idx) * (scale if scale < 1 else 1)
    a = np.abs(d)
    k = np.where(a <= 1, 1.5 * a**3 - 2.5 * a**2 + 1, np.where(a <= 2, -0.5 * a**3 + 2.5 * a**2 - 4 * a + 2, 0))
    k = k / k.sum(1, keepdims=True)
    # symmetric padding: position 0 reads 1, −1 reads 2, n + 1 reads n, …
    src = idx.astype(np.int64)
    src = np.where(src < 1, 1 - src, src)
    src = np.where(src > n, 2 * n + 1 - src, src) - 1
    m = np.zeros((out_n, n))
    np.add.at(m, (np.repeat(np.arange(out_n), taps), src.reshape(-1)), k.reshape(-1))
    return m


def imresize_half(img: np.ndarray) -> np.ndarray:
    """MATLAB ``imresize(img, 0.5)`` (bicubic, antialiased) of a 2-D array."""
    return _matlab_resize_matrix(img.shape[0], 0.5) @ img @ _matlab_resize_matrix(img.shape[1], 0.5).T


def y_channel(rgb: torch.Tensor) -> np.ndarray:
    """BT.601 luma in [16, 235] of an RGB tensor [3, H, W] in [0, 1], quantized to 8 bits first (as a
    saved file would be), then rounded as the reference does."""
    x = (rgb.detach().float().cpu().clamp(0, 1) * 255).round().double().numpy() / 255
    y = 16 + 65.481 * x[0] + 128.553 * x[1] + 24.966 * x[2]
    return np.round(y)


def niqe_y(y: np.ndarray, model: PristineModel | None = None) -> float:
    """NIQE of a luma image [H, W] in [0, 255] (already rounded, as the reference expects)."""
    model = model or pristine_model()
    h, w = (y.shape[0] // PATCH) * PATCH, (y.shape[1] // PATCH) * PATCH
    if h * w < 2 * PATCH * PATCH:
        raise ValueError(f"NIQE needs at least two {PATCH}×{PATCH} patches; the image is {y.shape[1]}×{y.shape[0]}")
    img = y[:h, :w].astype(np.float64)
    feats = []
    for scale in (1, 2):
        feats.append(patch_features(mscn(img, model.window), PATCH // scale))
        if scale == 1:
            img = imresize_half(img / 255) * 255
    f = np.concatenate(feats, axis=1)
    mu = np.nanmean(f, axis=0)
    rows = f[~np.isnan(f).any(axis=1)]
    cov = np.cov(rows, rowvar=False)
    d = model.mu - mu
    q = d @ np.linalg.pinv((model.cov + cov) / 2) @ d
    return float(np.sqrt(q))


def niqe(rgb: torch.Tensor) -> float:
    """NIQE (lower is more natural) of an RGB image [3, H, W] in [0, 1]; at least 96 × 192 pixels."""
    if rgb.ndim != 3 or rgb.shape[0] != 3:
        raise ValueError(f"niqe expects an RGB tensor [3, H, W], got shape {tuple(rgb.shape)}")
    return niqe_y(y_channel(rgb))


__all__ = ["niqe", "niqe_y", "pristine_model", "y_channel"]
