"""Per-degradation quality of the base restorer on a clean evaluation set degraded by the project's own
plugins at fixed seeds: PSNR/SSIM of the input and of the restored image, and CBM3D for noise rows.

    python benchmarks/quality.py --clean ../shared/data/eval/CBSD68 --out benchmarks/results/quality.json
    python benchmarks/quality.py --clean DIR --limit 4 --bm3d     # tiny run (the test suite does this)

Metrics: `air_restore.cli.evaluate.psnr_ssim` (torchmetrics' PSNR, data range 1, and SSIM, Gaussian
window 11, σ 1.5, on RGB in [0, 1], quantized to 8 bits as a saved file would be), as `air eval` uses.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from air_restore.cli.evaluate import psnr_ssim as metrics
from air_restore.cli.imageio import iter_image_paths
from air_restore.cli.evaluate import quantize8 as _q8
from air_restore.registry.discovery import get_degradation
from air_restore.registry.store import load_base

# name, plugin, severity, keyword options. σ = severity · 50/255 for noise.
ROWS = [
    ("noise σ=15", "noise", 15 / 50, {"kind": "gaussian"}),
    ("noise σ=25", "noise", 25 / 50, {"kind": "gaussian"}),
    ("noise σ=50", "noise", 50 / 50, {"kind": "gaussian"}),
    ("blur (motion)", "blur", 0.5, {"kind": "motion"}),
    ("blur (defocus)", "blur", 0.5, {"kind": "defocus"}),
    ("haze", "haze", 0.5, {}),
    ("rain", "rain", 0.5, {}),
    ("low light", "lowlight", 0.5, {}),
]


def _load(path: Path) -> torch.Tensor:
    with Image.open(path) as im:
        a = np.asarray(im.convert("RGB"), dtype=np.float32) / 255
    return torch.from_numpy(a).permute(2, 0, 1).contiguous()


def degrade(clean: torch.Tensor, row: tuple, index: int) -> torch.Tensor:
    """The fixed degradation of image ``index`` for ``row``: seed = crc32(row name) + index."""
    name, plugin, severity, kw = row
    g = torch.Generator().manual_seed(zlib.crc32(name.encode()) + index)
    fn = get_degradation(plugin).synthesize
    return _q8(fn(clean[None], g, severity, **kw)[0])


def cbm3d(noisy: torch.Tensor, sigma: float) -> torch.Tensor:
    import bm3d

    out = bm3d.bm3d_rgb(noisy.permute(1, 2, 0).numpy().astype(np.float64), sigma_psd=sigma)
    return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32)).permute(2, 0, 1)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clean", type=Path, required=True, help="folder of clean evaluation photos")
    ap.add_argument("--weights", type=Path, default=None, help="base weights (default: the bundled ones)")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N images (0 = all)")
    ap.add_argument("--bm3d", action="store_true", help="also run CBM3D (the bm3d package) on the noise rows")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)

    paths = iter_image_paths([args.clean])
    if args.limit:
        paths = paths[: args.limit]
    if not paths:
        sys.exit(f"{args.clean}: no images")
    model, info = load_base(args.weights, device=args.device)
    results = {"images": len(paths), "set": args.clean.name, "fingerprint": info.fingerprint,
               "device": args.device, "rows": []}
    for row in ROWS:
        acc: dict[str, list[float]] = {}
        for i, p in enumerate(paths):
            clean = _load(p)
            deg = degrade(clean, row, i)
            with torch.no_grad():
                out = model(deg[None].to(args.device)).image[0].float().cpu()
            for key, img in (("input", deg), ("air", out)):
                ps, ss = metrics(img, clean)
                acc.setdefault(f"{key}_psnr", []).append(ps)
                acc.setdefault(f"{key}_ssim", []).append(ss)
            if args.bm3d and row[1] == "noise":
                t = time.perf_counter()
                ps, ss = metrics(cbm3d(deg, row[2] * 50 / 255), clean)
                acc.setdefault("cbm3d_psnr", []).append(ps)
                acc.setdefault("cbm3d_ssim", []).append(ss)
                acc.setdefault("cbm3d_s", []).append(time.perf_counter() - t)
        summary = {"row": row[0], "plugin": row[1], "severity": row[2], "options": row[3],
                   **{k: statistics.fmean(v) for k, v in acc.items()}}
        results["rows"].append(summary)
        print(json.dumps(summary), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
