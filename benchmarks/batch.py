"""Throughput of `air restore DIR` against `air batch` (local Ray) with 1 and 2 workers, side by side.

    python benchmarks/batch.py --photos ../shared/data/eval/CBSD68 --limit 32 --runs 3 --out benchmarks/results/batch.json

Each run restores the first LIMIT photos (by name) into a fresh folder; the time is the command's
whole wall time (process start, model load, Ray start and actor start included), so it is what a user
waits for. Also reported: when `air batch` got its first result (its start-up cost).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from air_restore.core.io.files import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
AIR = [sys.executable, "-m", "air_restore.cli.main"]


def run(cmd: list[str], env: dict) -> tuple[float, str]:
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stderr}")
    return wall, r.stdout + r.stderr


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=32)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    photos = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[:args.limit]
    mp = sum(Image.open(p).width * Image.open(p).height for p in photos) / 1e6
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = tmp / "in"
        src.mkdir()
        for p in photos:
            shutil.copy(p, src / p.name)
        env = {**os.environ, "AIR_HOME": str(tmp / "home"), "HF_HUB_OFFLINE": "1"}
        configs = {
            "air restore DIR": lambda o: [*AIR, "restore", str(src), "-o", str(o), "--device", "cpu"],
            "air batch, 1 worker": lambda o: [*AIR, "batch", str(src), str(o), "--workers", "1"],
            "air batch, 2 workers": lambda o: [*AIR, "batch", str(src), str(o), "--workers", "2"],
        }
        for i in range(args.runs):  # interleaved, so that drift hits every configuration alike
            for name, cmd in configs.items():
                wall, err = run(cmd(tmp / f"out_{i}_{len(rows.get(name, []))}_{abs(hash(name))}"), env)
                m = re.search(r"first result after ([\d.]+) s", err)
                rows.setdefault(name, []).append({"wall_s": wall, "first_result_s": float(m[1]) if m else None})
    res = {"photos": f"{args.photos.name}, first {len(photos)} by name", "images": len(photos),
           "megapixels": mp, "runs": args.runs, "cpus": os.cpu_count(), "rows": []}
    for name, runs in rows.items():
        wall = statistics.median(r["wall_s"] for r in runs)
        first = [r["first_result_s"] for r in runs if r["first_result_s"]]
        res["rows"].append({"path": name, "wall_s": [r["wall_s"] for r in runs], "wall_median_s": wall,
                            "images_per_s": len(photos) / wall, "mp_per_s": mp / wall,
                            "first_result_median_s": statistics.median(first) if first else None})
    res["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                   text=True).stdout.strip()
    print(json.dumps(res, indent=1))
    if args.out:
        atomic_write_text(args.out, json.dumps(res, indent=1) + "\n")
    return res


if __name__ == "__main__":
    main()
