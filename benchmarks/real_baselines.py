"""CBM3D beside `air restore` on held-out real camera noise (PolyU), as issue #14 asks.

    python benchmarks/real_baselines.py --pairs ../shared/data/pairs --out benchmarks/results/real_cbm3d.json
    python benchmarks/real_baselines.py --pairs DIR --limit 1 --size 64     # tiny

The held-out 20% of noise_real_PolyU (the split of ``air add-degradation --holdout 0.2``, seed 0; the bundled
realnoise adapter never saw these photos). CBM3D (the ``bm3d`` package) runs twice: with σ estimated from the
noisy photo alone (scikit-image's wavelet estimator, the mean over the channels: what a user without the clean
photo can do), and with the σ of noisy − clean, which nobody has, as its upper bound. Beside them: the input,
the base alone and ``air restore``'s pipeline (the bundled adapters and estimator). PSNR on 8-bit-quantized RGB.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from blending import PAIRS_SPLIT, _psnr, held_out_pairs  # noqa: E402
from quality import cbm3d  # noqa: E402

from air_restore.core.io.files import atomic_write_text  # noqa: E402
from air_restore.registry.pipeline import load_restorer  # noqa: E402

SET = "noise_real_PolyU"


def estimated_sigma(noisy: torch.Tensor) -> float:
    """σ of the noise in ``noisy`` [3, H, W] from the photo alone (wavelet MAD; Donoho & Johnstone 1994)."""
    from skimage.restoration import estimate_sigma

    return float(estimate_sigma(noisy.permute(1, 2, 0).numpy(), channel_axis=-1, average_sigmas=True))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=Path, required=True, help="folder holding noise_real_PolyU")
    ap.add_argument("--limit", type=int, default=20, help="held-out pairs (of 20)")
    ap.add_argument("--size", type=int, default=0, help="centre-crop side (0 = whole photos)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    r = load_restorer()
    rows = []
    for noisy, clean in held_out_pairs(args.pairs / SET, args.limit, args.size):
        sigma, true_sigma = estimated_sigma(noisy), float((noisy - clean).std())
        t0 = time.perf_counter()
        blind = cbm3d(noisy, sigma)
        t1 = time.perf_counter()
        oracle = cbm3d(noisy, true_sigma)
        t2 = time.perf_counter()
        base = r.restore(noisy, torch.zeros(len(r.adapters))).image
        t3 = time.perf_counter()
        ours = r.restore(noisy).image
        t4 = time.perf_counter()
        rows.append({"input": _psnr(noisy, clean), "cbm3d": _psnr(blind, clean),
                     "cbm3d_true_sigma": _psnr(oracle, clean), "base": _psnr(base, clean),
                     "pipeline": _psnr(ours, clean), "sigma_255": 255 * sigma, "true_sigma_255": 255 * true_sigma,
                     "s": {"cbm3d": t1 - t0, "cbm3d_true_sigma": t2 - t1, "base": t3 - t2, "pipeline": t4 - t3}})
        print(json.dumps(rows[-1]), flush=True)
    keys = ("input", "cbm3d", "cbm3d_true_sigma", "base", "pipeline")
    result = {
        "set": SET, "pairs": len(rows), "split": PAIRS_SPLIT,
        "crop": args.size or "whole", "adapters": r.adapters, "threads": torch.get_num_threads(),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parents[1],
                                 capture_output=True, text=True).stdout.strip(),
        "mean": {k: statistics.fmean(x[k] for x in rows) for k in keys},
        "median_s": {k: statistics.median(x["s"][k] for x in rows) for k in keys[1:]},
        "sigma_255": {"estimated_median": statistics.median(x["sigma_255"] for x in rows),
                      "true_median": statistics.median(x["true_sigma_255"] for x in rows)},
        "rows": rows,
    }
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
