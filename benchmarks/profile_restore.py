"""Where `air restore`'s time goes on the CPU (issue #15): torch.profiler over the bundled pipeline's restore
(estimator, adapters merged once, tiles, the gate; everything but file I/O), grouped by operator.

    python benchmarks/profile_restore.py --sizes 512 2048 --threads 2 --out benchmarks/results/profile.json
    python benchmarks/profile_restore.py --sizes 64 --threads 1      # tiny (the tests do this)

For each size (speed.py's photo, resized to a square; tiles of 512 with overlap 128 as the CLI runs them), one
warm-up run, then one profiled run: self CPU time per operator (convolutions split into 1×1, depthwise 3×3
and other by their weight shape), as a share of the run's wall time, and ms per megapixel.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed import _photo, cpu_model  # noqa: E402  (the same photo and CPU record as speed.py)

from air_restore.core.io.files import atomic_write_text  # noqa: E402
from air_restore.registry.pipeline import load_restorer  # noqa: E402


def _conv_kind(shapes) -> str:
    """'conv 1×1', 'conv depthwise 3×3' or 'conv other' from a convolution's recorded input shapes."""
    if len(shapes) > 1 and len(shapes[1]) == 4:
        out_c, in_c, kh, kw = shapes[1]
        if kh == kw == 1:
            return "conv 1×1"
        if in_c == 1 and kh == kw == 3:
            return "conv depthwise 3×3"
    return "conv other"


def profile(restorer, x: torch.Tensor) -> tuple[float, dict[str, float]]:
    """(wall seconds, {operator group: self CPU seconds}) of one restore of ``x``."""
    from torch.profiler import ProfilerActivity, profile as torch_profile

    restorer.restore(x)  # warm-up: oneDNN primitives, channels_last copy of the weights
    with torch_profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        t = time.perf_counter()
        restorer.restore(x)
        wall = time.perf_counter() - t
    groups: dict[str, float] = defaultdict(float)
    for ev in prof.key_averages(group_by_input_shape=True):
        name = ev.key
        if name in ("aten::convolution", "aten::_convolution", "aten::conv2d"):
            continue  # wrappers: their time is in the backend op below
        if "conv" in name:  # the backend op that did the work (mkldnn, slow_conv2d, ...)
            name = _conv_kind(ev.input_shapes)
        groups[name] += ev.self_cpu_time_total / 1e6
    return wall, dict(groups)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 2048])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--top", type=int, default=12, help="operator groups listed per size")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    restorer = load_restorer()
    rows = []
    for size in args.sizes:
        x = _photo(size, size)
        wall, groups = profile(restorer, x)
        total = sum(groups.values())
        top = sorted(groups.items(), key=lambda kv: -kv[1])[: args.top]
        rows.append({"size": size, "wall_s": wall, "ms_per_mp": 1000 * wall / (size * size / 1e6),
                     "profiled_self_s": total,
                     "ops": [{"op": k, "self_s": v, "share": v / total} for k, v in top]})
        print(json.dumps(rows[-1]), flush=True)
    result = {"cpu": cpu_model(), "threads": args.threads, "torch": torch.__version__,
              "base_fingerprint": restorer.info.fingerprint, "adapters": restorer.adapters, "rows": rows}
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
