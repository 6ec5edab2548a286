"""Train the tiny estimator on the built-in degradations and measure its top-1 accuracy on held-out
single-degradation images (CBSD68, whole images, severity uniform in [0.2, 1], fixed seed).

    python benchmarks/estimator.py --train ../shared/data/train/clean --eval ../shared/data/eval/CBSD68 \
        --out benchmarks/results/estimator.json
    python benchmarks/estimator.py --train DIR --eval DIR --batches 2 --steps 2 --limit 1   # tiny (tests)

Training pool: random crops (96–224 px) of the training photos, each degraded by one plugin (a quarter
by two stacked), multi-hot targets, BCE. CPU only; no weights are written (the estimator that ships
comes with the adapters it weighs).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from air_restore.core.io.files import atomic_write_text
from air_restore.core.io.images import iter_image_paths, read_image
from air_restore.core.training.estimator import train_estimator
from air_restore.registry.discovery import get_degradation

NAMES = ("noise", "blur", "haze", "rain", "lowlight")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=Path, required=True)
    ap.add_argument("--eval", type=Path, required=True)
    ap.add_argument("--batches", type=int, default=600, help="pool size in batches of 16")
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--limit", type=int, default=0, help="evaluation images (0 = all)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    synths = [get_degradation(n).synthesize for n in NAMES]
    photos = [read_image(p).rgb for p in iter_image_paths([args.train])]
    est, info = train_estimator(NAMES, synths, photos, batches=args.batches, steps=args.steps)
    ge = torch.Generator().manual_seed(7)
    confusion = torch.zeros(len(NAMES), len(NAMES), dtype=torch.long)
    paths = iter_image_paths([args.eval])[: args.limit or None]
    for p in paths:
        clean = read_image(p).rgb[None]
        for k, synth in enumerate(synths):
            sev = 0.2 + 0.8 * torch.rand((1,), generator=ge)
            confusion[k, int(est.weights(synth(clean, ge, sev)).argmax())] += 1
    result = {
        "adapters": list(NAMES), "parameters": sum(p.numel() for p in est.parameters()),
        "train_samples": info["train_samples"], "steps": args.steps, "synth_s": info["synth_s"],
        "train_s": info["train_s"],
        "eval_set": args.eval.name, "eval_images": len(paths) * len(NAMES),
        "top1": confusion.diag().sum().item() / confusion.sum().item(), "confusion": confusion.tolist(),
    }
    print(json.dumps(result), flush=True)
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
