"""Classical, training-free baselines shown beside air-restore in BENCHMARKS.md.

- ``dark_channel_prior``: dehazing by the dark channel prior with guided-filter refinement of the
  transmission. He, Sun and Tang, "Single Image Haze Removal Using Dark Channel Prior", CVPR 2009 /
  TPAMI 2011; refinement by the guided filter instead of soft matting, as in He, Sun and Tang,
  "Guided Image Filtering", ECCV 2010 / TPAMI 2013.
- ``lime``: low-light enhancement by an illumination map, the LIME recipe without its optimization:
  Guo, Li and Ling, "LIME: Low-Light Image Enhancement via Illumination Map Estimation", TIP 2017.
  The initial map (max over RGB) is refined with the guided filter instead of LIME's ℓ1 solver (the
  "LIME-GF" shortcut), then gamma-corrected; no denoising step.
- CBM3D for noise lives in ``quality.py`` (the ``bm3d`` package).

All functions take and return RGB tensors [3, H, W] in [0, 1] and are pure (no I/O, no state).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def box_mean(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean of x [C, H, W] over (2r+1)² windows clipped at the borders (He's ``boxfilter`` / N), in
    O(1) per pixel with cumulative sums."""
    def along(t: torch.Tensor, dim: int) -> torch.Tensor:
        n = t.shape[dim]
        c = torch.cat([torch.zeros_like(t.narrow(dim, 0, 1)), t.cumsum(dim)], dim)
        i = torch.arange(n, device=t.device)
        hi, lo = (i + r + 1).clamp(max=n), (i - r).clamp(min=0)
        return c.index_select(dim, hi) - c.index_select(dim, lo)

    ones = torch.ones_like(x[:1])
    return along(along(x, 1), 2) / along(along(ones, 1), 2)


def guided_filter(guide: torch.Tensor, src: torch.Tensor, r: int, eps: float) -> torch.Tensor:
    """Gray-guide guided filter (He et al. 2010, Algorithm 1): guide and src [1, H, W] → [1, H, W]."""
    mean_i, mean_p = box_mean(guide, r), box_mean(src, r)
    cov_ip = box_mean(guide * src, r) - mean_i * mean_p
    var_i = box_mean(guide * guide, r) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box_mean(a, r) * guide + box_mean(b, r)


def _gray(rgb: torch.Tensor) -> torch.Tensor:
    return (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])[None]


def dark_channel(rgb: torch.Tensor, patch: int = 15) -> torch.Tensor:
    """min over a patch × patch window of min over RGB: [3, H, W] → [1, H, W]."""
    m = rgb.amin(0, keepdim=True)
    return -F.max_pool2d(-m[None], patch, stride=1, padding=patch // 2)[0]


def atmospheric_light(rgb: torch.Tensor, dark: torch.Tensor, top: float = 0.001) -> torch.Tensor:
    """Among the brightest ``top`` fraction of the dark channel, the input pixel of highest intensity
    (He et al. §4.4): [3]."""
    flat_dark, flat = dark.reshape(-1), rgb.reshape(3, -1)
    k = max(1, int(top * flat_dark.numel()))
    idx = flat_dark.topk(k).indices
    best = idx[flat[:, idx].sum(0).argmax()]
    return flat[:, best]


def dark_channel_prior(hazy: torch.Tensor, *, patch: int = 15, omega: float = 0.95, t0: float = 0.1,
                       radius: int = 60, eps: float = 1e-3) -> torch.Tensor:
    """Dehaze [3, H, W] in [0, 1] with the paper's settings (15 px patches, ω 0.95, t ≥ 0.1) and a
    guided filter (radius 60, ε 1e-3, gray guide) refining the transmission."""
    x = hazy.float()
    a = atmospheric_light(x, dark_channel(x, patch)).clamp_min(1e-3)
    t = 1 - omega * dark_channel(x / a[:, None, None], patch)
    t = guided_filter(_gray(x), t, radius, eps).clamp(t0, 1)
    return ((x - a[:, None, None]) / t + a[:, None, None]).clamp(0, 1)


def lime(dark: torch.Tensor, *, gamma: float = 0.8, radius: int = 15, eps: float = 1e-3,
         floor: float = 0.05) -> torch.Tensor:
    """Brighten a low-light image [3, H, W] in [0, 1]: illumination T = max over RGB, refined by the
    guided filter, raised to ``gamma``; output = input / max(T, floor)."""
    x = dark.float()
    t = x.amax(0, keepdim=True)
    t = guided_filter(t, t, radius, eps).clamp_min(floor) ** gamma
    return (x / t).clamp(0, 1)


__all__ = ["box_mean", "dark_channel", "dark_channel_prior", "guided_filter", "lime"]
