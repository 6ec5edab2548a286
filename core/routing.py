"""The fallback adapter: who gets the blend weight the estimator leaves unassigned.

The estimator's weights rarely sum to 1 on a photo it is unsure about (mild noise, light rain, a photo
that is nearly clean), and what they leave goes to the base alone. On this base that is the worse
choice: the base alone shifts tone and leaves mild noise (CBSD68, noise σ≈5: 29.3 dB against the input's
34.4), and the bundled noise adapter, trained to correct the base on noisy crops, gives those photos
back better than the base does. So the unassigned weight goes to a *fallback* adapter (noise), except on
dark photos, where the noise adapter undoes the base's brightening (a low-light photo: 22.95 → 20.36 dB
when it gets the rest). Two signals say "dark", and either one stops the fallback:

- the estimator's own weight for the low-light adapter (≥ ``est_limit``);
- the segmentation head's mean low-light probability on a few native-resolution crops, with the
  adapters off (a ramp over ``head_ramp``). The head needs native pixels: on a downscaled photo it reads
  sensor noise no longer and misses mild low light.

The rest counts in proportion to the estimator's doubt, ``1 − max w_other``: a hazy photo whose haze weight is
0.7–0.9 leaves 0.1–0.3 unassigned, and giving that to the noise adapter cost 0.17 dB on average (up to 0.8);
scaled by the doubt, 0.04, while mild noise (other weights near 0) keeps nearly all of its gain.

Nor does it act on a photo the same crops say is clean as a whole: the gate gives such a photo back as it
came, and the noise adapter would only move the head's judgement of it (a clean cat photo: kept 100% → 47%).

Measured by ``benchmarks/gate.py`` and ``benchmarks/blending.py`` (BENCHMARKS.md, NOTES.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .arch import AirUNet
from .lora import adapter_names, blend
from .restore import clean_share, restore


@dataclass(frozen=True)
class Fallback:
    """The rule: ``adapter`` takes ``(1 − Σ w) · (1 − max w_other) · share`` on top of its own weight, where
    ``max w_other`` is the estimator's largest weight for another adapter (see the module docstring)."""

    adapter: str = "noise"
    unless: str = "lowlight"  # an adapter name and a segmentation class
    est_limit: float = 0.1  # the estimator's weight for ``unless`` at which the fallback is fully off
    head_ramp: tuple[float, float] = (0.2, 0.5)  # head's mean p_unless: fallback full below, off above
    crop: int = 128  # side of the four native-resolution crops the head looks at

    def applies(self, model: AirUNet, adapters: list[str]) -> bool:
        return {self.adapter, self.unless} <= set(adapters) and self.unless in model.config.classes


def head_means(model: AirUNet, rgb: torch.Tensor, crop: int = 128) -> torch.Tensor:
    """Mean probability of each class [C] from the segmentation head over four native-resolution crops of
    ``rgb`` [3, H, W] (centred at 30%/70% of each side; the whole photo when it is smaller), adapters off."""
    _, h, w = rgb.shape
    c = min(crop, h, w)
    ys = sorted({min(max(0, round(h * f) - c // 2), h - c) for f in (0.3, 0.7)})
    xs = sorted({min(max(0, round(w * f) - c // 2), w - c) for f in (0.3, 0.7)})
    zero = torch.zeros(1, len(adapter_names(model)))
    probs = []
    with torch.no_grad(), blend(model, zero.to(next(model.parameters()).device)):
        for y in ys:
            for x in xs:
                probs.append(restore(model, rgb[:, y : y + c, x : x + c], explain=True).seg_probs.mean((1, 2)))
    return torch.stack(probs).mean(0)


def fallback_share(w_unless: float, p_unless: float, p_clean: float, rule: Fallback) -> float:
    """How much of the unassigned weight the fallback adapter takes, 0–1: none on a photo that looks dark
    (``w_unless``, ``p_unless``), and none on one that looks clean as a whole to the head with the adapters
    off (``p_clean``, :func:`core.restore.clean_share`), which the gate then gives back as it came: the
    fallback would only move the head's judgement of it."""
    lo, hi = rule.head_ramp
    by_estimator = max(0.0, 1.0 - w_unless / rule.est_limit)
    by_head = min(1.0, max(0.0, (hi - p_unless) / (hi - lo)))
    return by_estimator * by_head * (1.0 - clean_share(p_clean))


def apply_fallback(model: AirUNet, rgb: torch.Tensor, weights: torch.Tensor, adapters: list[str],
                   rule: Fallback) -> tuple[torch.Tensor, float]:
    """``weights`` [K] (in ``adapters`` order) with the fallback's part added, and that part (0 when the
    estimator assigned everything, or the photo looks dark)."""
    rest = max(0.0, 1.0 - float(weights.clamp(min=0).sum()))
    w_unless = float(weights[adapters.index(rule.unless)])
    if rest == 0.0 or w_unless >= rule.est_limit:  # nothing to give, or dark: skip the head's crops
        return weights, 0.0
    p = head_means(model, rgb, rule.crop)
    classes = model.config.classes
    # What the estimator is sure of is not left to chance: the rest counts in proportion to its doubt.
    sure = max((float(v) for k, v in enumerate(weights) if adapters[k] != rule.adapter), default=0.0)
    extra = rest * (1.0 - min(1.0, max(0.0, sure))) * fallback_share(
        w_unless, float(p[classes.index(rule.unless)]), float(p[classes.index("clean")]), rule)
    out = weights.clone()
    out[adapters.index(rule.adapter)] += extra
    return out, extra
