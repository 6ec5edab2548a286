"""Dark scenes against low light (#14): a photo of a dark scene, well exposed, must come back as dark as it is;
an under-exposed one must be brightened. Both look alike to the estimator. Each row runs `air restore`'s
pipeline (estimator routing, fallback, gate) with the estimator `air restore` would pick and, side by side in
the same run, with ``--estimator`` (a candidate), on the same seeded inputs, and gives the mean PSNR (dB), the
mean low-light weight and the worst photo's change against its input.

Rows (CBSD68's last ``--limit`` photos, so not the first twelve the other tables use):
- dark scene ×g: the photo exposed down in linear light by g, clean version exposed the same (nothing wrong
  but the scene's darkness); then with camera noise or Gaussian noise on top (clean still the dark photo);
- the low-light plugin at three severities, ``core.degradations.dim`` and dark-and-noisy (the low-light
  adapter's family): under-exposed photos whose clean version is the original;
- the held-out real PolyU pairs (indoor scenes of a real camera at high ISO; several are dark).

    python benchmarks/dark_scenes.py --clean ../shared/data/eval/CBSD68 --pairs ../shared/data/pairs \
        --estimator NEW.safetensors --out benchmarks/results/dark_scenes.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from blending import PAIRS_SPLIT, held_out_pairs  # noqa: E402  (the same held-out real pairs)
from report import _commit  # noqa: E402

from air_restore.core import degradations as D  # noqa: E402
from air_restore.core.families import _dark_and_noisy, expose  # noqa: E402  (a low-light adapter family variant)
from air_restore.core.io.files import atomic_write_text  # noqa: E402
from air_restore.core.io.images import iter_image_paths, read_image  # noqa: E402
from air_restore.core.io.weights import read_estimator  # noqa: E402
from air_restore.core.metrics import psnr, quantize8  # noqa: E402
from air_restore.registry.pipeline import load_restorer  # noqa: E402


def _one(fn):
    return lambda c, g, s: fn(c[None], g, s)[0]


#: name → make(clean [3, H, W], generator) → (input, clean version)
TASKS = {
    "dark scene ×0.3": lambda c, g: (expose(c, 0.3), expose(c, 0.3)),
    "dark scene ×0.3 + camera noise 0.3": lambda c, g: (_one(D.camera_noise)(expose(c, 0.3), g, 0.3),
                                                        expose(c, 0.3)),
    "dark scene ×0.5 + noise 0.2": lambda c, g: (_one(D.noise)(expose(c, 0.5), g, 0.2), expose(c, 0.5)),
    "low light 0.15": lambda c, g: (_one(D.lowlight)(c, g, 0.15), c),
    "low light 0.3": lambda c, g: (_one(D.lowlight)(c, g, 0.3), c),
    "low light 0.5": lambda c, g: (_one(D.lowlight)(c, g, 0.5), c),
    "dim 0.3": lambda c, g: (_one(D.dim)(c, g, 0.3), c),
    "dark and noisy 0.5": lambda c, g: (_one(_dark_and_noisy)(c, g, torch.tensor([0.5])), c),
}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clean", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=12, help="photos per synthetic row (the folder's last N)")
    ap.add_argument("--pairs", type=Path, default=None, help="folder holding noise_real_PolyU")
    ap.add_argument("--pairs-limit", type=int, default=20)
    ap.add_argument("--estimator", type=Path, required=True, help="the candidate estimator (same adapters)")
    ap.add_argument("--size", type=int, default=0, help="centre-crop side of the synthetic rows (0 = whole)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    started = time.time()
    r = load_restorer()
    estimators = {"shipped": (r.estimator, r.estimator_path), "candidate": (read_estimator(args.estimator),
                                                                             args.estimator)}
    paths = iter_image_paths([args.clean])
    imgs = [read_image(p).rgb for p in paths[-args.limit:]]
    if args.size:
        imgs = [c[..., :args.size, :args.size] for c in imgs]
    sets = []
    for n, (name, make) in enumerate(TASKS.items()):
        made = [make(c, torch.Generator().manual_seed(1000 * n + i)) for i, c in enumerate(imgs)]
        sets.append((name, [(quantize8(x.clamp(0, 1)), c) for x, c in made]))  # as a photo file holds it
    polyu = None if args.pairs is None else args.pairs / "noise_real_PolyU"
    if polyu is not None and polyu.is_dir():
        sets.append(("real: noise_real_PolyU (held out)", held_out_pairs(polyu, args.pairs_limit)))
    low = r.adapters.index("lowlight")
    rows = []
    for name, samples in sets:
        inputs = [min(psnr(x, c, quantize=True).item(), 100.0) for x, c in samples]
        row = {"task": name, "images": len(samples), "input": sum(inputs) / len(samples)}
        for tag, (est, _) in estimators.items():
            r.estimator = est
            got, weight, worst = 0.0, 0.0, float("inf")
            for (x, c), before in zip(samples, inputs):
                w, _, _ = r.route(x)
                out = min(psnr(r.restore(x, w, gate=True).image, c, quantize=True).item(), 100.0)
                got += out
                weight += float(w.flatten()[low])
                worst = min(worst, out - before)
            row |= {tag: got / len(samples), f"{tag}_lowlight_weight": weight / len(samples), f"{tag}_worst": worst}
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {"commit": _commit(), "clean_set": args.clean.name, "photos": [p.name for p in paths[-args.limit:]],
              "size": args.size, "pairs_split": PAIRS_SPLIT, "adapters": r.adapters,
              "estimators": {k: p.name if p else None for k, (_, p) in estimators.items()},
              "threads": torch.get_num_threads(), "rows": rows, "wall_s": round(time.time() - started, 1)}
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
