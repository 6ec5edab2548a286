"""CPU inference before and after the allocator and tiling changes, side by side in one run (issue #15).

    python benchmarks/speed_cpu.py --out benchmarks/results/speed_cpu.json
    python benchmarks/speed_cpu.py --sizes 64 --tiled 200 --big 0 --runs 1 --threads 1 --scale 8   # tiny (tests)

Each variant runs in a fresh process, because the allocator setting (``core.runtime.keep_freed_memory``)
holds for a whole process and so does its peak memory:

- *before*: glibc's allocator as it comes (``AIR_SYSTEM_MALLOC=1``), the tiling before this change
  (tiles of exactly ``--tile``, the last overlapping its neighbour by whatever is left) and 512/128;
- *allocator*: the same with freed memory kept for reuse;
- *even tiles*: and ``core.tiling.tile_spans`` sharing the length evenly among as few tiles as fit;
- then the same with other tile sizes and overlaps; the last is the default (core/defaults.py).

Every row goes through ``core.restore.restore`` with the gate and ``--precision`` (default ``auto``, what
``air restore`` runs: bf16 on a CPU with native bf16, else fp32; the result records which), adapters merged
once per image cost nothing per pixel) on a real photo (scikit-image's astronaut, resized). ``--sizes`` run
whole (one tile), ``--tiled`` and the ``--big`` × 3/4 photo in tiles. Rows: median seconds of ``--runs``
after a warm-up (one run for the big photo), ms per megapixel, the process's peak memory after the big
photo (VmHWM; it runs first), and the PSNR of each output against the *before* variant's output of the
same size: the speed issue asks ≥ 45 dB of every fast path.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from air_restore.core.io.files import atomic_write_text

#: (name, keep freed memory, even tiles, tile, overlap); the first is the reference of every PSNR.
VARIANTS = [
    ("before", False, False, 512, 128),
    ("allocator", True, False, 512, 128),
    ("even tiles", True, True, 512, 128),
    ("overlap 64", True, True, 512, 64),
    ("tile 768/64", True, True, 768, 64),
    ("tile 1024/96", True, True, 1024, 96),
    ("tile 768/96", True, True, 768, 96),
    ("tile 1024/128", True, True, 1024, 128),
    ("tile 1280/128", True, True, 1280, 128),
    ("tile 768/128", True, True, 768, 128),  # the default (core/defaults.py)
]


def _sibling(name: str):
    """Another script of benchmarks/ as a module (run as a script or loaded by path in the tests)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"bench_{name}", Path(__file__).with_name(f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def uneven_spans(length: int, tile: int, overlap: int, *, align: int = 1) -> list[tuple[int, int]]:
    """``core.tiling.tile_spans`` before this change: tiles of exactly ``tile``, the last one flush with the
    end (so it overlaps its neighbour by up to ``tile`` − 1 px)."""
    if length <= tile + align - 1:
        return [(0, length)]
    starts = list(range(0, length - tile, tile - overlap))
    last = (length - tile) // align * align
    if last > starts[-1]:
        starts.append(last)
    return list(zip(starts, [s + tile for s in starts[:-1]] + [length]))


def _scaled(px: int, scale: int) -> int:
    return max(8, round(px / scale / 8) * 8)


def _peak_mb() -> float:
    text = Path("/proc/self/status").read_text() if Path("/proc/self/status").exists() else ""
    line = next((ln for ln in text.splitlines() if ln.startswith("VmHWM")), "VmHWM: 0 kB")
    return int(line.split()[1]) / 1024


def child(spec: dict) -> None:
    """One variant in this process: time every case, save the outputs for the parent's PSNR, print JSON."""
    from safetensors.torch import save_file

    from air_restore.core import restore as restore_mod
    from air_restore.core import tiling
    from air_restore.core.runtime import keep_freed_memory
    from air_restore.registry.store import load_base

    torch.set_num_threads(spec["threads"])
    if not spec["even"]:
        tiling.tile_spans = uneven_spans  # tiled_forward looks it up at call time
    photo = _sibling("speed")._photo
    model = load_base()[0].eval()
    restore_mod.restore(model, photo(64, 64), gate=True)  # warm-up (and the allocator setting, where on)
    kept = keep_freed_memory()
    rows, outputs = [], {}
    for h, w, tiled, runs in spec["cases"]:
        x = photo(h, w)
        tile, overlap = (spec["tile"], spec["overlap"]) if tiled else (max(h, w) + 8, 8)
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            out = restore_mod.restore(model, x, tile=tile, overlap=overlap, gate=True,
                                      precision=spec.get("precision", "auto")).image
            times.append(time.perf_counter() - t)
        outputs[f"{h}x{w}"] = out.contiguous()
        sec = statistics.median(times)
        rows.append({"height": h, "width": w, "mode": f"tiled {tile}/{overlap}" if tiled else "whole",
                     "runs": runs, "median_s": sec, "ms_per_megapixel": 1000 * sec / (h * w / 1e6),
                     "peak_mb_so_far": _peak_mb()})
    save_file(outputs, spec["outputs"])
    print(json.dumps({"rows": rows, "kept_freed_memory": kept}))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="*", default=[256, 512, 1024], help="square sizes run whole")
    ap.add_argument("--tiled", type=int, nargs="*", default=[2048], help="square sizes run in tiles")
    ap.add_argument("--big", type=int, default=4000, help="width of the big photo (height 3/4 of it; 0 = none)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, nargs="+", default=[2, 1],
                    help="torch threads; every variant runs at the first, *before* and the last variant at the others")
    ap.add_argument("--variants", nargs="*", default=None, help="names of VARIANTS to run (default: all)")
    ap.add_argument("--scale", type=int, default=1, help="divide every variant's tile and overlap by this "
                    "(multiples of 8, at least 8; for tiny test images)")
    ap.add_argument("--precision", default="auto", help="core.runtime.PRECISIONS: what every variant computes in")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.child:
        child(json.loads(args.child))
        return {}
    from air_restore.core.metrics import psnr
    from safetensors.torch import load_file

    report, speed = _sibling("report"), _sibling("speed")
    cases = ([(args.big * 3 // 4, args.big, True, 1)] if args.big else [])  # first: the peak memory is its own
    cases += [(s, s, True, args.runs) for s in args.tiled] + [(s, s, False, args.runs) for s in args.sizes]
    variants = [(name, keep, even, _scaled(tile, args.scale), _scaled(overlap, args.scale))
                for name, keep, even, tile, overlap in VARIANTS
                if args.variants is None or name in args.variants or name == "before"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for threads in args.threads:
            ref = None
            for k, (name, keep, even, tile, overlap) in enumerate(variants):
                if threads != args.threads[0] and 0 < k < len(variants) - 1:
                    continue
                outputs = str(Path(tmp) / f"{threads}-{k}.safetensors")
                spec = {"even": even, "tile": tile, "overlap": overlap, "threads": threads, "cases": cases,
                        "outputs": outputs, "precision": args.precision}
                env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
                env.pop("AIR_SYSTEM_MALLOC", None)
                if not keep:
                    env["AIR_SYSTEM_MALLOC"] = "1"
                proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], env=env,
                                      capture_output=True, text=True)
                if proc.returncode:
                    raise SystemExit(f"variant {name!r} failed:\n{proc.stderr}")
                res = json.loads(proc.stdout.strip().splitlines()[-1])
                out = load_file(outputs)
                ref = ref or out
                for r in res["rows"]:
                    key = f"{r['height']}x{r['width']}"
                    rows.append({"variant": name, "threads": threads, "kept_freed_memory": res["kept_freed_memory"],
                                 **r, "psnr_vs_before": min(100.0, psnr(out[key], ref[key]).item())})
                    print(json.dumps(rows[-1]), flush=True)
    from air_restore.core.runtime import resolve_precision

    auto = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(
        resolve_precision(args.precision, torch.device("cpu")), "fp32")
    result = {"commit": report._commit(), "machine": speed.cpu_model(), "precision": auto,
              "precision_asked": args.precision, "runs": args.runs,
              "rows": rows}
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
