"""Snow: the worked example of adding a degradation (README, "Add a degradation").

The base model was never trained on snow; this plugin only supplies a synthesizer, and
``air add-degradation snow --synthetic snow --data CLEAN_DIR`` trains the adapter and retrains the
estimator. It registers through the project's entry points exactly like a third-party plugin.

The model is physical, not a toy overlay (albumentations' snow whitens bright pixels): falling snow is a
set of depth layers. Far layers hold many tiny, sharp, dim flakes; near layers hold few large flakes,
out of focus (a wide blur) and more transparent. Every flake moves during the exposure, so each layer
is motion-blurred along the fall direction (shared wind angle, longer for near layers). Flakes are
alpha-composited towards snow white (slightly blue), over a veil: the scene seen through the snowfall
loses contrast as I = J·t + A·(1 − t), with t from the amount of snow in the air.
"""

from __future__ import annotations

import torch

from ..core import degradations as D
from . import api
from .builtin import _builtin

SNOW_WHITE = (0.93, 0.95, 1.0)
# far → near: (flake radius px, defocus σ px, flakes per pixel at severity 1, opacity, fall streak px)
LAYERS = (
    (0.6, 0.4, 0.0040, 0.8, 2.0),
    (1.2, 0.6, 0.0012, 0.9, 4.0),
    (2.2, 1.0, 0.00030, 0.85, 6.0),
    (5.0, 2.5, 0.00006, 0.5, 8.0),
)
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
    seeds = (api.rand((b, 1, h, w), g, dev) < api.per_image(density)).float() * api.uniform(0.5, 1.0, (b, 1, h, w), g, dev)
    return (render(seeds) / peak).clamp(0, 1)


def snow(x: torch.Tensor, g: torch.Generator, severity: float | torch.Tensor) -> torch.Tensor:
    """Layered falling snow over a veil; see the module docstring."""
    b, _, h, w = x.shape
    dev = x.device
    s = api.severity_tensor(severity, b, dev)
    white = torch.tensor(SNOW_WHITE, device=dev).view(1, 3, 1, 1)
    # Veil: the snow in the air scatters light towards a bright, slightly blue airlight.
    t = api.per_image(1 - s * api.uniform(0.15, 0.35, (b,), g, dev))
    airlight = white * api.per_image(api.uniform(0.8, 0.95, (b,), g, dev))
    out = x * t + airlight * (1 - t)
    angle = api.uniform(-0.5, 0.5, (b,), g, dev)  # wind, radians from vertical
    for radius, blur, density, opacity, streak in LAYERS:
        jitter = api.uniform(0.8, 1.25, (b,), g, dev)
        alpha = _flake_layer(
            b, h, w, g, dev,
            density=density * (0.15 + 0.85 * s) * api.uniform(0.6, 1.4, (b,), g, dev),
            radius=radius * jitter, blur=blur * jitter, streak=streak * api.uniform(0.5, 1.5, (b,), g, dev),
            angle=angle + api.uniform(-0.1, 0.1, (b,), g, dev),
        )
        a = alpha * api.per_image(opacity * (0.6 + 0.4 * s))
        out = out * (1 - a) + white * a
    return out.clamp(0, 1)


plugin = _builtin("snow", "Falling snow: layered flakes of varied size, blur and opacity, over a veil.", snow)
