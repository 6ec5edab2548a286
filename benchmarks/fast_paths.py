"""Every fast path of `air restore` against the fp32 reference, per task (issue #15, item 4).

    python benchmarks/fast_paths.py --clean ../shared/data/eval/CBSD68 --limit 12 --half-limit 3 \
        --out benchmarks/results/fast_paths.json
    python benchmarks/fast_paths.py --clean DIR --limit 1 --half-limit 0 --tasks noise   # tiny (the tests)

The speed issue asks that no fast path moves quality: its output ≥ 45 dB PSNR against the reference
output on the shipped examples and on 12 CBSD68 photos per task, and the PSNR change per task stated.

*Reference*: the bundled pipeline (estimator, adapters, gate) as `air restore` routes each photo, but
computed the slow, plain way: the whole photo as one tile, LayerNorm2d as eight elementwise passes, the
adapters applied unmerged (x·W0 + x·AᵀBᵀ per layer), fp32. Each *fast path* changes one of those, as
`air restore` does it:
- *fused layer norm*: torch's layer_norm over the channels of the channels-last tensor;
- *merged adapters*: the adapters merged into each 1×1 conv's weight once per photo;
- *tiles 256/128*: tiles of 256 px at the default overlap (more seams than the default 768 px tiles
  make on any photo, so a stress test of the stitching), one at a time;
- *tiles 256/128, 4 at once*: the same tiles in batches of four (the GPU path's batching);
- *as `air restore` (CPU)*: everything `air restore` does on this CPU together (fused, merged, default
  tiles, fp32);
- *bf16 / fp16 autocast*: what a GPU (or a CPU with native bf16) runs; emulated on a CPU without it,
  about 20× slower there, hence only on the first ``--half-limit`` photos of each task.

Per task and path: the lowest and the mean PSNR of the path's output against the reference's, and the
change of the mean PSNR against the clean photo (the quality a user sees move). The shipped examples
have no clean photo: PSNR against the reference only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from air_restore.core.arch import LayerNorm2d
from air_restore.core.defaults import OVERLAP, TILE
from air_restore.core.io.files import atomic_write_text
from air_restore.core.io.images import iter_image_paths, read_image
from air_restore.core.metrics import psnr, quantize8
from air_restore.registry.discovery import get_degradation
from air_restore.registry.pipeline import load_restorer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import _commit  # noqa: E402  (the same commit stamp as every table)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TASKS = ("noise", "blur", "haze", "rain", "lowlight", "snow", "jpeg")
SEVERITY = 0.5
#: (name, settings); settings not given are the reference's: whole photo, unfused, unmerged, fp32.
PATHS = (
    ("fused layer norm", {"fused": True}),
    ("merged adapters", {"mode": "merged"}),
    ("tiles 256/128", {"tile": 256}),
    ("tiles 256/128, 4 at once", {"tile": 256, "tile_batch": 4}),
    ("as `air restore` (CPU)", {"fused": True, "mode": "merged", "tile": TILE}),
    ("bf16 autocast", {"precision": "bf16", "half": True}),
    ("fp16 autocast", {"precision": "fp16", "half": True}),
)


@contextmanager
def _settings(r, fused: bool, mode: str):
    old = LayerNorm2d.fused, r.mode
    LayerNorm2d.fused, r.mode = fused, mode
    try:
        yield
    finally:
        LayerNorm2d.fused, r.mode = old


def run_path(r, x: torch.Tensor, w: torch.Tensor, strength: float, *, fused: bool = False, mode: str = "unmerged",
             tile: int | None = None, tile_batch: int = 1, precision: str = "fp32", half: bool = False) -> torch.Tensor:
    """The pipeline's output for photo ``x`` at weights ``w``, computed the way the settings say."""
    align = r.model.config.pad_multiple
    whole = (max(x.shape[1:]) + OVERLAP) // align * align + align  # larger than the photo: one tile
    with _settings(r, fused, mode):
        return r.restore(x, w, strength=strength, tile=tile or whole, overlap=OVERLAP, tile_batch=tile_batch,
                         precision=precision, also_clean=r.also_clean(w, x)).image


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clean", type=Path, required=True, help="clean photos (CBSD68)")
    ap.add_argument("--limit", type=int, default=12, help="photos per task")
    ap.add_argument("--half-limit", type=int, default=3, help="photos per task for the bf16/fp16 paths (slow on a "
                    "CPU without them)")
    ap.add_argument("--tasks", nargs="+", default=list(TASKS))
    ap.add_argument("--examples", type=Path, default=EXAMPLES, help="the shipped examples (no clean photo)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    r = load_restorer()
    photos = [read_image(p).rgb for p in iter_image_paths([args.clean])[: args.limit]]
    sets = []
    for t, task in enumerate(args.tasks):
        synth = get_degradation(task).synthesize
        sets.append((task, [(quantize8(synth(c[None], torch.Generator().manual_seed(100 * t + i), SEVERITY)[0]
                                       .clamp(0, 1)), c) for i, c in enumerate(photos)]))
    if args.examples and args.examples.is_dir():
        sets.append(("shipped examples", [(read_image(p).rgb, None) for p in iter_image_paths([args.examples])]))
    rows = []
    for task, samples in sets:
        per_path = {name: {"vs_reference": [], "ref_vs_clean": [], "vs_clean": []} for name, _ in PATHS}
        for i, (x, clean) in enumerate(samples):
            w, strength = r.assess(x)
            ref = run_path(r, x, w, strength)
            for name, settings in PATHS:
                if settings.get("half") and i >= args.half_limit:
                    continue
                out = run_path(r, x, w, strength, **settings)
                acc = per_path[name]
                acc["vs_reference"].append(min(psnr(out, ref).item(), 100.0))
                if clean is not None:
                    acc["vs_clean"].append(psnr(out, clean).item())
                    acc["ref_vs_clean"].append(psnr(ref, clean).item())
        for name, acc in per_path.items():
            if not acc["vs_reference"]:
                continue
            row = {"task": task, "path": name, "images": len(acc["vs_reference"]),
                   "min_psnr_vs_reference": min(acc["vs_reference"]),
                   "mean_psnr_vs_reference": statistics.fmean(acc["vs_reference"])}
            if acc["vs_clean"]:
                row["quality_change_db"] = statistics.fmean(acc["vs_clean"]) - statistics.fmean(acc["ref_vs_clean"])
            rows.append(row)
            print(json.dumps(row), flush=True)
    res = {"commit": _commit(), "adapters": r.adapters, "severity": SEVERITY, "threads": args.threads,
           "clean": args.clean.name, "limit": args.limit, "half_limit": args.half_limit,
           "wall_s": time.perf_counter() - t0, "rows": rows}
    if args.out:
        atomic_write_text(args.out, json.dumps(res, indent=1) + "\n")
    return res


if __name__ == "__main__":
    main()
