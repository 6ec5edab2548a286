"""An adapter trained on a widened family (`air train adapter --family`) against the bundled one (or
``--baseline``), alone and, with ``--pipeline``, in the whole pipeline.

    air train adapter noise --synthetic noise --family --clean ../shared/data/train/clean \
        --out runs/noise_fam --steps 400
    python benchmarks/family.py --adapter runs/noise_fam --clean ../shared/data/eval/CBSD68 \
        --pairs ../shared/data/pairs --limit 12 --out benchmarks/results/family_noise.json
    python benchmarks/family.py --adapter registry/weights/adapters/lowlight --baseline runs/lowlight_before \
        --pipeline --clean ../shared/data/eval/CBSD68 --pairs ../shared/data/pairs --limit 12 \
        --out benchmarks/results/family_lowlight.json
    python benchmarks/family.py --adapter DIR --clean DIR --limit 1 --size 64     # tiny (the tests do this)

Each adapter alone at weight 1 (others 0, the clean-pixel gate on, as `air restore` runs it), beside the
base alone, on: the held-out real pairs of its degradation (the last ``--pairs-limit`` of Rain100H for
rain, PolyU for noise; neither adapter saw them), its plugin at severity 0.5 and at a mild 0.15, each
variant of its widened family (``core.families``) at 0.5, the plugin at 0.5 then JPEG-compressed (quality
about 90 and 50, as photos are saved), and clean photos; for noise also noise without colour (:data:`LUMINANCE_ROWS`:
grey photos, and colour photos with one noise draw for all channels), compared with the grey photo where it is one.
The family rows are the new adapter's own training distribution, so only the real pairs, the clean row and the
rows without colour (written apart from the synthesizer it trains on) are an independent test.
With ``--pipeline``, also: the pipeline as `air restore` runs it (every bundled adapter blended by the
bundled estimator, the fallback and the gate) with the baseline and with the new adapter in its place, the
estimator's mean weight for it, every stacked degradation of the blending table that holds it, and every
real paired set. Image i of a row uses seed crc32(row) + i.
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
from blending import ALL_STACKS, PAIRS, _crop, _psnr, held_out_pairs, pipeline, stacked  # noqa: E402

from air_restore.core import degradations as D  # noqa: E402
from air_restore.core.io.files import atomic_write_text  # noqa: E402
from air_restore.core.families import FAMILIES, luma  # noqa: E402
from air_restore.core.io.images import iter_image_paths, read_image  # noqa: E402
from air_restore.core.metrics import quantize8  # noqa: E402
from air_restore.registry.adapters import read_manifest  # noqa: E402
from air_restore.registry.discovery import get_degradation  # noqa: E402
from air_restore.registry.pipeline import Restorer  # noqa: E402
from air_restore.registry.store import BUNDLED_FLOORED, bundled_adapters, load_base  # noqa: E402


def _luminance_noise(sigma: float, grey: bool):
    """Gaussian noise of ``sigma`` (8-bit levels), one draw for all three channels, on the photo or on it made grey:
    written here, apart from ``core.degradations.mono_noise`` that the noise adapter's family draws from."""
    def synth(x: torch.Tensor, g: torch.Generator, s: float) -> torch.Tensor:
        base = _grey(x) if grey else x
        return base + sigma / 255 * torch.randn((x.shape[0], 1, *x.shape[2:]), generator=g)
    return synth


def _grey(x: torch.Tensor) -> torch.Tensor:
    """The photo grey, in 8 bits as a grey file holds it."""
    return quantize8(luma(x))


#: Rows of photos whose noise has no colour (grey photos and scans, a phone's luma noise), for the noise adapter;
#: the fourth field makes the reference grey too.
LUMINANCE_ROWS = [
    ("grey photo, noise σ 10", _luminance_noise(10, True), 0.5, _grey),
    ("grey photo, noise σ 25", _luminance_noise(25, True), 0.5, _grey),
    ("luminance noise σ 10", _luminance_noise(10, False), 0.5, None),
    ("luminance noise σ 20", _luminance_noise(20, False), 0.5, None),
    ("grey photo, clean", lambda x, g, s: _grey(x), 0.5, _grey),
]


def rows_for(name: str) -> list[tuple]:
    """(row name, synthesizer, severity[, reference]) of the synthetic rows for adapter ``name``; ``reference``
    maps the clean photo to the one to compare with (the photo itself where absent)."""
    plugin = get_degradation(name).synthesize
    rows = [(f"{name} 0.5", plugin, 0.5), (f"{name} 0.15", plugin, 0.15)]
    variants = FAMILIES[name][0] if name in FAMILIES else ()
    rows += [(f"family: {fn.__name__.strip('_')} 0.5", fn, 0.5) for fn in variants if fn is not plugin]
    for q, js in ((90, 0.1), (50, 0.5)):
        rows.append((f"{name} 0.5 + jpeg q≈{q}", lambda x, g, s, js=js: D.jpeg(plugin(x, g, s).clamp(0, 1), g, js), 0.5))
    return rows + (LUMINANCE_ROWS if name == "noise" else [])


def stacked_rows(name: str) -> list[tuple[str, object, float]]:
    """The stacked degradations of the blending table (``--stacks all``) that hold ``name``."""
    return [("+".join(parts), lambda x, g, s, parts=parts: stacked(x[0], parts, g, s)[None], 0.5)
            for parts in ALL_STACKS if name in parts]


def synthetic_sets(rows: list[tuple], clean: list[torch.Tensor]) -> list[tuple[str, list]]:
    """(row name, [(degraded, reference)]) for each (row, synthesizer, severity[, reference]) of ``rows`` over the
    ``clean`` photos [3, H, W]; image i of a row uses seed crc32(row) + i, the degraded photo in 8 bits."""
    sets = []
    for row, fn, severity, *ref in rows:
        seed = zlib.crc32(row.encode())
        to_ref = ref[0] if ref and ref[0] is not None else (lambda x: x)
        sets.append((row, [(quantize8(fn(c[None], torch.Generator().manual_seed(seed + i), severity)[0].clamp(0, 1)),
                            to_ref(c[None])[0]) for i, c in enumerate(clean)]))
    return sets


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--adapter", type=Path, required=True, help="the new adapter folder (a bundled name)")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="the adapter folder to compare with (default: the bundled one of that name)")
    ap.add_argument("--pipeline", action="store_true",
                    help="also the whole pipeline with each, stacked rows that hold it and every real pair set")
    ap.add_argument("--clean", type=Path, required=True, help="clean photos (CBSD68)")
    ap.add_argument("--pairs", type=Path, default=None, help="folder holding the real paired sets")
    ap.add_argument("--limit", type=int, default=0, help="images per synthetic row (0 = all)")
    ap.add_argument("--pairs-limit", type=int, default=20, help="pairs per real set (of its held-out 20%%)")
    ap.add_argument("--size", type=int, default=0, help="centre-crop side (0 = whole images)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    started = time.time()
    manifest = read_manifest(args.adapter)
    name = manifest["name"]
    bundled = {a.name: a.path for a in bundled_adapters()}
    if name not in bundled:
        raise SystemExit(f"{args.adapter}: adapter {name!r} is not a bundled one; nothing to compare with")
    baseline = args.baseline or bundled[name]
    # The degradation its rows draw: a floor's own adapter (lumanoise) was learnt on its plugin's family (noise).
    kind = manifest.get("training", {}).get("data", {}).get("plugin", name) if name in BUNDLED_FLOORED else name
    restorers, pipes = {}, {}
    for label, folder in (("bundled", baseline), ("new", args.adapter)):
        restorers[label] = Restorer(*load_base())
        restorers[label].attach_folder(folder)
        if args.pipeline:  # every bundled adapter, this one swapped, and the bundled estimator
            pipes[label] = pipeline(folders=[folder if a == name else p for a, p in bundled.items()])
    clean = [_crop(read_image(p).rgb, args.size) for p in iter_image_paths([args.clean])[: args.limit or None]]
    sets: list[tuple[str, list]] = []
    if args.pairs is not None:
        for folder, parts in PAIRS.items():
            root = args.pairs / folder
            if (parts != (kind,) and not args.pipeline) or not root.is_dir():
                continue
            sets.append((f"real: {folder} (held out)", held_out_pairs(root, args.pairs_limit, args.size)))
    sets += synthetic_sets(rows_for(kind) + (stacked_rows(kind) if args.pipeline else []), clean)
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
            for label, r in pipes.items():
                w, strength, _ = r.route(degraded)
                acc.setdefault(f"pipeline_{label}", []).append(
                    _psnr(r.restore(degraded, w, strength=strength, also_clean=r.also_clean(w, degraded)).image, ref))
                acc.setdefault(f"weight_{label}", []).append(float(w[r.adapters.index(name)]))
        rows.append({"task": row, "images": len(samples), **{k: statistics.fmean(v) for k, v in acc.items()}})
        print(json.dumps(rows[-1]), flush=True)
    result = {"adapter": name, "training": manifest.get("training", {}), "metrics": manifest.get("metrics", {}),
              "baseline": {"path": str(baseline), "created": read_manifest(baseline).get("created")},
              "pipeline": bool(args.pipeline),
              "clean_set": args.clean.name, "images_per_task": len(clean), "crop": args.size or "whole",
              "rows": rows, "wall_s": round(time.time() - started, 1)}
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
