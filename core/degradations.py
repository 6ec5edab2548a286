"""Synthetic degradations, written physically, in pure torch.

Every function takes a clean batch ``x`` [B, 3, H, W] in [0, 1] (sRGB), a ``torch.Generator`` on the
same device (all randomness comes from it), and a ``severity`` in [0, 1] (a float, or a tensor [B]
with one severity per image), and returns the degraded batch in [0, 1]. Same generator state, same
output: benchmarks fix seeds by seeding the generator.

- noise: additive Gaussian or Poisson–Gaussian (signal-dependent) noise, σ up to 50/255.
- blur: camera-shake motion (a curved trajectory) or defocus (an anti-aliased disk) kernels.
- haze: atmospheric scattering I = J·t + A·(1 − t), t = exp(−β·d), d a smooth random depth map,
  computed in linear RGB.
- rain: two or three layers of slanted streaks (near layers long, wide and bright; far ones short,
  thin and dim), motion-blurred seeds rather than 1-px bars, screen-blended, plus a veil.
- lowlight: exposure cut in linear RGB, Poisson–Gaussian sensor noise, then the sRGB curve and a
  random extra gamma.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MAX_NOISE_SIGMA = 50.0 / 255.0


# --------------------------------------------------------------------------------------- helpers


def _severity(severity: float | torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
    s = torch.as_tensor(severity, dtype=torch.float32, device=device)
    if s.ndim == 0:
        s = s.expand(batch)
    if s.shape != (batch,):
        raise ValueError(f"severity must be a float or a tensor of shape [{batch}], got {tuple(s.shape)}")
    if not bool(((s >= 0) & (s <= 1)).all()):  # also refuses NaN
        raise ValueError("severity must lie in [0, 1]")
    return s


def _rand(shape, g: torch.Generator, device) -> torch.Tensor:
    return torch.rand(shape, generator=g, device=device)


def _randn(shape, g: torch.Generator, device) -> torch.Tensor:
    return torch.randn(shape, generator=g, device=device)


def _uniform(lo, hi, shape, g, device) -> torch.Tensor:
    return lo + (hi - lo) * _rand(shape, g, device)


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0, 1)
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055).pow(2.4))


def linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0, 1)
    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * x.clamp_min(1e-8).pow(1 / 2.4) - 0.055)


def _v(t: torch.Tensor) -> torch.Tensor:
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
    coarse = _rand((batch, 1, cells, cells), g, device)
    f = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)
    lo = f.amin(dim=(-2, -1), keepdim=True)
    hi = f.amax(dim=(-2, -1), keepdim=True)
    return (f - lo) / (hi - lo + 1e-6)


# ------------------------------------------------------------------------------------ degradations


def noise(
    x: torch.Tensor, g: torch.Generator, severity: float | torch.Tensor, *, kind: str = "random"
) -> torch.Tensor:
    """Gaussian (σ = severity·50/255) or Poisson–Gaussian noise with the same std at mid-grey.

    kind: "gaussian", "poisson_gaussian" or "random" (each image draws one of the two).
    """
    b = x.shape[0]
    sigma = _v(_severity(severity, b, x.device) * MAX_NOISE_SIGMA)
    if kind not in ("gaussian", "poisson_gaussian", "random"):
        raise ValueError(f"unknown noise kind {kind!r}; use gaussian, poisson_gaussian or random")
    n = _randn(x.shape, g, x.device)
    gaussian = x + sigma * n
    if kind == "gaussian":
        return gaussian.clamp(0, 1)
    # var(x) = a·x + b², with var(0.5) = σ²: shot noise a = 1.5σ², read noise b = σ/2.
    std = torch.sqrt(1.5 * sigma.square() * x.clamp(0, 1) + (0.5 * sigma).square())
    pg = x + std * n
    if kind == "poisson_gaussian":
        return pg.clamp(0, 1)
    pick = _v(_rand((b,), g, x.device) < 0.5)
    return torch.where(pick, gaussian, pg).clamp(0, 1)


def motion_kernels(severity: torch.Tensor, g: torch.Generator, *, size: int = 31) -> torch.Tensor:
    """Camera-shake kernels [B, size, size]: a smooth curved trajectory of length 3–24 px."""
    b, device = severity.shape[0], severity.device
    n = 48
    length = 3 + severity * 21
    angle = _uniform(0, math.pi, (b,), g, device)
    bend = _uniform(-0.6, 0.6, (b,), g, device) * severity  # curvature of the trajectory
    t = torch.linspace(-0.5, 0.5, n, device=device).view(1, n)
    along = t * length.view(-1, 1)
    across = (t.square() - 1 / 12) * bend.view(-1, 1) * length.view(-1, 1)
    cos, sin = torch.cos(angle).view(-1, 1), torch.sin(angle).view(-1, 1)
    pts = torch.stack([along * cos - across * sin, along * sin + across * cos], dim=-1)
    return splat_path(pts, size, sigma=0.6)


def defocus_kernels(severity: torch.Tensor, *, size: int = 31) -> torch.Tensor:
    """Anti-aliased disk kernels [B, size, size], radius 1–8 px."""
    radius = 1 + severity * 7
    r = torch.arange(size, device=severity.device, dtype=torch.float32) - (size - 1) / 2
    dist = torch.sqrt(r.view(1, -1, 1).square() + r.view(1, 1, -1).square())
    k = (radius.view(-1, 1, 1) + 0.5 - dist).clamp(0, 1)
    return k / k.sum(dim=(-2, -1), keepdim=True)


def blur(x: torch.Tensor, g: torch.Generator, severity: float | torch.Tensor, *, kind: str = "random") -> torch.Tensor:
    """Motion (camera shake) or defocus blur. kind: "motion", "defocus" or "random"."""
    b = x.shape[0]
    s = _severity(severity, b, x.device)
    if kind not in ("motion", "defocus", "random"):
        raise ValueError(f"unknown blur kind {kind!r}; use motion, defocus or random")
    motion = motion_kernels(s, g)
    if kind == "motion":
        k = motion
    elif kind == "defocus":
        k = defocus_kernels(s)
    else:
        pick = (_rand((b,), g, x.device) < 0.6).view(-1, 1, 1)
        k = torch.where(pick, motion, defocus_kernels(s))
    return conv_per_image(x, k).clamp(0, 1)


def depth_map(batch: int, h: int, w: int, g: torch.Generator, device) -> torch.Tensor:
    """Plausible scene depth [B, 1, H, W] in [0, 1]: a random vertical slope (far at the top) plus a
    smooth random field."""
    ramp = torch.linspace(1, 0, h, device=device).view(1, 1, h, 1).expand(batch, 1, h, w)
    tilt = _v(_uniform(0.2, 0.8, (batch,), g, device))
    field = smooth_field(batch, h, w, g, device, cells=4)
    d = tilt * ramp + (1 - tilt) * field
    lo = d.amin(dim=(-2, -1), keepdim=True)
    hi = d.amax(dim=(-2, -1), keepdim=True)
    return (d - lo) / (hi - lo + 1e-6)


def haze(x: torch.Tensor, g: torch.Generator, severity: float | torch.Tensor) -> torch.Tensor:
    """Atmospheric scattering in linear RGB: I = J·t + A·(1 − t), t = exp(−β·(0.15 + 0.85·d)), β ≤ 2."""
    b, _, h, w = x.shape
    s = _severity(severity, b, x.device)
    d = depth_map(b, h, w, g, x.device)
    beta = _v(0.2 + s * 1.8 * _uniform(0.8, 1.0, (b,), g, x.device))
    t = torch.exp(-beta * (0.15 + 0.85 * d))
    grey = _v(_uniform(0.7, 1.0, (b,), g, x.device))
    tint = 1 + 0.04 * _randn((b, 3, 1, 1), g, x.device)  # slightly blue or warm air light
    airlight = srgb_to_linear((grey * tint).clamp(0, 1))
    j = srgb_to_linear(x)
    return linear_to_srgb(j * t + airlight * (1 - t))


def _streak_layer(
    b: int, h: int, w: int, g: torch.Generator, device, *, density, length, width, angle, size: int
) -> torch.Tensor:
    """One layer of rain streaks [B, 1, H, W] in [0, 1]."""
    seeds = (_rand((b, 1, h, w), g, device) < _v(density)).float() * _uniform(0.6, 1.0, (b, 1, h, w), g, device)
    if size > 1:
        seeds = conv_per_image(seeds, gaussian_kernel(width, 5))  # streaks wider than one pixel
    n = 24
    t = torch.linspace(-0.5, 0.5, n, device=device).view(1, n) * length.view(-1, 1)
    pts = torch.stack([t * torch.sin(angle).view(-1, 1), t * torch.cos(angle).view(-1, 1)], dim=-1)
    streaks = conv_per_image(seeds, splat_path(pts, size, sigma=0.5))
    # A streak's peak after the line kernel is about seed/length·(some spread): renormalize to [0, 1].
    peak = streaks.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-6)
    return (streaks / peak).clamp(0, 1)


def rain(x: torch.Tensor, g: torch.Generator, severity: float | torch.Tensor) -> torch.Tensor:
    """Layered, slanted, motion-blurred rain streaks, screen-blended over the photo, with a veil."""
    b, _, h, w = x.shape
    dev = x.device
    s = _severity(severity, b, dev)
    base_angle = _uniform(-0.45, 0.45, (b,), g, dev)  # radians from vertical, shared by all layers
    out = x
    # (length px, width σ, density, opacity) for far → near layers; density and opacity grow with severity.
    layers = ((10.0, 0.5, 0.012, 0.35), (20.0, 0.8, 0.006, 0.55), (34.0, 1.1, 0.003, 0.8))
    for i, (length, width, density, opacity) in enumerate(layers):
        present = (_rand((b,), g, dev) < 0.85) | (i == 1)
        lay = _streak_layer(
            b, h, w, g, dev,
            density=density * (0.3 + 1.7 * s) * _uniform(0.6, 1.4, (b,), g, dev),
            length=length * _uniform(0.7, 1.3, (b,), g, dev) * (0.7 + 0.6 * s),
            width=torch.full((b,), width, device=dev),
            angle=base_angle + _uniform(-0.06, 0.06, (b,), g, dev),
            size=41,
        )
        alpha = lay * _v(opacity * (0.5 + 0.5 * s) * present.float())
        colour = _v(_uniform(0.8, 1.0, (b,), g, dev))
        out = 1 - (1 - out) * (1 - alpha * colour)  # screen blend
    veil = _v(0.15 * s * _uniform(0.5, 1.0, (b,), g, dev))
    return (out * (1 - veil) + 0.85 * veil).clamp(0, 1)


def lowlight(x: torch.Tensor, g: torch.Generator, severity: float | torch.Tensor) -> torch.Tensor:
    """Under-exposure: scale linear RGB by 0.5 → 0.03 (with severity), add Poisson–Gaussian sensor
    noise in linear space, then the sRGB curve and an extra random gamma in [1, 1.25]."""
    b = x.shape[0]
    dev = x.device
    s = _severity(severity, b, dev)
    exposure = _v(0.5 * (0.03 / 0.5) ** (s * _uniform(0.85, 1.0, (b,), g, dev)))
    lin = srgb_to_linear(x) * exposure
    shot = _v(_uniform(0.0005, 0.003, (b,), g, dev) * (0.3 + s))
    read = _v(_uniform(0.0005, 0.002, (b,), g, dev) * (0.3 + s))
    lin = lin + torch.sqrt(shot * lin + read.square()) * _randn(x.shape, g, dev)
    gamma = _v(_uniform(1.0, 1.25, (b,), g, dev))
    return linear_to_srgb(lin).pow(gamma).clamp(0, 1)
