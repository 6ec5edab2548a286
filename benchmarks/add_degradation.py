"""`air add-degradation NAME` end to end, timed, in a fresh local store (issue #3's worked example).

    python benchmarks/add_degradation.py --name snow --data ../shared/data/train/clean \
        --out benchmarks/results/add_snow.json   # at 7b45269, before snow was bundled: how the bundled one was made
    python benchmarks/add_degradation.py --name sleet --plugin snow --data DIR --steps 2 --estimator-steps 2 \
        --eval-images 1   # tiny
    python benchmarks/add_degradation.py --name snow --data runs/clean200 --steps 300 --estimator-steps 800 \
        --time-budget 8 --out benchmarks/results/add_snow_budget.json   # before snow was bundled
    python benchmarks/add_degradation.py --pairs --data ../shared/data/pairs/noise_real_PolyU --name realnoise \
        --holdout 0.2 --eval-images 20 --out benchmarks/results/add_realnoise.json   # real pairs, 80/20

Runs the real command in a subprocess with ``AIR_HOME`` pointing at a temporary folder (your own store
is not touched), so the wall time includes everything a user waits for: loading the photos, training
the adapter, retraining the estimator, the before/after evaluation on every task, installing. The
before/after table is held-out PSNR of the whole pipeline (estimator-blended adapters).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from air_restore.core.io.files import atomic_write_text


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="clean photos (with --pairs: degraded/ + clean/)")
    ap.add_argument("--pairs", action="store_true", help="--data holds real pairs; no synthesizer (--plugin unused)")
    ap.add_argument("--holdout", type=float, default=0.1, help="share held out, passed on")
    ap.add_argument("--clean", type=Path, default=None, help="photos for the other adapters, passed on")
    ap.add_argument("--estimator-update", default=None, help="passed on (distill, new-only, all)")
    ap.add_argument("--name", required=True, help="the new adapter's name (not a bundled one)")
    ap.add_argument("--plugin", default=None, help="the synthesizer's plugin (default: --name)")
    ap.add_argument("--steps", type=int, default=None, help="passed on (default: the command's own)")
    ap.add_argument("--rank", type=int, default=None, help="passed on (default: the command's own)")
    ap.add_argument("--estimator-steps", type=int, default=3200)
    ap.add_argument("--eval-images", type=int, default=16)
    ap.add_argument("--crop", type=int, default=96)
    ap.add_argument("--time-budget", type=float, default=None, help="minutes, passed on (air add-degradation)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--home", type=Path, default=None,
                    help="keep the store ($AIR_HOME) in this new folder, to look at the result (default: a temporary one)")
    args = ap.parse_args(argv)
    if args.home is not None:
        args.home.mkdir(parents=True, exist_ok=False)  # a new folder: never someone's store
    with (contextlib.nullcontext(str(args.home)) if args.home is not None else tempfile.TemporaryDirectory()) as home:
        report = Path(home) / "report.json"
        cmd = [sys.executable, "-m", "air_restore.cli.main", "add-degradation", args.name,
               *([] if args.pairs else ["--synthetic", args.plugin or args.name]), "--holdout", str(args.holdout),
               *(["--clean", str(args.clean)] if args.clean is not None else []),
               *(["--estimator-update", args.estimator_update] if args.estimator_update else []),
               "--data", str(args.data), "--estimator-steps", str(args.estimator_steps),
               *(["--steps", str(args.steps)] if args.steps is not None else []),
               *(["--rank", str(args.rank)] if args.rank is not None else []),
               "--eval-images", str(args.eval_images), "--crop", str(args.crop),
               *(["--time-budget", str(args.time_budget)] if args.time_budget is not None else []),
               "--report", str(report)]
        started = time.perf_counter()
        proc = subprocess.run(cmd, env={**os.environ, "AIR_HOME": home}, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            raise SystemExit(f"air add-degradation failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        result = json.loads(report.read_text())
    result["command"] = "air " + " ".join(cmd[3:-2])
    result["command_wall_s"] = round(wall, 1)
    result["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parents[1],
                                      capture_output=True, text=True).stdout.strip()
    print(json.dumps({k: result[k] for k in ("command_wall_s", "tasks")}), flush=True)
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
