"""An adapter trained over other degradations (`air train adapter --over`) against the bundled one.

    air train adapter noise --synthetic noise --over haze,rain --clean ../shared/data/train/clean \
        --out runs/over/noise --steps 500
    python benchmarks/over.py --adapter runs/over/noise --clean ../shared/data/eval/CBSD68 --limit 12 \
        --out benchmarks/results/over.json
    python benchmarks/over.py --adapter DIR --clean DIR --limit 1 --size 64      # tiny (the tests do this)

Two pipelines side by side, the same in all but one adapter: the bundled base, adapters and estimator,
and the same with the bundled adapter of ``--adapter``'s name replaced by ``--adapter``. On each task
(that degradation alone, stacked on each other built-in, and each other built-in alone, every plugin at
severity 0.5; image i of a task uses seed crc32(task) + i; centre crops of ``--size``): PSNR of the
input, the base alone, the adapter alone at weight 1, and blended by the estimator.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import zlib
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from blending import SEVERITY, _crop, _psnr, pipeline, stacked  # noqa: E402  (as the blending table)

from air_restore.core.io.files import atomic_write_text  # noqa: E402
from air_restore.core.io.images import iter_image_paths, read_image  # noqa: E402
from air_restore.registry.adapters import read_manifest  # noqa: E402
from air_restore.registry.store import BUNDLED_PLUGINS, bundled_adapters  # noqa: E402



def tasks(name: str) -> list[tuple[str, ...]]:
    """The adapter's degradation alone, over each other built-in, then each other built-in alone."""
    others = [n for n in BUNDLED_PLUGINS if n != name]
    return [(name,), *((o, name) for o in others), *((o,) for o in others)]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--adapter", type=Path, required=True, help="adapter folder trained with --over")
    ap.add_argument("--clean", type=Path, required=True, help="clean photos (CBSD68)")
    ap.add_argument("--limit", type=int, default=12, help="images per task (0 = all)")
    ap.add_argument("--size", type=int, default=256, help="centre-crop side (0 = whole images)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    started = time.time()
    manifest = read_manifest(args.adapter)
    name = manifest["name"]
    if name not in BUNDLED_PLUGINS:
        raise SystemExit(f"{args.adapter}: adapter {name!r} is not a bundled one of a built-in plugin; nothing to "
                         "compare it with")
    bundled = [a.path for a in bundled_adapters()]
    arms = {"bundled": pipeline(), "over": pipeline(folders=[args.adapter if p.name == name else p for p in bundled])}
    clean = [_crop(read_image(p).rgb, args.size) for p in iter_image_paths([args.clean])[: args.limit or None]]
    rows = []
    for parts in tasks(name):
        task = "+".join(parts)
        acc: dict[str, list[float]] = {}
        for i, c in enumerate(clean):
            x = stacked(c, parts, torch.Generator().manual_seed(zlib.crc32(task.encode()) + i), SEVERITY)
            acc.setdefault("input", []).append(_psnr(x, c))
            acc.setdefault("base", []).append(_psnr(arms["bundled"].restore(x, torch.zeros(len(arms["bundled"].adapters))).image, c))
            for arm, r in arms.items():
                acc.setdefault(f"{arm}_alone", []).append(_psnr(r.restore(x, r.weights_from({name: 1.0})).image, c))
                acc.setdefault(f"{arm}_blended", []).append(_psnr(r.restore(x).image, c))
        rows.append({"task": task, **{k: statistics.fmean(v) for k, v in acc.items()}})
        print(json.dumps(rows[-1]), flush=True)
    data = manifest.get("training", {}).get("data", {})
    result = {"adapter": name, "over": data.get("over"), "over_share": data.get("over_share"),
              "rank": manifest.get("rank"),
              "training": {k: manifest.get("training", {}).get(k) for k in ("steps", "batch_size", "crop", "lr")},
              "clean_set": args.clean.name, "images_per_task": len(clean), "crop": args.size or "whole",
              "severity": SEVERITY, "rows": rows, "wall_s": round(time.time() - started, 1)}
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
