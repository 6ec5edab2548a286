"""``restore(tensor) -> tensor``: the pure inference entry point (no paths, no printing)."""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from .arch import AirUNet
from .tiling import tiled_forward
from .errors import InvalidValueError


class RestoreResult(NamedTuple):
    image: torch.Tensor  # [3, H, W] in [0, 1], CPU
    seg_probs: torch.Tensor | None  # [C, H, W] per-pixel class probabilities (explain=True), CPU


def resolve_device(name: str) -> torch.device:
    """'auto' → cuda if available, else cpu; 'cuda' without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidValueError("--device cuda was asked for but torch sees no CUDA GPU; use --device cpu or auto")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise InvalidValueError(f"unknown device {name!r}; use auto, cpu or cuda")
    return torch.device(name)


def apply_gate(x: torch.Tensor, restored: torch.Tensor, p_clean: torch.Tensor) -> torch.Tensor:
    """The clean-pixel gate: ``x + (1 − p_clean)·(restored − x)``, ``p_clean`` [B, 1, H, W] from the head."""
    return x + (1 - p_clean) * (restored - x)


@torch.no_grad()
def restore(
    model: AirUNet,
    rgb: torch.Tensor,
    *,
    tile: int = 512,
    overlap: int = 128,
    explain: bool = False,
    gate: bool = False,
    strength: float = 1.0,
    progress: Callable[[int, int], None] | None = None,
) -> RestoreResult:
    """Restore one image rgb [3, H, W] in [0, 1] with ``model`` (on its own device), tile by tile.

    ``gate``: keep the input where the segmentation head sees nothing wrong. Each output pixel is
    ``x + (1 − p_clean)·(restored − x)``, with ``p_clean`` the head's probability of the clean class
    there, so a clean photo (or the clean part of one) comes back as it went in instead of through the
    network's small losses on perfect pixels (6 clean CBSD68 photos: 39.8 → 50.5 dB; single degradations at
    severity 0.5 within 0.04 dB; benchmarks/results/NOTES.md). It costs the segmentation head (7% of the work).

    ``strength`` in [0, 1]: how much of the (gated) restoration to keep, ``x + strength·(restored − x)``; the
    estimator predicts it per image where it was trained to (``core.estimator.best_strength``).
    """
    if rgb.ndim != 3 or rgb.shape[0] != 3:
        raise ValueError(f"expected an RGB tensor [3, H, W], got shape {tuple(rgb.shape)}")
    if not 0.0 <= strength <= 1.0:
        raise InvalidValueError(f"strength {strength}: use a number from 0 (the input) to 1 (all of the restoration)")
    device = next(model.parameters()).device
    # channels_last: the 1×1 and depthwise convs run ~1.5× faster on the CPU in that layout (measured at
    # 512² and 1024², 2 threads; BENCHMARKS.md). Converting the model is a no-op once it is done.
    model.to(memory_format=torch.channels_last)

    clean = model.config.classes.index("clean") if gate else None

    def fn(patch: torch.Tensor):
        out = model(patch.contiguous(memory_format=torch.channels_last), segment=explain or gate)
        image = out.image.clamp(0, 1)
        probs = out.seg_logits.softmax(1) if out.seg_logits is not None else None
        if gate:
            image = apply_gate(patch, image, probs[:, clean : clean + 1])
        if strength != 1.0:
            image = patch + strength * (image - patch)
        return image.contiguous(), (probs.contiguous() if explain else None)

    res = tiled_forward(fn, rgb.float().cpu(), tile=tile, overlap=overlap, align=model.config.pad_multiple,
                        device=device, progress=progress)
    return RestoreResult(res.image.clamp(0, 1), res.seg_probs)
