"""How JPEG-blocky a photo is, measured on its pixels: no network, no file header.

JPEG quantizes each 8×8 block on its own, so at low quality the luma steps between neighbouring pixels
are larger across a block edge than inside a block. :func:`blockiness` compares the mean absolute step
across each of the 8 column (and row) phases with the median of the eight: a photo that never went through
JPEG, or went through it at high quality, has no phase that stands out (ratio about 1); a photo saved at
quality 50 or below has one that does. The grid's phase is searched, so a crop of a JPEG still counts; a
JPEG that was resized afterwards has no grid left and counts as not blocky, which is also what it
looks like.

Only steps in flat areas count (both neighbours' steps small): there the block edges are what a viewer
sees, and texture, noise and rain streaks, which have no 8-px period, do not drown them.

The pipeline uses it to weight the JPEG adapter (``core.routing.Detected``): the estimator never learned
JPEG (with a JPEG output it confused rain with JPEG and cost rain photos 0.7 dB, NOTES.md), and a blocky
grid is a fact about the pixels that a rule reads reliably.
"""

from __future__ import annotations

import torch

#: Luma weights (ITU-R BT.601), as JPEG computes Y.
_LUMA = (0.299, 0.587, 0.114)


def _phase_ratio(steps: torch.Tensor, flat: torch.Tensor) -> float:
    """max over the 8 column phases of the mean step [H, W − 1] (flat places only) / median of the 8."""
    idx = torch.arange(steps.shape[1]) % 8
    s = (steps * flat).sum(0)
    c = flat.sum(0)
    per_phase = torch.stack([s[idx == k].sum() / c[idx == k].sum().clamp(min=1) for k in range(8)])
    med = per_phase.median().clamp(min=1e-3)
    return float(per_phase.max() / med)


def blockiness(rgb: torch.Tensor, *, flat_step: float = 3.0, max_side: int = 2048) -> float:
    """How much the 8×8 JPEG grid stands out in ``rgb`` [3, H, W] in [0, 1]: about 1 for a photo without
    it, rising with the compression (mean of the column and row ratios; see the module docstring).
    ``flat_step`` (in 8-bit levels): a step counts where the steps on either side of it are at most this
    large. At most ``max_side`` px of each side are read (a centred crop keeps the grid)."""
    if rgb.ndim != 3 or rgb.shape[0] != 3:
        raise ValueError(f"expected an RGB tensor [3, H, W], got shape {tuple(rgb.shape)}")
    _, h, w = rgb.shape
    if min(h, w) < 32:
        return 1.0
    top, left = max(0, (h - max_side) // 2) // 8 * 8, max(0, (w - max_side) // 2) // 8 * 8
    x = rgb[:, top : top + max_side, left : left + max_side].float()
    y = sum(c * x[i] for i, c in enumerate(_LUMA)) * 255
    ratios = []
    for axis in (1, 0):  # steps between columns, then between rows
        yy = y if axis == 1 else y.T
        d = (yy[:, 1:] - yy[:, :-1]).abs()  # d[:, j]: the step between pixels j and j + 1
        # A step counts where its neighbours (j − 1, j + 1) are flat: a block edge in a smooth area.
        flat = torch.zeros_like(d)
        flat[:, 1:-1] = ((d[:, :-2] <= flat_step) & (d[:, 2:] <= flat_step)).float()
        ratios.append(_phase_ratio(d, flat))
    return sum(ratios) / len(ratios)
