"""Degradation CutMix (ABAIR): each training crop is split into regions, each region degraded by a
different degradation at a random severity, with per-pixel labels for the segmentation head.

Regions are random boxes and free-form blobs (thresholded smooth noise) pasted over a per-crop
background class. Some regions get a second degradation stacked (noise on top of blur, haze, rain
or low light, as a real sensor adds); their label is the dominant, first degradation. A class can be
made to cover whole crops (``whole_crop``): an exposure covers the whole frame, never a box in it.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import torch
import torch.nn.functional as F

Synthesizer = Callable[[torch.Tensor, torch.Generator, torch.Tensor], torch.Tensor]


class CutMixBatch(NamedTuple):
    degraded: torch.Tensor  # [B, 3, H, W]
    labels: torch.Tensor  # [B, H, W] long, 0 = clean, k = synthesizers[k - 1]


def _region_masks(b: int, h: int, w: int, g: torch.Generator, device) -> torch.Tensor:
    """One region per crop [B, H, W] bool: a random box (half the crops) or a free-form blob."""
    r = torch.rand((b, 4), generator=g, device=device)
    bh = (0.25 + 0.5 * r[:, 0]) * h
    bw = (0.25 + 0.5 * r[:, 1]) * w
    y0 = r[:, 2] * (h - bh)
    x0 = r[:, 3] * (w - bw)
    ys = torch.arange(h, device=device).view(1, h, 1)
    xs = torch.arange(w, device=device).view(1, 1, w)
    box = (
        (ys >= y0.view(-1, 1, 1)) & (ys < (y0 + bh).view(-1, 1, 1))
        & (xs >= x0.view(-1, 1, 1)) & (xs < (x0 + bw).view(-1, 1, 1))
    )
    coarse = torch.randn((b, 1, 5, 5), generator=g, device=device)
    field = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)[:, 0]
    thresh = torch.quantile(field.flatten(1), 0.6, dim=1).view(-1, 1, 1)
    blob = field > thresh
    use_box = (torch.rand((b,), generator=g, device=device) < 0.5).view(-1, 1, 1)
    return torch.where(use_box, box, blob)


def cutmix_batch(
    clean: torch.Tensor,
    synthesizers: Sequence[Synthesizer],
    g: torch.Generator,
    *,
    stack_with: Synthesizer | None = None,
    max_regions: int = 3,
    p_uniform: float = 0.3,
    p_clean: float = 0.1,
    p_stack: float = 0.2,
    min_severity: float = 0.1,
    whole_crop: Sequence[int] = (),
) -> CutMixBatch:
    """Degrade ``clean`` [B, 3, H, W] region by region.

    synthesizers: one per degradation class, in class order (class k uses synthesizers[k-1]).
    stack_with: a synthesizer stacked on top of a region's degradation with probability p_stack
    (noise, typically); such regions keep the first degradation's label.
    p_uniform: share of crops degraded by one degradation only, everywhere (like most real photos).
    p_clean: chance that a crop's background or a region is left clean.
    whole_crop: classes (1-based, as in ``labels``) that only ever cover a whole crop: never drawn for a region
    (a region draws among the other classes), and a crop with one as its background gets no regions.
    """
    b, _, h, w = clean.shape
    dev = clean.device
    k = len(synthesizers)

    region_classes = torch.tensor([c for c in range(1, k + 1) if c not in set(whole_crop)], device=dev)
    if len(region_classes) == 0:
        raise ValueError(f"whole_crop {list(whole_crop)} leaves no class for the regions")

    def draw_class(n: int, region: bool = False) -> torch.Tensor:
        if region and whole_crop:
            cls = region_classes[torch.randint(0, len(region_classes), (n,), generator=g, device=dev)]
        else:
            cls = torch.randint(1, k + 1, (n,), generator=g, device=dev)
        is_clean = torch.rand((n,), generator=g, device=dev) < p_clean
        return torch.where(is_clean, torch.zeros_like(cls), cls)

    background = draw_class(b)
    labels = background.view(-1, 1, 1).expand(b, h, w).clone()
    uniform = torch.rand((b,), generator=g, device=dev) < p_uniform
    if whole_crop:
        uniform |= torch.isin(background, torch.tensor(list(whole_crop), device=dev))
    for _ in range(max_regions):
        active = (torch.rand((b,), generator=g, device=dev) < 0.7) & ~uniform
        mask = _region_masks(b, h, w, g, dev) & active.view(-1, 1, 1)
        labels = torch.where(mask, draw_class(b, region=True).view(-1, 1, 1), labels)

    degraded = clean.clone()
    for cls, synth in enumerate(synthesizers, start=1):
        region = labels == cls
        if not bool(region.any()):
            continue
        severity = min_severity + (1 - min_severity) * torch.rand((b,), generator=g, device=dev)
        d = synth(clean, g, severity)
        if stack_with is not None:
            stack = torch.rand((b,), generator=g, device=dev) < p_stack
            extra = stack_with(d, g, 0.5 * torch.rand((b,), generator=g, device=dev))
            d = torch.where(stack.view(-1, 1, 1, 1), extra, d)
        degraded = torch.where(region.unsqueeze(1), d, degraded)
    return CutMixBatch(degraded, labels)
