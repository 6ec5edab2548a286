"""The tone guard: where low light led a restoration, the output's large-scale brightness is made a locally affine
function of the input's, so the network's blotches on flat areas go and its denoising and detail stay.

Brightening a dark photo is, at a scale of tens of pixels, a smooth change of exposure: two nearby places that were
equally dark come out equally bright. The base with the low-light adapter breaks that on flat areas: it paints
blotches tens of pixels wide on a dusk sky, a white door, a wall (BENCHMARKS.md's contact sheet: LOL15/1's door).
So the luminance's low frequencies (:func:`low_luma`: the photo averaged over ``scale``-pixel squares) are refitted:
a guided filter (He, Sun and Tang 2013, "Guided Image Filtering") with the input's as the guide and the output's as
the target gives, window by window (``2·radius + 1`` averaged squares), the affine map of the one onto the other,
and that map replaces the output's own low frequencies. What is finer than a square (edges, texture, the
denoising) is the network's, and so is the colour. Only where low light leads: haze is not affine in the input
across a depth edge (hazy photos lost up to 1.07 dB), so a photo with haze at 0.3 or more is left alone."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

#: Rec. 601 luma weights, the ones JPEG uses.
LUMA = (0.299, 0.587, 0.114)


def low_luma(rgb: torch.Tensor, scale: int) -> torch.Tensor:
    """The luminance of ``rgb`` [3, H, W] averaged over ``scale``-pixel squares, then over 3×3 of them:
    [1, 1, ceil(H/scale), ceil(W/scale)]. Averaging first, then weighting, needs no whole-size temporary."""
    s = F.avg_pool2d(rgb.float()[None], scale, scale, ceil_mode=True, count_include_pad=False)
    s = (s * torch.tensor(LUMA, device=s.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
    return F.avg_pool2d(F.pad(s, (1, 1, 1, 1), mode="replicate"), 3, 1)


def _box(t: torch.Tensor, r: int) -> torch.Tensor:
    """The mean over a (2r+1)² window, edges replicated."""
    return F.avg_pool2d(F.pad(t, (r, r, r, r), mode="replicate"), 2 * r + 1, 1)


@dataclass(frozen=True)
class ToneGuard:
    """Where the estimator gives ``adapter`` a weight of at least ``at`` and none of ``unless`` as much, the
    restored photo's low-frequency luminance becomes a locally affine function of the input's (module docstring);
    ``scale`` pixels to a square, windows of ``2·radius + 1`` squares, ``eps`` the guided filter's regularizer.

    Side by side on 12 CBSD68 photos per row (``benchmarks/blending.py``'s rows, severity 0.5): low light +0.53
    dB, lowlight+noise +0.40, lowlight+jpeg +0.36, blur+lowlight +0.36, haze+lowlight +0.32, every other stack
    with low light +0.15 to +0.33, no photo below −0.03. On our own independent synthesizer (CBSD68 #24–35:
    linear gain 0.12 with shot and read noise +0.49; then JPEG q80 +0.18; gain 0.25 without noise +0.28; a lamp's
    exposure falling across the photo +0.45; a pool of light in the middle +0.11, one photo −0.14). A global curve
    in its place won more where the exposure is even (+1.3 dB) and lost 3.2 dB on the lamp: the windows
    (68 px with these settings) follow light that changes across the photo. Wider windows gained on even exposure
    and lost on the pool of light (``radius`` 16: one photo −0.59). Real dark photos: NIQE lower than without it
    on 8 of LOL15's 12 (median 4.52 → 4.51) and on both of DICM's first 12 that low light leads (NOTES.md)."""

    adapter: str = "lowlight"
    at: float = 0.3
    unless: tuple[str, ...] = ("haze",)
    scale: int = 4
    radius: int = 8
    eps: float = 1e-5

    def applies(self, weights: torch.Tensor, adapters: list[str]) -> bool:
        """Whether weights [K] (in ``adapters`` order), routed by the estimator, call for it."""
        def w(name: str) -> float:
            return float(weights[adapters.index(name)]) if name in adapters else 0.0
        return w(self.adapter) >= self.at and all(w(n) < self.at for n in self.unless)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``y`` [3, H, W] (the restoration of ``x``) with its low-frequency luminance refitted, in place; one
        whole-size temporary of 4 bytes a pixel (the change), once the tiles are done."""
        guide, target = low_luma(x, self.scale), low_luma(y, self.scale)
        r, eps = self.radius, self.eps
        mean_g, mean_t = _box(guide, r), _box(target, r)
        a = (_box(guide * target, r) - mean_g * mean_t) / (_box(guide * guide, r) - mean_g * mean_g + eps)
        b = mean_t - a * mean_g
        change = _box(a, r) * guide + _box(b, r) - target  # the refitted low frequencies minus the output's own
        change = F.interpolate(change, size=y.shape[-2:], mode="bilinear", align_corners=False)[0]
        return y.add_(change.to(y.device)).clamp_(0, 1)  # the same change to R, G and B: the colour stays


#: The pipeline's tone guard (``registry.restorer.Restorer.tone``); None turns it off.
TONE: ToneGuard | None = ToneGuard()
