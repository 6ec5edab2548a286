"""An adapter trained on a widened family (`air train adapter --family`) against the bundled one, alone.

    air train adapter noise --synthetic noise --family --clean ../shared/data/train/clean \
        --out runs/noise_fam --steps 400
    python benchmarks/family.py --adapter runs/noise_fam --clean ../shared/data/eval/CBSD68 \
        --pairs ../shared/data/pairs --limit 12 --out benchmarks/results/family_noise.json
    python benchmarks/family.py --adapter DIR --clean DIR --limit 1 --size 64     # tiny (the tests do this)

Each adapter alone at weight 1 (others 0, the clean-pixel gate on, as `air restore` runs it), beside the
base alone, on: the held-out real pairs of its degradation (the last ``--pairs-limit`` of Rain100H for
rain, PolyU for noise; neither adapter saw them), its plugin at severity 0.5 and at a mild 0.15, each
variant of its widened family (``core.families``) at 0.5, and clean photos. The family rows are the new
adapter's own training distribution, so only the real pairs (and the clean row) are an independent test.
Image i of a row uses seed crc32(row) + i.
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
from blending import PAIRS, _crop, _psnr, held_out_pairs  # noqa: E402  (as the blending table)

from air_restore.core.io.files import atomic_write_text  # noqa: E402
from air_restore.core.families import FAMILIES  # noqa: E402
from air_restore.core.io.images import iter_image_paths, read_image  # noqa: E402
from air_restore.core.metrics import quantize8  # noqa: E402
from air_restore.registry.adapters import read_manifest  # noqa: E402
from air_restore.registry.discovery import get_degradation  # noqa: E402
from air_restore.registry.pipeline import Restorer  # noqa: E402
from air_restore.registry.store import bundled_adapters, load_base  # noqa: E402


def rows_for(name: str) -> list[tuple[str, object, float]]:
    """(row name, synthesizer, severity) of the synthetic rows for adapter ``name``."""
    plugin = get_degradation(name).synthesize
    rows = [(f"{name} 0.5", plugin, 0.5), (f"{name} 0.15", plugin, 0.15)]
    variants = FAMILIES[name][0] if name in FAMILIES else ()
    rows += [(f"family: {fn.__name__.strip('_')} 0.5", fn, 0.5) for fn in variants if fn is not plugin]
    return rows


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--adapter", type=Path, required=True, help="the new adapter folder (a bundled name)")
    ap.add_argument("--clean", type=Path, required=True, help="clean photos (CBSD68)")
    ap.add_argument("--pairs", type=Path, default=None, help="folder holding the real paired sets")
    ap.add_argument("--limit", type=int, default=0, help="images per synthetic row (0 = all)")
    ap.add_argument("--pairs-limit", type=int, default=20, help="pairs per real set (the last N by name)")
    ap.add_argument("--size", type=int, default=0, help="centre-crop side (0 = whole images)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    started = time.time()
    manifest = read_manifest(args.adapter)
    name = manifest["name"]
    bundled = {a.name: a.path for a in bundled_adapters()}
    if name not in bundled:
        raise SystemExit(f"{args.adapter}: adapter {name!r} is not a bundled one; nothing to compare with")
    restorers = {}
    for label, folder in (("bundled", bundled[name]), ("new", args.adapter)):
        restorers[label] = Restorer(*load_base())
        restorers[label].attach_folder(folder)
    clean = [_crop(read_image(p).rgb, args.size) for p in iter_image_paths([args.clean])[: args.limit or None]]
    sets: list[tuple[str, list]] = []
    if args.pairs is not None:
        for folder, parts in PAIRS.items():
            root = args.pairs / folder
            if parts != (name,) or not root.is_dir():
                continue
            sets.append((f"real: {folder} (held out)", held_out_pairs(root, args.pairs_limit, args.size)))
    for row, fn, severity in rows_for(name):
        seed = zlib.crc32(row.encode())
        sets.append((row, [(quantize8(fn(c[None], torch.Generator().manual_seed(seed + i), severity)[0].clamp(0, 1)), c)
                           for i, c in enumerate(clean)]))
    sets.append(("clean", [(quantize8(c), c) for c in clean]))
    rows = []
    one, zero = torch.ones(1), torch.zeros(1)
    for row, samples in sets:
        acc = {"input": [], "base": [], "bundled": [], "new": []}
        for degraded, ref in samples:
            acc["input"].append(_psnr(degraded, ref))
            acc["base"].append(_psnr(restorers["bundled"].restore(degraded, zero).image, ref))
            for label, r in restorers.items():
                acc[label].append(_psnr(r.restore(degraded, one).image, ref))
        rows.append({"task": row, "images": len(samples), **{k: statistics.fmean(v) for k, v in acc.items()}})
        print(json.dumps(rows[-1]), flush=True)
    result = {"adapter": name, "training": manifest.get("training", {}), "metrics": manifest.get("metrics", {}),
              "clean_set": args.clean.name, "images_per_task": len(clean), "crop": args.size or "whole",
              "rows": rows, "wall_s": round(time.time() - started, 1)}
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
