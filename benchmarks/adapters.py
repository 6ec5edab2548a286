"""Phase II on real paired sets: one LoRA adapter per set, trained on the frozen bundled base with
`air train adapter` (CPU is fine), evaluated on the held-out split it keeps (last 10% by file name).

    python benchmarks/adapters.py --data ../shared/data/pairs --out benchmarks/results/adapters.json
    python benchmarks/adapters.py --data DIR --steps 2 --crop 32     # tiny (the tests do this)

Writes the adapters under runs/adapters/ (not committed) and the manifests' metrics as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from air_restore.core.io.files import atomic_write_text

SETS = {"rain_Rain100H": "rain_real", "noise_real_PolyU": "noise_real"}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="folder holding the paired sets")
    ap.add_argument("--sets", nargs="*", default=list(SETS))
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--crop", type=int, default=96)
    ap.add_argument("--adapters", type=Path, default=Path("runs/adapters"))
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    results = {"steps": args.steps, "batch_size": args.batch_size, "crop": args.crop, "sets": []}
    for folder in args.sets:
        name = SETS.get(folder, folder.lower())
        out = args.adapters / name
        t = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "air_restore.cli.main", "train", "adapter", name, "--pairs", str(args.data / folder),
             "--out", str(out), "--steps", str(args.steps), "--batch-size", str(args.batch_size),
             "--crop", str(args.crop), "--overwrite"],
            capture_output=True, text=True, env={**os.environ, "COLUMNS": "120"},
        )
        if proc.returncode:
            raise SystemExit(f"training {name} failed:\n{proc.stderr}{proc.stdout}")
        manifest = json.loads((out / "air_manifest.json").read_text())
        row = {"set": folder, "adapter": name, "wall_s": time.perf_counter() - t, **manifest["metrics"],
               "train_images": manifest["training"]["data"]["train_images"],
               "adapter_bytes": (out / "adapter_model.safetensors").stat().st_size}
        results["sets"].append(row)
        print(json.dumps(row), flush=True)
    if args.out:
        atomic_write_text(args.out, json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
