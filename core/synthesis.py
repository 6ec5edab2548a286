"""The building blocks of synthetic degradations: seeded randomness, per-image severities, sRGB ↔ linear
light, per-image kernels and smooth random fields. ``core.degradations`` writes the built-in synthesizers
with them, and the plugin contract (``plugins.api``) hands them to third-party synthesizers."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["conv_per_image", "gaussian_kernel", "linear_to_srgb", "per_image", "rand", "randn", "severity_tensor",
           "smooth_field", "splat_path", "srgb_to_linear", "uniform"]


def severity_tensor(severity: float | torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
    """A synthesizer's ``severity`` (a float, or one value per image) as a checked tensor [B] in [0, 1]."""
    s = torch.as_tensor(severity, dtype=torch.float32, device=device)
    if s.ndim == 0:
        s = s.expand(batch)
    if s.shape != (batch,):
        raise ValueError(f"severity must be a float or a tensor of shape [{batch}], got {tuple(s.shape)}")
    if not bool(((s >= 0) & (s <= 1)).all()):  # also refuses NaN
        raise ValueError("severity must lie in [0, 1]")
    return s


def rand(shape, g: torch.Generator, device) -> torch.Tensor:
    """Uniform [0, 1) noise drawn from ``g`` only (never the global generator)."""
    return torch.rand(shape, generator=g, device=device)


def randn(shape, g: torch.Generator, device) -> torch.Tensor:
    """Standard normal noise drawn from ``g`` only."""
    return torch.randn(shape, generator=g, device=device)


def uniform(lo, hi, shape, g, device) -> torch.Tensor:
    """Uniform [lo, hi) values drawn from ``g`` only."""
    return lo + (hi - lo) * rand(shape, g, device)


def choice(probs, n: int, g: torch.Generator, device) -> torch.Tensor:
    """``n`` indices into ``probs`` (weights, normalized here), drawn with replacement from ``g`` only: one variant
    per image."""
    p = torch.tensor(probs, device=device, dtype=torch.float32)
    return torch.multinomial(p / p.sum(), n, replacement=True, generator=g)


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    """sRGB [0, 1] → linear light (the IEC 61966-2-1 curve)."""
    x = x.clamp(0, 1)
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055).pow(2.4))


def linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    """Linear light [0, 1] → sRGB."""
    x = x.clamp(0, 1)
    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * x.clamp_min(1e-8).pow(1 / 2.4) - 0.055)


def per_image(t: torch.Tensor) -> torch.Tensor:
    """[B] → [B, 1, 1, 1] for broadcasting over images."""
    return t.view(-1, 1, 1, 1)


def splat_path(points: torch.Tensor, size: int, *, sigma: float = 0.5) -> torch.Tensor:
    """Render point sequences [B, N, 2] (x, y offsets from the centre, pixels) as normalized kernels
    [B, size, size] by Gaussian splatting (anti-aliased, sub-pixel)."""
    r = torch.arange(size, device=points.device, dtype=points.dtype) - (size - 1) / 2
    dx = r.view(1, 1, 1, size) - points[..., 0].unsqueeze(-1).unsqueeze(-1)  # [B, N, 1, S]
    dy = r.view(1, 1, size, 1) - points[..., 1].unsqueeze(-1).unsqueeze(-1)  # [B, N, S, 1]
    k = torch.exp(-(dx.square() + dy.square()) / (2 * sigma**2)).sum(1)
    return k / k.sum(dim=(-2, -1), keepdim=True)


def conv_per_image(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Convolve each image of x [B, C, H, W] with its own kernel [B, k, k] (reflect padding)."""
    b, c, h, w = x.shape
    k = kernels.shape[-1]
    pad = k // 2
    mode = "reflect" if min(h, w) > pad else "replicate"
    xp = F.pad(x.reshape(1, b * c, h, w), (pad, pad, pad, pad), mode=mode)
    weight = kernels.to(x.dtype).repeat_interleave(c, dim=0).unsqueeze(1)  # [B*C, 1, k, k]
    return F.conv2d(xp, weight, groups=b * c).view(b, c, h, w)


def gaussian_kernel(sigma: torch.Tensor, size: int) -> torch.Tensor:
    """Isotropic Gaussian kernels [B, size, size] for per-image sigmas [B]."""
    r = torch.arange(size, device=sigma.device, dtype=torch.float32) - (size - 1) / 2
    g1 = torch.exp(-r.view(1, -1).square() / (2 * sigma.view(-1, 1).square()))
    k = g1[:, :, None] * g1[:, None, :]
    return k / k.sum(dim=(-2, -1), keepdim=True)


def smooth_field(batch: int, h: int, w: int, g: torch.Generator, device, *, cells: int = 4) -> torch.Tensor:
    """Smooth random field [B, 1, H, W] in [0, 1] (bicubic upsampling of a coarse random grid)."""
    coarse = rand((batch, 1, cells, cells), g, device)
    f = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)
    lo = f.amin(dim=(-2, -1), keepdim=True)
    hi = f.amax(dim=(-2, -1), keepdim=True)
    return (f - lo) / (hi - lo + 1e-6)
