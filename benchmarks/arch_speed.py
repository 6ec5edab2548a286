"""What the CPU allows: the base's cost against the machine's own peak, and candidate base-v2 shapes (#15, #18).

    python benchmarks/arch_speed.py --out benchmarks/results/arch_speed.json
    python benchmarks/arch_speed.py --sizes 64 --runs 1 --configs v1 w16   # tiny (the tests do this)

The speed issue asks ≤ 1600 ms per megapixel on 2 threads. No inference trick can beat the arithmetic:
a network of F GFLOP per megapixel on a CPU that multiplies at P GFLOP/s needs at least F / P seconds
per megapixel. This script measures both sides on the machine it runs on:

- *peak*: the best GFLOP/s of a large fp32 matrix product (torch.mm, 2048³; ten runs, half before the
  timings and half after), the best case for any convolution, since a 1×1 convolution in channels-last
  layout is exactly such a product. The best and not the median: on a shared machine the median measures
  the neighbours;
- per architecture (``CANDIDATES``, AirUNetConfig fields): parameters, GFLOP per megapixel (torch's
  FlopCounterMode over one forward with the segmentation head, which the gate of ``air restore`` reads:
  2 FLOPs per multiply-add, convolutions and matrix products only), and ms per megapixel through
  ``core.restore.restore`` with the gate, each size as one tile, as ``air restore`` runs it. Weights are
  drawn at random (speed does not depend on their values), the same way for every row, so ``v1`` (the
  bundled shape) times the same code as the candidates. Rows are timed round-robin, size by size, so the
  noise of this shared machine falls on every row alike.

Each row states the floor F / P and how far the measured time is above it. Quality is not measured here:
a candidate shape has to be trained (the base-v2 issue) before it can be compared.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from air_restore.core.arch import AirUNet, AirUNetConfig, count_parameters
from air_restore.core.io.files import atomic_write_text
from air_restore.core.restore import restore
from air_restore.core.runtime import resolve_precision

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import _commit  # noqa: E402  (the same commit stamp as every table)
from speed import cpu_model  # noqa: E402

#: Shapes to weigh for base-v2 (AirUNetConfig fields). v1 is the bundled base. The others keep its
#: blocks and trade full-resolution width (memory-bound on a CPU) for depth at the low levels (where the
#: 1×1 convolutions run near the machine's peak).
CANDIDATES: dict[str, dict] = {
    "v1": {},
    "w20": {"width": 20},
    "w16": {"width": 16},
    "w16-deep": {"width": 16, "enc_blocks": (1, 2, 6), "middle_blocks": 10, "dec_blocks": (2, 2, 1)},
    "w24-lean": {"width": 24, "enc_blocks": (1, 1, 4), "middle_blocks": 6, "dec_blocks": (2, 1, 1)},
    "w16-4lvl": {"width": 16, "enc_blocks": (1, 1, 2, 4), "middle_blocks": 6, "dec_blocks": (2, 2, 1, 1)},
}


def matmul_peak(n: int = 2048, runs: int = 5, dtype: torch.dtype = torch.float32) -> float:
    """GFLOP/s of an n×n×n matrix product in ``dtype`` (the fastest of ``runs`` after a warm-up)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - t)
    return 2 * n**3 / min(times) / 1e9


def build(name: str, seed: int = 0) -> AirUNet:
    """A randomly initialised AirUNet of CANDIDATES[name], residual scales non-zero (a fresh block is the
    identity otherwise, which computes the same but is not what a trained network looks like)."""
    torch.manual_seed(seed)
    model = AirUNet(config=AirUNetConfig(**CANDIDATES[name])).eval()
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.endswith(("beta", "gamma")):
                p.fill_(0.1)
    return model


def gflop_per_megapixel(model: AirUNet, size: int = 128) -> float:
    """FLOPs of one forward with the segmentation head, per megapixel of input."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.rand(1, 3, size, size), segment=True)
    return counter.get_total_flops() / (size * size / 1e6) / 1e9


def _photo(size: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(size)
    return torch.rand(3, size, size, generator=g)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024], help="square sizes, each as one tile")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                    help="what the network computes in (autocast), and the matrix product that sets the peak")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    dtype = resolve_precision(args.precision, torch.device("cpu"))

    peak = matmul_peak(dtype=dtype)
    models = {name: build(name) for name in args.configs}
    fields = {"width", "enc_blocks", "middle_blocks", "dec_blocks"}
    rows = {name: {"name": name, "config": m.config.model_dump(mode="json", include=fields),
                   "params": count_parameters(m), "gflop_per_mp": gflop_per_megapixel(m), "ms_per_mp": {}}
            for name, m in models.items()}
    for size in args.sizes:
        photo = _photo(size)
        times: dict[str, list[float]] = {name: [] for name in models}
        for i in range(args.runs + 1):  # the first round is the warm-up
            for name, m in models.items():
                t = time.perf_counter()
                restore(m, photo, tile=size + 256, gate=True, precision=args.precision)  # one tile
                if i:
                    times[name].append(time.perf_counter() - t)
        for name, ts in times.items():
            rows[name]["ms_per_mp"][str(size)] = statistics.median(ts) * 1000 / (size * size / 1e6)
    peak = max(peak, matmul_peak(dtype=dtype))
    for r in rows.values():
        worst = max(r["ms_per_mp"].values())
        r["floor_ms_per_mp"] = r["gflop_per_mp"] / peak * 1000
        r["gflop_per_s"] = r["gflop_per_mp"] / (worst / 1000)
        r["share_of_peak"] = r["gflop_per_s"] / peak
    res = {"commit": _commit(), "machine": {**cpu_model(), "arch": platform.machine(),
                                            "threads": args.threads, "torch": torch.__version__},
           "precision": args.precision, "matmul_peak_gflops": peak, "runs": args.runs, "sizes": args.sizes,
           "rows": list(rows.values())}
    if args.out:
        atomic_write_text(args.out, json.dumps(res, indent=2) + "\n")
    for r in rows.values():
        print(f"{r['name']:10s} {r['params'] / 1e6:5.2f} M  {r['gflop_per_mp']:6.1f} GFLOP/MP  floor "
              f"{r['floor_ms_per_mp']:5.0f}  " + "  ".join(f"{s}²: {v:5.0f}" for s, v in r["ms_per_mp"].items())
              + f" ms/MP  ({r['share_of_peak']:.0%} of peak {peak:.0f} GFLOP/s)")
    return res


if __name__ == "__main__":
    main()
