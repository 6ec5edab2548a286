"""Image quality metrics, one implementation each: PSNR (training logs, held-out checks, benchmarks),
PSNR/SSIM as ``air eval`` reports them (torchmetrics), and 8-bit quantization as a saved file has it.
NIQE (no reference) is :mod:`air_restore.core.niqe`."""

from __future__ import annotations

import torch


def quantize8(x: torch.Tensor) -> torch.Tensor:
    """``x`` clamped to [0, 1] and rounded to 8 bits, as written to an 8-bit file."""
    return (x.clamp(0, 1) * 255).round() / 255


def psnr(x: torch.Tensor, ref: torch.Tensor, *, quantize: bool = False) -> torch.Tensor:
    """PSNR (dB, peak 1) of ``x`` against ``ref``: ``x`` is clamped to [0, 1] (and rounded to 8 bits with
    ``quantize``). Per image [B] for a batch [B, 3, H, W]; a scalar tensor for one image [3, H, W]."""
    x = quantize8(x) if quantize else x.clamp(0, 1)
    dims = tuple(range(1, x.ndim)) if x.ndim == 4 else tuple(range(x.ndim))
    return -10 * torch.log10((x - ref).square().mean(dims).clamp_min(1e-10))


def psnr_ssim(x: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    """PSNR (dB) and SSIM of x against ref, both [3, H, W] in [0, 1]; x is quantized to 8 bits. These are
    torchmetrics' ``peak_signal_noise_ratio`` (data range 1) and ``structural_similarity_index_measure``
    (Gaussian window 11, σ 1.5), in float64."""
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    a, b = quantize8(x)[None].double(), ref[None].double()
    return (peak_signal_noise_ratio(a, b, data_range=1.0).item(),
            structural_similarity_index_measure(a, b, data_range=1.0).item())
