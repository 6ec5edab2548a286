"""``air eval``: PSNR/SSIM of the restorer on paired folders or on clean photos degraded by a plugin,
and NIQE on real photos that have no clean reference.

Metrics are torchmetrics' ``peak_signal_noise_ratio`` (data range 1) and
``structural_similarity_index_measure`` (Gaussian window 11, σ 1.5), on RGB in [0, 1] quantized to
8 bits as a saved file would be (``air_restore.core.metrics``); NIQE is ``air_restore.core.niqe`` (lower is more natural). One
implementation, used by ``benchmarks/`` too.
"""

from __future__ import annotations

import csv
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch

from .io.images import ImageReadError, iter_image_paths, read_image
from .metrics import psnr_ssim, quantize8
from .errors import InvalidValueError




@dataclass
class Sample:
    name: str
    degraded: torch.Tensor
    clean: torch.Tensor


def paired_samples(folder: Path) -> Iterator[Sample]:
    """Pairs from ``folder/degraded`` and ``folder/clean`` matched by file name; clear errors otherwise."""
    deg_dir, clean_dir = folder / "degraded", folder / "clean"
    for d in (deg_dir, clean_dir):
        if not d.is_dir():
            raise InvalidValueError(f"{folder}: expected sub-folders degraded/ and clean/ ({d.name}/ is missing)")
    names = [p.name for p in iter_image_paths([deg_dir])]
    if not names:
        raise InvalidValueError(f"{deg_dir}: no images")
    missing = [n for n in names if not (clean_dir / n).exists()]
    if missing:
        raise InvalidValueError(f"{clean_dir}: no clean image for {len(missing)} degraded one(s), e.g. {missing[0]}")
    for n in names:
        deg, clean = read_image(deg_dir / n).rgb, read_image(clean_dir / n).rgb
        if deg.shape != clean.shape:
            raise InvalidValueError(f"{n}: degraded {tuple(deg.shape[1:])} and clean {tuple(clean.shape[1:])} sizes differ")
        yield Sample(n, deg, clean)


def synthetic_samples(folder: Path, synthesize: Callable, severity: float, seed: int) -> Iterator[Sample]:
    """Clean photos of ``folder`` degraded by ``synthesize`` at ``severity``; image i uses seed + i."""
    paths = iter_image_paths([folder])
    if not paths:
        raise InvalidValueError(f"{folder}: no images")
    for i, p in enumerate(paths):
        clean = read_image(p).rgb
        g = torch.Generator().manual_seed(seed + i)
        yield Sample(p.name, quantize8(synthesize(clean[None], g, severity)[0]), clean)


def evaluate(
    samples: Iterator[Sample],
    restore_fn: Callable[[torch.Tensor], torch.Tensor],
    *,
    csv_path: Path | None = None,
    on_image: Callable[[dict], None] | None = None,
) -> dict:
    """Run ``restore_fn`` on every sample; per-image rows (optionally to CSV) and the means."""
    rows = []
    for s in samples:
        out = restore_fn(s.degraded)
        ip, iss = psnr_ssim(s.degraded, s.clean)
        op, oss = psnr_ssim(out, s.clean)
        row = {"image": s.name, "input_psnr": ip, "input_ssim": iss, "restored_psnr": op, "restored_ssim": oss}
        rows.append(row)
        if on_image:
            on_image(row)
    if csv_path is not None and rows:
        _write_csv(rows, csv_path)
    keys = ("input_psnr", "input_ssim", "restored_psnr", "restored_ssim")
    return {"images": len(rows), **{k: statistics.fmean(r[k] for r in rows) for k in keys}, "rows": rows}


def _write_csv(rows: list[dict], csv_path: Path) -> None:
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def evaluate_no_reference(
    paths: list[Path],
    restore_fn: Callable[[torch.Tensor], torch.Tensor],
    *,
    csv_path: Path | None = None,
    on_image: Callable[[dict], None] | None = None,
    on_skip: Callable[[Path, str], None] | None = None,
) -> dict:
    """NIQE of each photo and of its restored version (no clean reference needed); per-image rows
    (optionally to CSV) and the medians and means. Photos too small for NIQE (under two 96 × 96 patches)
    are skipped, reported through ``on_skip``."""
    from .niqe import PATCH, niqe

    rows = []
    for p in paths:
        img = read_image(p).rgb
        h, w = img.shape[1:]
        if (h // PATCH) * (w // PATCH) < 2:
            if on_skip:
                on_skip(p, f"{w}×{h} is too small for NIQE (needs two {PATCH}×{PATCH} patches)")
            continue
        row = {"image": p.name, "width": w, "height": h, "input_niqe": niqe(img), "restored_niqe": niqe(restore_fn(img))}
        rows.append(row)
        if on_image:
            on_image(row)
    if csv_path is not None and rows:
        _write_csv(rows, csv_path)
    keys = ("input_niqe", "restored_niqe")
    summary = {"images": len(rows), "rows": rows}
    for k in keys:
        vals = [r[k] for r in rows]
        summary[k] = statistics.fmean(vals) if vals else float("nan")
        summary[f"{k}_median"] = statistics.median(vals) if vals else float("nan")
    summary["restored_better"] = sum(r["restored_niqe"] < r["input_niqe"] for r in rows)
    return summary


def parse_degrade(spec: str) -> tuple[str, float]:
    """'noise' → ('noise', 0.5); 'noise:0.3' → ('noise', 0.3)."""
    name, _, sev = spec.partition(":")
    try:
        severity = float(sev) if sev else 0.5
    except ValueError:
        raise InvalidValueError(f"--degrade {spec!r}: severity must be a number in [0, 1], e.g. noise:0.5") from None
    if not 0 <= severity <= 1:
        raise InvalidValueError(f"--degrade {spec!r}: severity must lie in [0, 1]")
    return name, severity


__all__ = ["ImageReadError", "Sample", "evaluate", "evaluate_no_reference", "paired_samples", "parse_degrade", "psnr_ssim",
           "synthetic_samples"]
