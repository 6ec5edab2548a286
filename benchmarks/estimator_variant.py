"""A copy of an estimator file with inference settings of its config changed, the tensors as they are: the
baseline that `blending.py`, `no_reference.py` and `dark_scenes.py` measure beside the shipped one.

    python benchmarks/estimator_variant.py --crop 0 --out runs/est_whole.safetensors   # one pair of views of
                                                       # the whole image for every output (before 2026-12-04)
    python benchmarks/estimator_variant.py --crop-pool prob --out runs/est_prob.safetensors  # the mean weight
                                                       # over the crops (before 2026-12-05)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from safetensors import safe_open

from air_restore.core.estimator import Estimator
from air_restore.core.io.weights import read_estimator, save_estimator
from air_restore.registry.store import bundled_estimator_path


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--estimator", type=Path, default=None, help="the file to copy (default: the bundled one)")
    ap.add_argument("--crop", type=int, default=None, help="side of the crops (0: the whole image)")
    ap.add_argument("--on-crops", default=None, help="comma-separated outputs judged on crops")
    ap.add_argument("--crop-pool", choices=("logit", "prob"), default=None,
                    help="what is averaged over the crops: logits or weights")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    src = args.estimator or bundled_estimator_path()
    if args.out.exists():
        raise SystemExit(f"{args.out} exists; choose a new file")
    est = read_estimator(src)
    update = {**({"crop": args.crop} if args.crop is not None else {}),
              **({"on_crops": tuple(n for n in args.on_crops.split(",") if n)} if args.on_crops is not None else {}),
              **({"crop_pool": args.crop_pool} if args.crop_pool is not None else {})}
    variant = Estimator(config=est.config.model_copy(update=update))
    variant.load_state_dict(est.state_dict())
    with safe_open(str(src), framework="pt") as f:
        meta = f.metadata() or {}
    save_estimator(variant.eval(), args.out, training={**json.loads(meta.get("training", "{}")), "variant_of": str(src),
                                                        "changed": update},
                   metrics=json.loads(meta.get("metrics", "{}")))
    print(f"{args.out}: {variant.config}")
    return args.out


if __name__ == "__main__":
    main()
