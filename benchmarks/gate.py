"""The clean-pixel gate (``core.restore``, on by default): PSNR of the pipeline's blend without it, with its
per-pixel part alone, and whole (per pixel, plus the input kept over a photo that looks clean as a whole,
``core.restore.clean_share``), and the whole gate without the fallback adapter (``core.routing``: the weight the
estimator leaves unassigned goes to the noise adapter, and its mean), on clean photos, mild degradations (also light rain without a veil and camera
noise from ``core.degradations``, which no bundled adapter was trained on, and a thin, even veil, ``flat_haze``, part
of the haze adapter's training family but never shown to the estimator, and light plugin haze at 0.15), each single
degradation at severity 0.5 and the held-out real pairs; plus the head's mean p_clean and the whole-image share kept.
With an estimator that has a strength output, also the gated blend at full strength and the mean strength.
The pipeline's columns restore a second time where haze or low light led the first pass (``core.routing.Sequel``),
as `air restore` does; p_clean and the share are the first pass's, the head's view of the input.

    python benchmarks/gate.py --clean ../shared/data/eval/CBSD68 --pairs ../shared/data/pairs --limit 12 \
        --out benchmarks/results/gate.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from blending import PAIRS, PAIRS_SPLIT, held_out_pairs  # noqa: E402  (the same held-out real pairs)

from air_restore.core.io.files import atomic_write_text  # noqa: E402
from air_restore.core import degradations as D  # noqa: E402
from air_restore.core.io.images import iter_image_paths, read_image  # noqa: E402
from air_restore.core.io.weights import read_estimator  # noqa: E402
from air_restore.core.metrics import psnr, quantize8  # noqa: E402
from air_restore.core.restore import clean_share  # noqa: E402
from air_restore.registry.discovery import get_degradation  # noqa: E402
from air_restore.registry.pipeline import load_restorer  # noqa: E402

TASKS = (("clean", None, 0.0), ("noise", "noise", 0.1), ("noise", "noise", 0.2), ("jpeg", "jpeg", 0.1),
         ("jpeg", "jpeg", 0.2), ("rain", "rain", 0.2),
         ("noise", "noise", 0.5), ("blur", "blur", 0.5), ("haze", "haze", 0.5), ("rain", "rain", 0.5),
         ("lowlight", "lowlight", 0.5), ("jpeg", "jpeg", 0.5),
         # Not from a plugin: light rain with no veil and camera noise (core.degradations' wider families)
         ("light rain (drizzle)", D.drizzle, 0.3), ("camera noise", D.camera_noise, 0.3), ("jpeg", "jpeg", 0.9),
         # a thin, even veil in sRGB, as simpler haze synthesizers make it (last: the rows above keep their seeds)
         ("thin haze (flat)", D.flat_haze, 0.5),
         # light haze, which the estimator gives little weight (core.routing.fallback_share: the fallback's veil rule)
         ("light haze", "haze", 0.15))


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clean", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=6)
    ap.add_argument("--pairs", type=Path, default=None, help="folder holding the real paired sets")
    ap.add_argument("--pairs-limit", type=int, default=20)
    ap.add_argument("--estimator", type=Path, default=None, help="an estimator file instead of the one "
                    "`air restore` would pick (for the same adapters)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    r = load_restorer()
    if args.estimator is not None:
        r.estimator, r.estimator_path = read_estimator(args.estimator), args.estimator
    imgs = [read_image(p).rgb for p in iter_image_paths([args.clean])[: args.limit or None]]
    sets = []
    for t, (name, synth, sev) in enumerate(TASKS):
        if isinstance(synth, str):
            synth = get_degradation(synth).synthesize
        sets.append((name, sev, [(c if synth is None else quantize8(
            synth(c[None], torch.Generator().manual_seed(100 * t + i), sev)[0].clamp(0, 1)), c)
            for i, c in enumerate(imgs)]))
    for folder in PAIRS if args.pairs is not None else ():
        root = args.pairs / folder
        if root.is_dir():
            sets.append((f"real: {folder} (held out)", None, held_out_pairs(root, args.pairs_limit)))
    rows = []
    learned = r.estimator is not None and r.estimator.config.strength
    for name, sev, samples in sets:
        acc = {"input": 0.0, "ungated": 0.0, "pixel_gate": 0.0, "gated": 0.0, "no_fallback": 0.0, "fallback": 0.0,
               "p_clean": 0.0, "share": 0.0, **({"gated_full": 0.0, "strength": 0.0} if learned else {})}
        for x, c in samples:
            w, _, extra = r.route(x)
            gated = r.restore(x, explain=True, gate=True)  # its segmentation: the first pass's, of the input
            est_only = w.clone()
            if extra:
                est_only[r.adapters.index(r.fallback.adapter)] -= extra
            acc["no_fallback"] += (psnr(r.restore(x, est_only, gate=True, also_clean=r.also_clean(w, x), again=True).image,
                                        c, quantize=True).item() if extra
                                   else psnr(gated.image, c, quantize=True).item())
            acc["fallback"] += extra
            acc["input"] += min(psnr(x, c, quantize=True).item(), 100.0)
            acc["ungated"] += psnr(r.restore(x, gate=False).image, c, quantize=True).item()
            acc["pixel_gate"] += psnr(r.restore(x, gate=True, clean_ramp=None).image, c, quantize=True).item()
            acc["gated"] += psnr(gated.image, c, quantize=True).item()
            acc["p_clean"] += gated.seg_probs[0].mean().item()
            acc["share"] += clean_share(gated.seg_probs[0].mean().item())
            if learned:
                w, strength = r.assess(x)
                acc["gated_full"] += psnr(r.restore(x, w, gate=True, also_clean=r.also_clean(w, x), again=True).image, c,
                                            quantize=True).item()
                acc["strength"] += strength
        rows.append({"task": name, "severity": sev, "images": len(samples),
                     **{k: v / len(samples) for k, v in acc.items()}})
        print(json.dumps(rows[-1]), flush=True)
    if args.out:
        est = r.estimator_path.name if r.estimator_path else None
        atomic_write_text(args.out, json.dumps({"adapters": r.adapters, "estimator": est, "rows": rows,
                                                "second_pass": r.sequel is not None,
                                                "pairs_split": PAIRS_SPLIT}, indent=1))
    return rows


if __name__ == "__main__":
    main()
