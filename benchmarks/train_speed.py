"""Steps per second of every trainer on this machine: base, adapter, estimator and UDAIR refiner.

Each row trains for a few steps at the size the CLI uses on a CPU (base: the bundled architecture on
8 crops of 96²; adapter: ``air train adapter``'s defaults; estimator: its 64² views; UDAIR: its default
batch) and reports the rate over the steps after the first ``--warm`` ones, timed from the trainers'
progress callbacks (pool building and data loading are not counted). Every row runs in a fresh process.

``--before DIR`` times another tree side by side: DIR holds an ``air_restore`` folder whose
``core``/``plugins``/``registry``/``cli`` entries point at that tree's folders (links are fine); its rows
run with ``PYTHONPATH=DIR`` and only the variants that tree knows. Variants: ``fp32`` (default),
``bf16`` (autocast; the trainers' ``precision``, the base's ``mixed_precision``) and ``channels_last``.

    python benchmarks/train_speed.py --before /tmp/before_pkg --out benchmarks/results/train_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAINERS = ("base", "adapter", "estimator", "udair")
VARIANTS = ("fp32", "bf16", "channels_last")
CLEAN = ROOT.parent / "shared" / "data" / "train" / "clean"


def _photos(n: int, side: int = 192):
    """``n`` clean training photos (or scikit-image samples without ../shared/data), centre crops."""
    import numpy as np
    import torch
    from PIL import Image

    if CLEAN.is_dir():
        arrays = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(CLEAN.iterdir())[:n]]
    else:
        from skimage import data as skdata

        arrays = [skdata.astronaut(), skdata.chelsea(), skdata.coffee(), skdata.rocket()] * n
    out = []
    for a in arrays[:n]:
        h, w = a.shape[:2]
        s = min(side, h, w)
        c = a[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
        out.append(torch.from_numpy(np.ascontiguousarray(c)).permute(2, 0, 1).float() / 255)
    return out


def _options(variant: str, tree: str) -> dict:
    """The trainer options of a variant (a tree from before the engine knows none: it is contiguous fp32)."""
    if tree == "before":
        return {}
    return {"fp32": {"channels_last": False}, "bf16": {"precision": "bf16", "channels_last": False},
            "channels_last": {"channels_last": True}}[variant]


def worker(trainer: str, variant: str, tree: str, steps: int, warm: int) -> dict:
    """Train ``trainer`` for ``steps`` steps; the rate over the steps after ``warm``."""
    import torch

    from air_restore.registry.discovery import get_degradation

    stamps: list[float] = []
    synths = [get_degradation(n).synthesize for n in ("noise", "blur", "haze", "rain", "lowlight")]
    opts = _options(variant, tree)
    if trainer == "adapter":
        from air_restore.core.training.adapter import TrainAdapterConfig, synthetic_sampler, train_adapter
        from air_restore.registry.store import load_base

        base, _ = load_base()
        cfg = TrainAdapterConfig(steps=steps, **opts)
        train_adapter(base, synthetic_sampler(_photos(16), synths[0]), config=cfg,
                      progress=lambda s, t, loss: stamps.append(time.perf_counter()))
    elif trainer == "estimator":
        from air_restore.core.training.estimator import train_estimator

        train_estimator(["noise", "blur", "haze", "rain", "lowlight"], synths, _photos(16), batches=8, steps=steps,
                        progress=lambda s, t: stamps.append(time.perf_counter()), **opts)
    elif trainer == "udair":
        from air_restore.plugins.udair_training import TrainUdairConfig, train_udair

        cfg = TrainUdairConfig(steps=steps, pool=4, val_images=2, val_every=10**6, anchor_crops=2, anchor_crop=64,
                               **opts)
        train_udair(_photos(10), synths, lambda x: x, config=cfg, log=lambda s: None,
                    progress=lambda s, t, info: stamps.append(time.perf_counter()))
    elif trainer == "base":
        import tempfile

        from PIL import Image

        from air_restore.core.training.base import TrainBaseConfig, train_base

        extra = {**opts, "mixed_precision": "bf16"} if variant == "bf16" else opts
        extra.pop("precision", None)
        cfg = TrainBaseConfig(steps=steps, batch_size=8, crop=96, val_images=0, warmup=1, ema=0.999,
                              checkpoint_every=10**6, **extra)
        with tempfile.TemporaryDirectory() as tmp:
            for i, p in enumerate(_photos(12)):
                Image.fromarray((p.permute(1, 2, 0).numpy() * 255).round().astype("uint8")).save(f"{tmp}/{i}.png")
            train_base(Path(tmp), Path(tmp) / "run", synths, config=cfg, log=lambda s: None,
                       progress=lambda s, t, info: stamps.append(time.perf_counter()))
    else:
        raise SystemExit(f"unknown trainer {trainer}")
    timed = stamps[warm:]
    return {"steps_per_s": (len(timed) - 1) / (timed[-1] - timed[0]), "steps_timed": len(timed) - 1,
            "threads": torch.get_num_threads()}


def defaults() -> dict[str, str]:
    """What each trainer does by default on this machine (precision auto resolved here)."""
    import inspect

    import torch

    from air_restore.core.training.adapter import TrainAdapterConfig
    from air_restore.core.training.base import TrainBaseConfig
    from air_restore.core.training.engine import autocast_dtype
    from air_restore.core.training.estimator import train_estimator
    from air_restore.plugins.udair_training import TrainUdairConfig

    auto = "bf16" if autocast_dtype("auto", torch.device("cpu")) else "fp32"
    layout = lambda cl: "channels_last" if cl else "contiguous"  # noqa: E731
    est = inspect.signature(train_estimator).parameters["channels_last"].default
    return {"base": f"{TrainBaseConfig().mixed_precision.replace('no', 'fp32')}, {layout(TrainBaseConfig().channels_last)}",
            "adapter": f"{auto}, {layout(TrainAdapterConfig().channels_last)}",
            "estimator": f"{auto}, {layout(est)}", "udair": f"{auto}, {layout(TrainUdairConfig().channels_last)}"}


STEPS = {"base": 14, "adapter": 24, "estimator": 400, "udair": 40}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--trainers", default=",".join(TRAINERS))
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--before", type=Path, help="a folder holding the other tree's air_restore package")
    ap.add_argument("--repeats", type=int, default=1, help="runs per row (median)")
    ap.add_argument("--warm", type=int, default=3, help="steps left out of the rate")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--merge", action="store_true", help="keep --out's rows of the trainers not run now")
    args = ap.parse_args()
    if args.worker:
        trainer, variant, tree = args.worker.split(":")
        steps = STEPS[trainer] // (3 if variant == "bf16" else 1)  # bf16 is slow on CPUs without native bf16
        print(json.dumps(worker(trainer, variant, tree, steps, min(args.warm, steps // 3))))
        return
    trees = [("before", args.before), ("after", None)] if args.before else [("after", None)]
    rows = []
    for trainer in args.trainers.split(","):
        for variant in args.variants.split(","):
            for label, pkg in trees:
                if label == "before" and not (variant == "fp32" or (trainer, variant) == ("base", "bf16")):
                    continue  # before the engine only the base had a precision option, and none had channels_last
                rates, error = [], None
                for _ in range(args.repeats):
                    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1"}
                    if pkg:
                        env["PYTHONPATH"] = str(pkg)
                    r = subprocess.run([sys.executable, __file__, "--worker", f"{trainer}:{variant}:{label}",
                                        "--warm", str(args.warm)], env=env, capture_output=True, text=True, cwd="/tmp")
                    if r.returncode:
                        error = (r.stderr.strip().splitlines() or ["failed"])[-1][:160]
                        break
                    rates.append(json.loads(r.stdout.strip().splitlines()[-1])["steps_per_s"])
                row = {"trainer": trainer, "variant": variant, "tree": label,
                       "steps_per_s": round(statistics.median(rates), 3) if rates else None, "runs": len(rates)}
                if error:
                    row["error"] = error
                rows.append(row)
                print(json.dumps(row), flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    result = {"commit": commit, "threads": args.threads, "steps": STEPS, "warm": args.warm, "defaults": defaults(),
              "rows": rows}
    if args.merge and args.out and args.out.is_file():
        old = json.loads(args.out.read_text())
        ran = {r["trainer"] for r in rows}
        result["rows"] = [r for r in old["rows"] if r["trainer"] not in ran] + rows
        result["commits"] = sorted({old.get("commit"), commit} - {None})
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
