"""Peak memory of `air restore`, measured against core.memory's prediction.

    python benchmarks/memory.py --out benchmarks/results/memory.json          # the grid, ~8 minutes
    python benchmarks/memory.py --fit --out benchmarks/results/memory.json    # and refit the constants
    python benchmarks/memory.py --sizes 256x192 --tiles 128 --out /tmp/m.json  # tiny (the tests do this)

Each row runs `air restore` on a JPEG of the given size (a real photo resized, scikit-image's astronaut)
in a fresh process on the CPU and reads that process's own peak resident memory (VmHWM from
/proc/self/status as it exits: start-up, loading the pipeline, reading, restoring and writing). The
prediction is ``core.memory.predict`` for the same image, tile and options, so the table shows how far
the model is off. ``--fit`` solves for the constants (fixed, per image pixel, per tile pixel) by least
squares over the plain rows and prints them, to be copied into core/memory.py by hand. Linux only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from air_restore.core import memory
from air_restore.core.defaults import OVERLAP
from air_restore.core.io.files import atomic_write_text

#: `air restore ...` that prints its own /proc/self/status to stderr when it exits.
REPORT_PEAK = (
    "import sys\n"
    "from air_restore.cli.main import app\n"
    "try:\n"
    "    app(sys.argv[1:])\n"
    "finally:\n"
    "    try:\n"
    "        print(open('/proc/self/status').read(), file=sys.stderr)\n"
    "    except OSError:\n"
    "        pass\n"
)


def photo_jpeg(path: Path, width: int, height: int) -> Path:
    """A real photo resized to width × height, saved as a JPEG (a phone photo's format)."""
    from skimage import data

    Image.fromarray(data.astronaut()).resize((width, height), Image.BICUBIC).save(path, quality=92)
    return path


def peak_of_restore(src: Path, *args: str, env: dict[str, str] | None = None) -> tuple[float, float]:
    """(peak resident bytes, wall seconds) of `air restore SRC ARGS` in a fresh process on the CPU: the child's own
    high-water mark (VmHWM), not RUSAGE_CHILDREN, which on Linux also counts the parent's pages it was forked
    with (speed.py uses this too)."""
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", REPORT_PEAK, "restore", str(src), "--device", "cpu", *args],
                          capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})
    wall = time.perf_counter() - t
    if proc.returncode:
        raise RuntimeError(f"air restore {src.name} {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    m = re.search(r"VmHWM:\s+(\d+) kB", proc.stderr)
    if m is None:
        raise RuntimeError("no VmHWM in /proc/self/status: this needs Linux")
    return int(m.group(1)) * 1024.0, wall


def run_row(tmp: Path, width: int, height: int, tile: int, *, explain: bool = False, tta: bool = False) -> dict:
    src = photo_jpeg(tmp / f"photo_{width}x{height}.jpg", width, height)
    args = ["--tile", str(tile), "--overwrite", "-o", str(tmp / "out.jpg")]
    args += ["--explain"] * explain + ["--tta"] * tta
    peak, wall = peak_of_restore(src, *args)
    need = memory.predict(height, width, tile=tile, overlap=OVERLAP, explain=explain, tta=tta)
    row = {"width": width, "height": height, "tile": tile, "tile_shape": list(need.tile_shape), "explain": explain,
           "tta": tta, "peak_mb": round(peak / 1e6, 1), "predicted_mb": round(need.total / 1e6, 1),
           "error_pct": round(100 * (need.total - peak) / peak, 1), "wall_s": round(wall, 1)}
    print(json.dumps(row), flush=True)
    return row


def fit(rows: list[dict]) -> dict:
    """Least-squares constants (bytes) of the plain rows: fixed, per image pixel, per tile pixel."""
    plain = [r for r in rows if not r["explain"] and not r["tta"]]
    a = np.array([[1.0, r["width"] * r["height"], r["tile_shape"][0] * r["tile_shape"][1]] for r in plain])
    b = np.array([r["peak_mb"] * 1e6 for r in plain])
    (fixed, per_pixel, per_tile_pixel), *_ = np.linalg.lstsq(a, b, rcond=None)
    return {"fixed_bytes": round(fixed), "image_bytes_per_pixel": round(per_pixel, 1),
            "tile_bytes_per_pixel": round(per_tile_pixel, 1)}


def _size(text: str) -> tuple[int, int]:
    w, _, h = text.partition("x")
    return int(w), int(h)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=_size, nargs="+", default=[(64, 64), (1024, 768), (2048, 1536), (3000, 2250)],
                    help="WIDTHxHEIGHT of the test images")
    ap.add_argument("--tiles", type=int, nargs="+", default=[256, 512, 768, 1024])
    ap.add_argument("--options-size", type=_size, default=(2048, 1536),
                    help="the size --explain and --tta are measured at (at the default tile); 0x0 to skip")
    ap.add_argument("--fit", action="store_true", help="print least-squares constants for core/memory.py")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for w, h in args.sizes:
            for tile in (args.tiles if w * h > 64 * 64 else args.tiles[:1]):
                rows.append(run_row(Path(tmp), w, h, tile))
        if args.options_size != (0, 0):
            w, h = args.options_size
            rows.append(run_row(Path(tmp), w, h, 768, explain=True))
            rows.append(run_row(Path(tmp), w, h, 768, tta=True))
    result = {"rows": rows, "constants": {
        "fixed_bytes": memory.FIXED_BYTES, "image_bytes_per_pixel": memory.IMAGE_BYTES_PER_PIXEL,
        "explain_bytes_per_pixel": memory.EXPLAIN_BYTES_PER_PIXEL, "tta_bytes_per_pixel": memory.TTA_BYTES_PER_PIXEL,
        "tile_bytes_per_pixel": memory.TILE_BYTES_PER_PIXEL},
        "max_abs_error_pct": max(abs(r["error_pct"]) for r in rows), "overlap": OVERLAP,
        "threads": os.cpu_count(), "machine": platform.processor() or platform.machine(),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parents[1],
                                 capture_output=True, text=True).stdout.strip()}
    if args.fit:
        result["fit"] = fit(rows)
        print("fit:", json.dumps(result["fit"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
