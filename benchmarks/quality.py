"""Per-degradation quality on a clean evaluation set degraded by the project's own plugins at fixed
seeds, side by side: the input (no restoration), a classical baseline where there is one (CBM3D for
noise, dark channel prior for haze, LIME-style illumination map for low light; see baselines.py), the
base restorer alone, the base with the installed adapters blended by the estimator
(``air_restore.registry.pipeline.load_restorer``, what ``air restore`` runs), and with ``--tta`` that
output refined by the UDAIR plugin with test-time adaptation (what ``air restore --tta`` runs).
Seconds per image too.

    python benchmarks/quality.py --clean ../shared/data/eval/CBSD68 --limit 12 --bm3d --tta \
        --out benchmarks/results/quality_cbsd68.json
    python benchmarks/quality.py --clean DIR --limit 1 --bm3d     # tiny run (the test suite does this)

Metrics: `air_restore.core.evaluation.psnr_ssim` (torchmetrics' PSNR, data range 1, and SSIM, Gaussian
window 11, σ 1.5, on RGB in [0, 1], quantized to 8 bits as a saved file would be), as `air eval` uses.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baselines import dark_channel_prior, lime  # noqa: E402

from air_restore.core.io.files import atomic_write_text  # noqa: E402
from air_restore.core.metrics import psnr_ssim as metrics  # noqa: E402
from air_restore.core.metrics import quantize8 as _q8  # noqa: E402
from air_restore.core.io.images import iter_image_paths  # noqa: E402
from air_restore.registry.discovery import get_degradation  # noqa: E402
from air_restore.registry.store import load_base  # noqa: E402

# name, plugin, severity, keyword options. σ = severity · 50/255 for noise.
ROWS = [
    ("noise σ=15", "noise", 15 / 50, {"kind": "gaussian"}),
    ("noise σ=25", "noise", 25 / 50, {"kind": "gaussian"}),
    ("noise σ=50", "noise", 50 / 50, {"kind": "gaussian"}),
    ("blur (motion)", "blur", 0.5, {"kind": "motion"}),
    ("blur (defocus)", "blur", 0.5, {"kind": "defocus"}),
    ("haze", "haze", 0.5, {}),
    ("rain", "rain", 0.5, {}),
    ("low light", "lowlight", 0.5, {}),
]


def _load(path: Path) -> torch.Tensor:
    with Image.open(path) as im:
        a = np.asarray(im.convert("RGB"), dtype=np.float32) / 255
    return torch.from_numpy(a).permute(2, 0, 1).contiguous()


def degrade(clean: torch.Tensor, row: tuple, index: int) -> torch.Tensor:
    """The fixed degradation of image ``index`` for ``row``: seed = crc32(row name) + index."""
    name, plugin, severity, kw = row
    g = torch.Generator().manual_seed(zlib.crc32(name.encode()) + index)
    fn = get_degradation(plugin).synthesize
    return _q8(fn(clean[None], g, severity, **kw)[0])


def cbm3d(noisy: torch.Tensor, sigma: float) -> torch.Tensor:
    import bm3d

    out = bm3d.bm3d_rgb(noisy.permute(1, 2, 0).numpy().astype(np.float64), sigma_psd=sigma)
    return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32)).permute(2, 0, 1)


def classical_baseline(row: tuple, use_bm3d: bool):
    """(key, label, fn) of the classical baseline for ``row``, or None."""
    plugin, severity = row[1], row[2]
    if plugin == "noise" and use_bm3d:
        return "cbm3d", "CBM3D (true σ)", lambda x: cbm3d(x, severity * 50 / 255)
    if plugin == "haze":
        return "dcp", "dark channel prior", dark_channel_prior
    if plugin == "lowlight":
        return "lime", "LIME (guided-filter map)", lime
    return None


def blended_restorer(device: str):
    """The base with every active adapter blended per image by the estimator, or (None, why not)."""
    try:
        from air_restore.registry.pipeline import load_restorer
    except ImportError as e:
        return None, f"no pipeline ({e})"
    r = load_restorer(device=device)
    if not r.adapters or r.estimator is None:
        return None, "; ".join(r.warnings) or "no adapters installed"
    return r, None


def tta_restorer(blended):
    """What ``air restore --tta`` runs: the blended output refined by the UDAIR plugin (5 TTA steps), the
    anchors mixed by the estimator's weights."""
    from air_restore.plugins.udair import degradation_weights, load_refiner

    refiner = load_refiner()

    def fn(x: torch.Tensor) -> torch.Tensor:
        w, strength = blended.assess(x)
        restored = blended.restore(x, w, strength=strength, also_clean=blended.also_clean(w, x)).image
        out, _ = refiner.refine(x, restored, degradation_weights(blended.adapters, w.tolist()))
        return out.float().cpu()

    return fn, refiner


def _timed(fn, x):
    t = time.perf_counter()
    with torch.no_grad():
        out = fn(x)
    return out, time.perf_counter() - t


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clean", type=Path, required=True, help="folder of clean evaluation photos")
    ap.add_argument("--weights", type=Path, default=None, help="base weights (default: the bundled ones)")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N images (0 = all)")
    ap.add_argument("--bm3d", action="store_true", help="also run CBM3D (the bm3d package) on the noise rows")
    ap.add_argument("--no-blended", action="store_true", help="skip the base + blended adapters column")
    ap.add_argument("--tta", action="store_true", help="add a column: blended, then the UDAIR refiner with TTA")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    ap.add_argument("--reuse", type=Path, default=None,
                    help="an earlier result JSON of the same set, images and base: copy its classical-baseline "
                         "columns (CBM3D is slow) instead of rerunning them")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    paths = iter_image_paths([args.clean])
    if args.limit:
        paths = paths[: args.limit]
    if not paths:
        sys.exit(f"{args.clean}: no images")
    model, info = load_base(args.weights, device=args.device)
    blended, why = (None, "--no-blended") if args.no_blended or args.weights else blended_restorer(args.device)
    results = {"images": len(paths), "set": args.clean.name, "fingerprint": info.fingerprint,
               "device": args.device, "torch_threads": torch.get_num_threads(), "rows": []}
    if blended is not None:
        results["blended"] = {"adapters": blended.adapters, "estimator": blended.estimator_path.name}
    else:
        results["blended_skipped"] = why
        print(f"base + blended adapters: skipped ({why})", file=sys.stderr)
    tta = None
    if args.tta and blended is not None:
        tta, refiner = tta_restorer(blended)
        results["tta"] = {"refiner": refiner.meta.get("fingerprint"), "steps": 5}
    earlier = {}
    if args.reuse:
        prev = json.loads(args.reuse.read_text())
        if (prev["set"], prev["images"], prev["fingerprint"]) != (results["set"], len(paths), info.fingerprint):
            sys.exit(f"--reuse {args.reuse}: a run of {prev['set']} ({prev['images']} images, base "
                     f"{prev['fingerprint']}), not of this set, image count and base")
        earlier = {r["row"]: r for r in prev["rows"]}
        results["reused"] = f"classical baselines copied from {args.reuse.name}"
    base = lambda x: model(x[None].to(args.device)).image[0].float().cpu()  # noqa: E731
    with torch.no_grad():  # warm-up, so the first timed image does not pay for allocation
        base(_load(paths[0]))
        if blended is not None:
            blended.restore(_load(paths[0]))
    for row in ROWS:
        acc: dict[str, list[float]] = {}
        baseline = classical_baseline(row, args.bm3d)
        methods = [("input", None), ("air", base)]
        if blended is not None:
            methods.append(("blended", lambda x: blended.restore(x).image.float().cpu()))
        if tta is not None:
            methods.append(("tta", tta))
        if baseline:
            methods.append((baseline[0], baseline[2]))
        # Only the classical baseline is reused: base and blended are always timed side by side, in this run.
        kept = {k: v for k, v in earlier.get(row[0], {}).items() if baseline and k.rsplit("_", 1)[0] == baseline[0]}
        methods = [(m, fn) for m, fn in methods if fn is None or f"{m}_psnr" not in kept]
        for i, p in enumerate(paths):
            clean = _load(p)
            deg = degrade(clean, row, i)
            for key, fn in methods:
                out, secs = (deg, 0.0) if fn is None else _timed(fn, deg)
                ps, ss = metrics(out, clean)
                acc.setdefault(f"{key}_psnr", []).append(ps)
                acc.setdefault(f"{key}_ssim", []).append(ss)
                if fn is not None:
                    acc.setdefault(f"{key}_s", []).append(secs)
        summary = {"row": row[0], "plugin": row[1], "severity": row[2], "options": row[3],
                   **({"baseline": baseline[0], "baseline_label": baseline[1]} if baseline else {}),
                   **kept,
                   **{k: (statistics.median(v) if k.endswith("_s") else statistics.fmean(v)) for k, v in acc.items()}}
        results["rows"].append(summary)
        print(json.dumps(summary, ensure_ascii=False), flush=True)
    if args.out:
        atomic_write_text(args.out, json.dumps(results, indent=1, ensure_ascii=False))
    return results


if __name__ == "__main__":
    main()
