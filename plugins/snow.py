"""Snow: a degradation added the way a user adds one (README, "Add a degradation").

The base model was never trained on snow; this plugin only supplies a synthesizer, and the bundled snow adapter
and estimator are what ``air add-degradation snow --synthetic snow --data CLEAN_DIR`` made from it (before snow
was bundled). It registers through the project's entry points exactly like a third-party plugin.

The model is physical, not a toy overlay (albumentations' snow whitens bright pixels): falling snow is a
set of depth layers, each a field of flakes (seeded discs, defocused, smeared along the fall direction by
the exposure), alpha-composited towards snow white (slightly blue), over a veil: the scene seen through
the snowfall loses contrast as I = J·t + A·(1 − t), with t from the amount of snow in the air.

It is a *family*, drawn per image, so that another lab's snow falls inside it (#14): the adapter trained
on one recipe learned to lift a veil that every image had, and left sharp flakes alone (NOTES.md).

- **Style** (:data:`STYLES`): ``layered`` (40%), far layers of many tiny sharp flakes and near layers of
  few large, defocused, translucent ones (a long exposure in daylight); ``sharp`` (35%), every layer in
  focus, opaque and hardly streaked (a fast shutter or a flash: Snow100K's and SRRS's masks look like
  this, Liu et al. 2018, "DesnowNet"; Chen et al. 2020, "JSTASR"); ``bokeh`` (25%), large soft discs
  close to the lens over a far layer of specks (a telephoto through falling snow).
- **Veil**: none (35%: snow seen close up, in calm air), uniform (35%), or growing with depth (30%,
  far at the top, as CSD's veiling effect, Chen et al. 2021, "ALL Snow Removed"); transmission down to
  1 − 0.35·severity.
- **Flakes**: per layer, density ×0.4–1.6 around the style's, size and defocus ×0.8–1.25, fall streak
  ×0.5–1.5 along one wind angle (±0.5 rad from vertical, ±0.1 per layer), brightness 0.8–1 of snow white
  (flakes in shade are grey, not white).
"""

from __future__ import annotations

import torch

from ..core import degradations as D
from . import api
from .builtin import _builtin

SNOW_WHITE = (0.93, 0.95, 1.0)
# Per style, far → near: (flake radius px, defocus σ px, flakes per pixel at severity 1, opacity, fall streak px).
STYLES = {
    "layered": (
        (0.6, 0.4, 0.0040, 0.8, 2.0),
        (1.2, 0.6, 0.0012, 0.9, 4.0),
        (2.2, 1.0, 0.00030, 0.85, 6.0),
        (5.0, 2.5, 0.00006, 0.5, 8.0),
    ),
    "sharp": (
        (0.8, 0.3, 0.0030, 0.95, 0.5),
        (1.5, 0.35, 0.0015, 1.0, 1.0),
        (2.5, 0.4, 0.00060, 1.0, 1.5),
        (3.5, 0.5, 0.00020, 1.0, 2.0),
    ),
    "bokeh": (
        (0.7, 0.4, 0.0030, 0.85, 1.5),
        (2.0, 1.0, 0.00080, 0.7, 3.0),
        (4.5, 2.0, 0.00030, 0.6, 4.0),
        (8.0, 3.0, 0.00010, 0.5, 5.0),
    ),
}
STYLE_P = (0.40, 0.35, 0.25)
VEIL_P = (0.35, 0.35, 0.30)  # none, uniform, with depth
KERNEL = 31


def _disc(radius: torch.Tensor, size: int) -> torch.Tensor:
    """Anti-aliased discs [B, size, size] with peak 1 for per-image radii [B]."""
    r = torch.arange(size, device=radius.device, dtype=torch.float32) - (size - 1) / 2
    dist = (r.view(1, -1, 1).square() + r.view(1, 1, -1).square()).sqrt()
    return (radius.view(-1, 1, 1) + 0.5 - dist).clamp(0, 1)


def _flake_layer(b, h, w, g, dev, *, density, radius, blur, streak, angle) -> torch.Tensor:
    """Alpha [B, 1, H, W] in [0, 1] of one layer of flakes: seeds → discs → defocus → fall streak, scaled
    so an isolated flake peaks at its seed's brightness (blur spreads a flake, it does not erase it)."""
    n = 12
    t = torch.linspace(-0.5, 0.5, n, device=dev).view(1, n) * streak.view(-1, 1)
    pts = torch.stack([t * torch.sin(angle).view(-1, 1), t * torch.cos(angle).view(-1, 1)], dim=-1)
    kernels = (_disc(radius, KERNEL), D.gaussian_kernel(blur, KERNEL), D.splat_path(pts, KERNEL, sigma=0.5))

    def render(seeds: torch.Tensor) -> torch.Tensor:
        for k in kernels:
            seeds = D.conv_per_image(seeds, k)
        return seeds

    impulse = torch.zeros(b, 1, 2 * KERNEL + 1, 2 * KERNEL + 1, device=dev)
    impulse[:, :, KERNEL, KERNEL] = 1
    peak = render(impulse).amax(dim=(-2, -1), keepdim=True).clamp_min(1e-6)
    seeds = (api.rand((b, 1, h, w), g, dev) < api.per_image(density)).float()
    seeds = seeds * api.uniform(0.5, 1.0, (b, 1, h, w), g, dev)
    return (render(seeds) / peak).clamp(0, 1)


def _veil(x: torch.Tensor, g: torch.Generator, s: torch.Tensor, white: torch.Tensor) -> torch.Tensor:
    """The snowfall's veil, I = J·t + A·(1 − t): none, uniform, or thicker with depth, per image."""
    b, _, h, w = x.shape
    dev = x.device
    kind = api.per_image(api.choice(VEIL_P, b, g, dev))
    amount = api.per_image(s * api.uniform(0.15, 0.35, (b,), g, dev))
    depth = D.depth_map(b, h, w, g, dev)
    thick = torch.where(kind == 2, 0.3 + 0.7 * depth, torch.ones_like(depth)) * (kind > 0)
    t = 1 - amount * thick
    airlight = white * api.per_image(api.uniform(0.8, 0.95, (b,), g, dev))
    return x * t + airlight * (1 - t)


def snow(x: torch.Tensor, g: torch.Generator, severity: float | torch.Tensor) -> torch.Tensor:
    """Falling snow of one style (layered, sharp or bokeh) over a veil (none, uniform or with depth)."""
    b, _, h, w = x.shape
    dev = x.device
    s = api.severity_tensor(severity, b, dev)
    white = torch.tensor(SNOW_WHITE, device=dev).view(1, 3, 1, 1)
    style = api.choice(STYLE_P, b, g, dev)
    layers = torch.tensor(list(STYLES.values()), device=dev)[style]  # [B, layer, field]
    out = _veil(x, g, s, white)
    angle = api.uniform(-0.5, 0.5, (b,), g, dev)  # wind, radians from vertical
    for layer in layers.unbind(1):
        radius, blur, density, opacity, streak = layer.unbind(-1)
        jitter = api.uniform(0.8, 1.25, (b,), g, dev)
        alpha = _flake_layer(
            b, h, w, g, dev,
            density=density * (0.15 + 0.85 * s) * api.uniform(0.4, 1.6, (b,), g, dev),
            radius=radius * jitter, blur=blur * jitter, streak=streak * api.uniform(0.5, 1.5, (b,), g, dev),
            angle=angle + api.uniform(-0.1, 0.1, (b,), g, dev),
        )
        a = alpha * api.per_image(opacity * (0.6 + 0.4 * s))
        out = out * (1 - a) + white * api.per_image(api.uniform(0.8, 1.0, (b,), g, dev)) * a
    return out.clamp(0, 1)


plugin = _builtin(
    "snow", "Falling snow: layered, sharp or bokeh flakes of varied size and opacity, over a veil or none.", snow
)
