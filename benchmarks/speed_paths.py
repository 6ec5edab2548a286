"""Inference paths of the CPU speed issue, before and after, side by side in one run (issue #15).

    python benchmarks/speed_paths.py --out benchmarks/results/speed_paths.json
    python benchmarks/speed_paths.py --sizes 64 --tiled 128 --runs 1 --tile 64 --overlaps 16 8   # tiny (tests)

Every row goes through ``core.restore.restore`` on the bundled base in channels-last layout, as
`air restore` runs it, on a real photo (scikit-image's astronaut resized). Variants:
- *layer norm*: ``unfused`` is LayerNorm2d's eight elementwise passes (the code before this change),
  ``fused`` torch's layer_norm over the channels of the channels-last tensor;
- *overlap*: the tile overlap in pixels (128 before). The network's receptive field reaches 86 px
  from a pixel, and 99.9% of its gradient lies within 64 px (``receptive_field``).
Each row: median seconds (after a warm-up), ms per megapixel, and PSNR of its output against the
reference (unfused, overlap 128) — the issue asks ≥ 45 dB for every fast path.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from air_restore.core.io.files import atomic_write_text
from air_restore.core.arch import LayerNorm2d
from air_restore.core.metrics import psnr
from air_restore.core.restore import restore
from air_restore.registry.store import load_base


def _sibling(name: str):
    """Another script of benchmarks/ as a module (run as a script or loaded by path in the tests)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"bench_{name}", Path(__file__).with_name(f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def receptive_field(model, photo, size: int = 256) -> dict:
    """How far an output pixel's input gradient reaches: the largest distance with any gradient and the
    radius holding 99% / 99.9% of it (Chebyshev distance, centre pixel of a noisy photo)."""
    x = (photo(size, size) + 0.05 * torch.randn(3, size, size, generator=torch.Generator().manual_seed(0)))[None]
    x.requires_grad_(True)
    params = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    c = size // 2
    model(x, segment=False).image[0, :, c, c].sum().backward()
    for p, r in zip(model.parameters(), params):
        p.requires_grad_(r)
    g = x.grad[0].abs().sum(0)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    dist = torch.maximum((yy - c).abs(), (xx - c).abs())
    order = torch.argsort(dist.flatten())
    cum = torch.cumsum(g.flatten()[order], 0) / g.sum()
    reach = dist.flatten()[order]
    return {"extent": int(dist[g > 0].max()), "r99": int(reach[int((cum < 0.99).sum())]),
            "r999": int(reach[int((cum < 0.999).sum())])}


def _timed(fn, runs: int) -> tuple[float, torch.Tensor]:
    out, times = None, []
    for i in range(runs + 1):
        t = time.perf_counter()
        out = fn()
        if i:
            times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="*", default=[256, 512, 1024], help="square sizes run whole")
    ap.add_argument("--tiled", type=int, nargs="*", default=[2048], help="square sizes run in tiles")
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--overlaps", type=int, nargs="+", default=[128, 96, 64])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    speed, report = _sibling("speed"), _sibling("report")
    torch.set_num_threads(args.threads)
    model, info = load_base(device="cpu")
    model.eval()
    rf = receptive_field(model, speed._photo)
    print(json.dumps({"receptive_field": rf}), flush=True)
    rows = []

    def run(size: int, tile: int, overlap: int, fused: bool) -> tuple[float, torch.Tensor]:
        LayerNorm2d.fused = fused
        try:
            with torch.no_grad():
                return _timed(lambda: restore(model, x, tile=tile, overlap=overlap).image, args.runs)
        finally:
            LayerNorm2d.fused = True

    cases = [(s, s + 8, 8, "whole") for s in args.sizes]  # one tile covers the image
    cases += [(s, args.tile, o, f"tiled {args.tile}/{o}") for s in args.tiled for o in args.overlaps]
    refs: dict[int, torch.Tensor] = {}
    for size, tile, overlap, mode in cases:
        x = speed._photo(size, size)
        for fused in (False, True):
            if mode != "whole" and overlap != args.overlaps[0] and not fused:
                continue  # the smaller overlaps only on the fused path (the candidate)
            sec, out = run(size, tile, overlap, fused)
            if size not in refs:
                refs[size] = out  # the first case of each size: unfused, whole or the largest overlap
            mp = size * size / 1e6
            rows.append({"size": size, "mode": mode, "layer_norm": "fused" if fused else "unfused",
                         "median_s": sec, "ms_per_megapixel": 1000 * sec / mp,
                         "psnr_vs_reference": min(psnr(out, refs[size]).item(), 100.0)})
            print(json.dumps(rows[-1]), flush=True)
    result = {"commit": report._commit(), "machine": speed.cpu_model(), "threads": torch.get_num_threads(),
              "runs": args.runs,
              "base_fingerprint": info.fingerprint, "receptive_field": rf, "rows": rows}
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
