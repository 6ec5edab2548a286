"""The pipeline's floors (``core.floors``) side by side: `air restore`'s pipeline as shipped, and the same without
floors, on the same seeded inputs.

    python benchmarks/floors.py --clean ../shared/data/eval/CBSD68 --limit 12 --pairs ../shared/data/pairs \
        --real ../shared/data/real --out benchmarks/results/floors.json
    python benchmarks/floors.py --clean DIR --limit 1 --size 192 --real DIR     # tiny (the tests do this)

Rows: what the noise floor is for (noise without colour: grey photos, and colour photos with one noise draw for all
channels, :data:`family.LUMINANCE_ROWS` and σ 5, also saved as JPEGs as a phone saves them, and under blur, rain,
haze or snow), what it must leave alone (clean photos, colour noise, the noise plugin, JPEGs at quality 90, whose
fine texture can read as noise, and the low-light plugin, whose sensor noise is white), and the held-out real pairs.
Mean PSNR against the clean photo (the grey photo where the row is grey), the noise weight each pipeline routes, and
the worst photo's change. With ``--real``: NIQE (lower is better) on every photo of real/RNI6 (real noisy grey scans)
and the first ``--limit`` of each other real set, input and both outputs.
Image i of a row uses seed crc32(row) + i.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from blending import PAIRS, _crop, _psnr, held_out_pairs, pipeline  # noqa: E402
from family import LUMINANCE_ROWS, _grey, _luminance_noise, synthetic_sets  # noqa: E402

from air_restore.core.floors import FLOORS  # noqa: E402
from air_restore.core.io.files import atomic_write_text  # noqa: E402
from air_restore.core.io.images import iter_image_paths, read_image  # noqa: E402
from air_restore.core.niqe import niqe  # noqa: E402
from air_restore.registry.discovery import get_degradation  # noqa: E402


def _gaussian(sigma: float):
    def synth(x: torch.Tensor, g: torch.Generator, s: float) -> torch.Tensor:
        return x + sigma / 255 * torch.randn(x.shape, generator=g)
    return synth


def _libjpeg(quality: int):
    def synth(x: torch.Tensor, g: torch.Generator, s: float) -> torch.Tensor:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray((x[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()).save(buf, "JPEG",
                                                                                                 quality=quality)
        return torch.from_numpy(np.array(Image.open(buf).convert("RGB"))).permute(2, 0, 1)[None].float() / 255
    return synth


def _then_jpeg(synth, quality: int):
    """``synth``, then saved as a JPEG of ``quality`` (a phone photo: its luma noise, then the camera's JPEG)."""
    def both(x: torch.Tensor, g: torch.Generator, s: float) -> torch.Tensor:
        return _libjpeg(quality)(synth(x, g, s).clamp(0, 1), g, s)
    return both


def _then_noise(synth, sigma: float):
    """``synth``, then luminance noise of ``sigma`` (the sensor's, after the scene's degradation)."""
    def both(x: torch.Tensor, g: torch.Generator, s: float) -> torch.Tensor:
        return _luminance_noise(sigma, False)(synth(x, g, s).clamp(0, 1), g, s)
    return both


def _plugin(name: str):
    return get_degradation(name).synthesize


#: (row, synthesizer, severity[, reference]): the rows for the floor and the rows it must leave alone.
ROWS = [
    ("grey photo, noise σ 5", _luminance_noise(5, True), 0.5, _grey),
    *LUMINANCE_ROWS[:2],
    ("luminance noise σ 5", _luminance_noise(5, False), 0.5, None),
    *LUMINANCE_ROWS[2:],
    *((f"luminance noise σ {sigma}, then JPEG q{q}", _then_jpeg(_luminance_noise(sigma, False), q), 0.5, None)
      for sigma, q in ((10, 90), (10, 75), (20, 75))),
    *((f"{name} 0.4, then luminance noise σ 10", _then_noise(_plugin(name), 10), 0.4, None)
      for name in ("blur", "rain", "haze", "snow")),
    ("clean", lambda x, g, s: x, 0.5, None),
    ("colour noise σ 5", _gaussian(5), 0.5, None),
    ("colour noise σ 15", _gaussian(15), 0.5, None),
    ("noise plugin 0.1", _plugin("noise"), 0.1, None),
    ("noise plugin 0.2", _plugin("noise"), 0.2, None),
    ("libjpeg q90", _libjpeg(90), 0.5, None),
    ("low light 0.5", _plugin("lowlight"), 0.5, None),
]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clean", type=Path, required=True, help="clean photos (CBSD68)")
    ap.add_argument("--pairs", type=Path, default=None, help="folder holding the real paired sets")
    ap.add_argument("--real", type=Path, default=None, help="folder of real degraded photos (NIQE)")
    ap.add_argument("--limit", type=int, default=0, help="images per row and per real set (0 = all)")
    ap.add_argument("--pairs-limit", type=int, default=20, help="pairs per real set (of its held-out 20%%)")
    ap.add_argument("--size", type=int, default=0, help="centre-crop side (0 = whole images)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    started = time.time()
    shipped = pipeline()
    pipes = {"without": dataclasses.replace(shipped, floors=()), "with": shipped}
    # The noise weight: the noise adapter's and its floor's own adapter's (core.floors.Floor.moves_to: lumanoise).
    k = [shipped.adapters.index(n) for n in ("noise", "lumanoise") if n in shipped.adapters]
    clean = [_crop(read_image(p).rgb, args.size) for p in iter_image_paths([args.clean])[: args.limit or None]]
    sets = synthetic_sets(ROWS, clean)
    for folder in PAIRS if args.pairs is not None else ():
        if (args.pairs / folder).is_dir():
            sets.append((f"real: {folder} (held out)", held_out_pairs(args.pairs / folder, args.pairs_limit,
                                                                      args.size)))
    rows = []
    for row, samples in sets:
        acc: dict[str, list[float]] = {}
        for degraded, ref in samples:
            acc.setdefault("input", []).append(_psnr(degraded, ref))
            for label, r in pipes.items():
                acc.setdefault(label, []).append(_psnr(r.restore(degraded).image, ref))
                acc.setdefault(f"weight_{label}", []).append(float(r.estimate(degraded)[k].sum()))
        change = [a - b for a, b in zip(acc["with"], acc["without"])]
        rows.append({"task": row, "images": len(samples), **{key: statistics.fmean(v) for key, v in acc.items()},
                     "worst": min(change), "best": max(change)})
        print(json.dumps(rows[-1]), flush=True)
    real = []
    for folder in sorted(p for p in args.real.iterdir() if p.is_dir()) if args.real is not None else ():
        paths = iter_image_paths([folder])
        for p in paths if folder.name == "RNI6" else paths[: args.limit or None]:
            x = _crop(read_image(p).rgb, args.size)
            out = {label: r.restore(x).image for label, r in pipes.items()}
            real.append({"set": folder.name, "photo": p.name, "input": niqe(x),
                         **{label: niqe(y) for label, y in out.items()},
                         **{f"weight_{label}": float(r.estimate(x)[k].sum()) for label, r in pipes.items()},
                         "mean_abs_change": float((out["with"] - out["without"]).abs().mean() * 255)})
            print(json.dumps(real[-1]), flush=True)
    result = {"floors": [f.adapter for f in FLOORS], "adapters": shipped.adapters, "clean_set": args.clean.name,
              "images_per_task": len(clean), "crop": args.size or "whole", "rows": rows, "real": real,
              "wall_s": round(time.time() - started, 1)}
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
