"""``restore(tensor) -> tensor``: the pure inference entry point (no paths, no printing)."""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from .arch import AirUNet
from .errors import InvalidValueError
from .memory import tile_batch as auto_tile_batch, tile_shape
from .runtime import keep_freed_memory, resolve_precision
from .defaults import OVERLAP, default_tile
from .tiling import tiled_forward


class RestoreResult(NamedTuple):
    image: torch.Tensor  # [3, H, W] in [0, 1], CPU
    seg_probs: torch.Tensor | None  # [C, H, W] per-pixel class probabilities (explain=True), CPU
    # share of the photo the gate kept as it was, as a whole (clean_share(), less the share of the gate lifted)
    clean_share: float = 0.0


def check_strength(strength: float) -> None:
    """Refuse a strength outside [0, 1] (the share of the restoration kept), in one line."""
    if not 0.0 <= strength <= 1.0:
        raise InvalidValueError(f"strength {strength}: use a number from 0 (the input) to 1 (all of the restoration)")


def resolve_device(name: str) -> torch.device:
    """'auto' → cuda if available, else cpu; 'cuda' without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidValueError("--device cuda was asked for but torch sees no CUDA GPU; use --device cpu or auto")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise InvalidValueError(f"unknown device {name!r}; use auto, cpu or cuda")
    return torch.device(name)


#: The whole-image part of the gate: where the head's mean ``p_clean`` over the photo is at least the first
#: value, the photo counts as clean in part, in full from the second (benchmarks/gate.py). Degraded photos have
#: a mean p_clean of 0–0.09 (single and stacked degradations at severity 0.5 on CBSD68), clean ones 0.65–0.99.
CLEAN_RAMP = (0.6, 0.8)


def linear_ramp(value: float, lo: float, hi: float) -> float:
    """``value`` mapped linearly onto 0–1: 0 at or below ``lo``, 1 at or above ``hi``."""
    return min(1.0, max(0.0, (value - lo) / (hi - lo)))


def clean_share(mean_p_clean: float, ramp: tuple[float, float] = CLEAN_RAMP) -> float:
    """How much of the photo as a whole to keep as it is, 0–1, from the head's mean ``p_clean`` over it."""
    return linear_ramp(mean_p_clean, *ramp)


def apply_gate(x: torch.Tensor, restored: torch.Tensor, p_clean: torch.Tensor, whole: float = 0.0, *,
               release: float = 0.0, inplace: bool = False) -> torch.Tensor:
    """The clean-pixel gate: ``x + (1 − keep)·(restored − x)`` with ``keep = (p_clean + (1 − p_clean)·whole)
    · (1 − release)``, ``p_clean`` [B, 1, H, W] (or [1, H, W]) from the head, ``whole`` from
    :func:`clean_share`, ``release`` in [0, 1] the share of the gate lifted (see :func:`restore`). ``inplace``
    writes into ``restored`` (on a large photo each whole-image temporary costs 12 bytes per pixel)."""
    change = 1 - (p_clean + (1 - p_clean) * whole) * (1 - release)  # = 1 − keep
    if inplace:
        return restored.sub_(x).mul_(change).add_(x)
    return x + change * (restored - x)


@torch.no_grad()
def restore(
    model: AirUNet,
    rgb: torch.Tensor,
    *,
    tile: int | None = None,
    overlap: int = OVERLAP,
    explain: bool = False,
    gate: bool = False,
    clean_ramp: tuple[float, float] | None = CLEAN_RAMP,
    release: float = 0.0,
    also_clean: dict[str, float] | None = None,
    strength: float = 1.0,
    precision: str = "auto",
    tile_batch: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    tone: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> RestoreResult:
    """Restore one image rgb [3, H, W] in [0, 1] with ``model`` (on its own device), tile by tile.

    ``gate``: keep the input where the segmentation head sees nothing wrong. Each output pixel is
    ``x + (1 − p_clean)·(restored − x)``, with ``p_clean`` the head's probability of the clean class
    there, so a clean photo (or the clean part of one) comes back as it went in instead of through the
    network's small losses on perfect pixels (12 clean CBSD68 photos: 40.0 → 54.5 dB; single degradations at
    severity 0.5 within 0.04 dB; benchmarks/gate.py). It costs the segmentation head (7% of the work).
    The head also sees a few false spots on clean photos (a bright, flat reflection read as haze and
    darkened), so where the photo as a whole looks clean (:func:`clean_share` of its mean ``p_clean``) the
    input is kept everywhere, in proportion: the same photos 54.5 → 95 dB, degraded ones unchanged.
    ``clean_ramp=None`` turns that whole-image part off (the per-pixel gate alone). ``release`` in [0, 1]
    lifts that share of the gate everywhere, for a degradation the head has no class for and reads as clean
    (JPEG blocks: mean p_clean 0.7 on CBSD68 at quality 50; snow), once something else has weighted its
    adapter (the estimator, ``core.routing.Detected``; ``Restorer.unseen``). ``also_clean`` maps a class to the
    share of its probability the gate counts as clean too (``core.routing.KeepDark``: a night sky the head reads
    as low light, on a photo the estimator finds exposed as meant).

    ``tone``: called with the input and the (gated) restoration, returns it refitted (``core.tone.ToneGuard``).

    ``strength`` in [0, 1]: how much of the (gated, refitted) restoration to keep, ``x + strength·(restored − x)``; the
    estimator predicts it per image where it was trained to (``core.estimator.best_strength``).

    ``precision``: one of ``core.runtime.PRECISIONS``; ``auto`` computes in fp32 on a CPU without native
    bf16 (where bf16 runs 21× slower) and in bf16/fp16 autocast where it is fast. Tiles, stitching and the
    gate stay fp32. ``tile=None``: the default for that precision (``core.defaults.default_tile``).

    ``tile_batch``: how many tiles go through the network at once; ``None`` picks
    (:func:`core.memory.tile_batch`): one on the CPU, where a batch buys nothing, and on a GPU as many as
    fit in half its free memory (up to 16), since there one call per tile is mostly launch overhead. The
    output does not depend on it.
    """
    if rgb.ndim != 3 or rgb.shape[0] != 3:
        raise ValueError(f"expected an RGB tensor [3, H, W], got shape {tuple(rgb.shape)}")
    if not 0.0 <= release <= 1.0:
        raise InvalidValueError(f"release {release}: use a number from 0 (the whole gate) to 1 (no gate)")
    check_strength(strength)
    device = next(model.parameters()).device
    dtype = resolve_precision(precision, device)
    if tile is None:
        tile = default_tile(dtype != torch.float32)
    if device.type == "cpu":
        keep_freed_memory()  # 1.3–2.6× faster on the CPU (core.runtime)
    # channels_last: the 1×1 and depthwise convs run ~1.5× faster on the CPU in that layout (measured at
    # 512² and 1024², 2 threads; BENCHMARKS.md). Converting the model is a no-op once it is done.
    model.to(memory_format=torch.channels_last)

    clean = model.config.classes.index("clean") if gate else None
    unknown = sorted(set(also_clean or {}) - set(model.config.classes))
    if unknown:
        raise InvalidValueError(f"also_clean: no class {', '.join(map(repr, unknown))}; the head's classes: "
                                f"{', '.join(model.config.classes)}")
    kept = [(model.config.classes.index(c), v) for c, v in (also_clean or {}).items() if v > 0]

    def keep_prob(probs: torch.Tensor) -> torch.Tensor:
        """[B, C, h, w] class probabilities → [B, 1, h, w]: what the gate counts as clean."""
        p = probs[:, clean : clean + 1]
        for i, v in kept:
            p = p + v * probs[:, i : i + 1]
        return p

    def fn(patch: torch.Tensor):
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            out = model(patch.contiguous(memory_format=torch.channels_last), segment=explain or gate)
        image = out.image.float().clamp(0, 1)
        probs = out.seg_logits.float().softmax(1) if out.seg_logits is not None else None
        if gate and not explain:
            probs = keep_prob(probs)  # all the gate needs, stitched over the whole photo
        return image.contiguous(), (probs.contiguous() if probs is not None else None)

    x = rgb.float().cpu()
    align = model.config.pad_multiple
    if tile_batch is None:
        tile_batch = auto_tile_batch(tile_shape(*x.shape[1:], tile, overlap, align), device,
                                     model_width=model.config.width)
    res = tiled_forward(fn, x, tile=tile, overlap=overlap, align=align, device=device, batch=tile_batch,
                        progress=progress)
    # In place from here on: on a large photo each whole-image temporary costs 12 bytes per pixel.
    image = res.image.clamp_(0, 1)
    whole = 0.0
    if gate:  # after stitching: the whole-image share needs every tile's p_clean
        p_clean = keep_prob(res.seg_probs[None])[0] if explain else res.seg_probs
        whole = clean_share(float(p_clean.mean()), clean_ramp) if clean_ramp is not None else 0.0
        apply_gate(x, image, p_clean, whole, release=release, inplace=True)
    if tone is not None:
        image = tone(x, image)
    if strength != 1.0:
        image.sub_(x).mul_(strength).add_(x)
    return RestoreResult(image.clamp_(0, 1), res.seg_probs if explain else None, whole * (1 - release))
