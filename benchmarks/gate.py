"""The clean-pixel gate (``core.restore``, on by default): PSNR of the pipeline's blend with and without it,
on clean photos, mild degradations and each single degradation at severity 0.5, plus the mean p_clean.
With an estimator that has a strength output, also the gated blend at full strength and the mean strength.

    python benchmarks/gate.py --clean ../shared/data/eval/CBSD68 --limit 6 --out benchmarks/results/gate.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from air_restore.core.io.images import iter_image_paths, read_image
from air_restore.core.io.weights import read_estimator
from air_restore.core.metrics import psnr, quantize8
from air_restore.registry.discovery import get_degradation
from air_restore.registry.pipeline import load_restorer

TASKS = (("clean", None, 0.0), ("noise", "noise", 0.1), ("noise", "noise", 0.2), ("jpeg", "jpeg", 0.1),
         ("jpeg", "jpeg", 0.2), ("rain", "rain", 0.2),
         ("noise", "noise", 0.5), ("blur", "blur", 0.5), ("haze", "haze", 0.5), ("rain", "rain", 0.5),
         ("lowlight", "lowlight", 0.5), ("jpeg", "jpeg", 0.5))


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clean", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=6)
    ap.add_argument("--estimator", type=Path, default=None, help="an estimator file instead of the one "
                    "`air restore` would pick (for the same adapters)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    r = load_restorer()
    if args.estimator is not None:
        r.estimator, r.estimator_path = read_estimator(args.estimator), args.estimator
    imgs = [read_image(p).rgb for p in iter_image_paths([args.clean])[: args.limit or None]]
    rows = []
    for t, (name, plugin, sev) in enumerate(TASKS):
        learned = r.estimator is not None and r.estimator.config.strength
        acc = {"input": 0.0, "ungated": 0.0, "gated": 0.0, "p_clean": 0.0,
               **({"gated_full": 0.0, "strength": 0.0} if learned else {})}
        for i, c in enumerate(imgs):
            x = c if plugin is None else quantize8(
                get_degradation(plugin).synthesize(c[None], torch.Generator().manual_seed(100 * t + i), sev)[0])
            gated = r.restore(x, explain=True, gate=True)
            acc["input"] += min(psnr(x, c, quantize=True).item(), 100.0)
            acc["ungated"] += psnr(r.restore(x, gate=False).image, c, quantize=True).item()
            acc["gated"] += psnr(gated.image, c, quantize=True).item()
            acc["p_clean"] += gated.seg_probs[0].mean().item()
            if learned:
                w, strength = r.assess(x)
                acc["gated_full"] += psnr(r.restore(x, w, gate=True).image, c, quantize=True).item()
                acc["strength"] += strength
        rows.append({"task": name, "severity": sev, "images": len(imgs), **{k: v / len(imgs) for k, v in acc.items()}})
        print(json.dumps(rows[-1]), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        est = r.estimator_path.name if r.estimator_path else None
        args.out.write_text(json.dumps({"adapters": r.adapters, "estimator": est, "rows": rows}, indent=1))
    return rows


if __name__ == "__main__":
    main()
