"""Per-pixel accuracy of the segmentation head on held-out Degradation CutMix crops.

    python benchmarks/segmentation.py --clean ../shared/data/eval/CBSD68 --out benchmarks/results/segmentation.json

Crops come from photos the model never saw in training (CBSD68 is disjoint from the CBSD432 training
set), degraded by Degradation CutMix with the built-in plugins exactly as in training, at a fixed seed.
Reports overall accuracy, per-class recall and the confusion matrix (rows: truth, columns: prediction).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from air_restore.core.io.files import atomic_write_text
from air_restore.core.io.images import iter_image_paths
from air_restore.core.cutmix import cutmix_batch
from air_restore.registry.discovery import get_degradation
from air_restore.registry.store import load_base


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clean", type=Path, required=True)
    ap.add_argument("--crops-per-image", type=int, default=4)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    model, info = load_base()
    classes = model.config.classes
    synths = [get_degradation(c).synthesize for c in classes[1:]]
    paths = iter_image_paths([args.clean])
    if args.limit:
        paths = paths[: args.limit]
    if not paths:
        sys.exit(f"{args.clean}: no images")
    g = torch.Generator().manual_seed(args.seed)
    confusion = torch.zeros(len(classes), len(classes), dtype=torch.long)
    for p in paths:
        with Image.open(p) as im:
            x = torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)
        _, h, w = x.shape
        crops = []
        for _ in range(args.crops_per_image):
            y0 = int(torch.randint(0, h - args.crop + 1, (1,), generator=g))
            x0 = int(torch.randint(0, w - args.crop + 1, (1,), generator=g))
            crops.append(x[:, y0 : y0 + args.crop, x0 : x0 + args.crop])
        batch = cutmix_batch(torch.stack(crops), synths, g, stack_with=get_degradation("noise").synthesize)
        with torch.no_grad():
            pred = model(batch.degraded).seg_logits.argmax(1)
        idx = batch.labels.flatten() * len(classes) + pred.flatten()
        confusion += torch.bincount(idx, minlength=len(classes) ** 2).view(len(classes), len(classes))
    total = confusion.sum().item()
    result = {
        "set": args.clean.name, "images": len(paths), "crops": len(paths) * args.crops_per_image,
        "crop": args.crop, "seed": args.seed, "fingerprint": info.fingerprint,
        "pixel_accuracy": confusion.diag().sum().item() / total,
        "recall": {c: (confusion[i, i] / confusion[i].sum().clamp_min(1)).item() for i, c in enumerate(classes)},
        "classes": list(classes), "confusion": confusion.tolist(),
    }
    print(json.dumps({k: v for k, v in result.items() if k != "confusion"}), flush=True)
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
