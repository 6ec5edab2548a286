"""UDAIR refiner and its test-time adaptation (TTA): does it help?

    python benchmarks/tta.py --eval ../shared/data/eval/CBSD68 --real ../shared/data/real \
        --out benchmarks/results/tta.json
    python benchmarks/tta.py --eval DIR --real DIR --limit 1 --real-limit 1 --sizes 64   # tiny (tests)

Three measurements, CPU only:

1. Synthetic, paired: a fixed-seed subset of ``--eval`` (the first ``--limit`` images by name, whole
   images) degraded by the built-in plugins at severity 1.0 (outside the refiner's training range,
   which stops at 0.7) and at 0.5 (inside it, as a control); seed ``1000·row + image index``. PSNR of
   the frozen restorer's output ("restored"), the refiner without TTA, and with TTA (5 DAM steps).
2. Real photos without reference (``--real``/DICM, lowlight_LOL15, RNI6): NIQE (core/niqe.py, lower is
   more natural) of the input, restored, refiner without and with TTA; a contact sheet PNG.
3. Time per image of ``refine`` with TTA at 256² and 512² (median of 5 after a warm-up).

The degradation weights that pick the anchors come from the restorer's estimator when it has one;
without an estimator they are the base's segmentation-head class shares (stated in the JSON).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import zlib
from pathlib import Path

import torch

from air_restore.core.io.files import atomic_write_text
from air_restore.core import metrics
from air_restore.core.explain import class_shares
from air_restore.core.metrics import quantize8
from air_restore.core.io.images import iter_image_paths, read_image
from air_restore.plugins import udair
from air_restore.plugins.udair import load_refiner
from air_restore.registry.discovery import get_degradation
from air_restore.registry.pipeline import load_restorer

DEGRADATIONS = ("noise", "blur", "haze", "rain", "lowlight")
REAL_SETS = ("DICM", "lowlight_LOL15", "RNI6")


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(metrics.psnr(a, quantize8(b), quantize=True))


def degradation_weights(restorer, rgb: torch.Tensor, seg_probs: torch.Tensor | None) -> tuple[dict[str, float], str]:
    """Per-degradation weights for the anchors, as `air restore --tta` picks them: the estimator's adapter
    weights if adapters are active, else the base's segmentation-head class shares."""
    if restorer.adapters:
        return udair.degradation_weights(restorer.adapters, restorer.estimate(rgb).tolist()), "estimator"
    shares = class_shares(seg_probs, restorer.model.config.classes)
    return udair.degradation_weights([], [], shares), "segmentation head"


def run_one(restorer, refiner, degraded: torch.Tensor, steps: int = 5) -> dict:
    res = restorer.restore(degraded, explain=not restorer.adapters)
    weights, source = degradation_weights(restorer, degraded, res.seg_probs)
    alone, _ = refiner.refine(degraded, res.image, weights, steps=0)
    tta, info = refiner.refine(degraded, res.image, weights, steps=steps)
    return {"restored": res.image, "alone": alone, "tta": tta, "info": info, "weights": weights, "source": source}


def synthetic(restorer, refiner, folder: Path, limit: int, severities: tuple[float, ...]) -> list[dict]:
    paths = iter_image_paths([folder])[:limit]
    cleans = [read_image(p).rgb for p in paths]
    rows = []
    for sev in severities:
        for name in DEGRADATIONS:
            synth = get_degradation(name).synthesize
            label = f"{name} @ {sev}"
            vals = {"input": [], "restored": [], "alone": [], "tta": [], "coral_before": [], "coral_after": []}
            for i, clean in enumerate(cleans):
                g = torch.Generator().manual_seed(1000 * (zlib.crc32(label.encode()) % 1000) + i)
                degraded = synth(clean[None], g, sev)[0].clamp(0, 1)
                r = run_one(restorer, refiner, degraded)
                vals["input"].append(psnr(degraded, clean))
                for k in ("restored", "alone", "tta"):
                    vals[k].append(psnr(r[k], clean))
                vals["coral_before"].append(r["info"]["coral_before"])
                vals["coral_after"].append(r["info"]["coral_after"])
            row = {"row": label, "degradation": name, "severity": sev, "images": len(cleans),
                   **{k: statistics.fmean(v) for k, v in vals.items()},
                   "tta_better": sum(t > a for t, a in zip(vals["tta"], vals["alone"]))}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def real(restorer, refiner, root: Path, per_set: int, sheet: Path | None) -> dict:
    try:
        from air_restore.core.niqe import niqe
    except ImportError:  # pragma: no cover - niqe ships with the project
        niqe = None
    out, tiles = {}, []
    for name in REAL_SETS:
        paths = iter_image_paths([root / name])[: per_set or None]
        if not paths:
            continue
        vals = {"input": [], "restored": [], "alone": [], "tta": [], "coral_before": [], "coral_after": []}
        for p in paths:
            img = read_image(p).rgb.clamp(0, 1)
            r = run_one(restorer, refiner, img)
            for k, im in (("input", img), ("restored", r["restored"]), ("alone", r["alone"]), ("tta", r["tta"])):
                vals[k].append(niqe(im) if niqe else float("nan"))
            vals["coral_before"].append(r["info"]["coral_before"])
            vals["coral_after"].append(r["info"]["coral_after"])
            if len([t for t in tiles if t[0] == name]) < 2:
                tiles.append((name, p.name, img, r))
        out[name] = {"images": len(paths), **{f"niqe_{k}" if not k.startswith("coral") else k: statistics.fmean(v)
                                              for k, v in vals.items()},
                     "tta_better": sum(t < a for t, a in zip(vals["tta"], vals["alone"]))}
        print(json.dumps({name: out[name]}), flush=True)
    if sheet and tiles:
        contact_sheet(tiles, sheet)
    return out


def contact_sheet(tiles: list, path: Path, height: int = 200) -> None:
    """Rows: images; columns: input, restored, refiner alone, refiner + TTA, |TTA − alone| × 20."""
    from PIL import Image, ImageDraw

    def pil(t: torch.Tensor) -> Image.Image:
        a = (t.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        im = Image.fromarray(a)
        return im.resize((round(im.width * height / im.height), height), Image.LANCZOS)

    heads = ("input", "restored (base+adapters)", "refiner, no TTA", "refiner + TTA", "|TTA - no TTA| x20")
    rows = []
    for name, fname, img, r in tiles:
        diff = ((r["tta"] - r["alone"]).abs() * 20).clamp(0, 1)
        rows.append([pil(img), pil(r["restored"]), pil(r["alone"]), pil(r["tta"]), pil(diff)])
    widths = [max(row[c].width for row in rows) for c in range(5)]
    sheet = Image.new("RGB", (sum(widths) + 6 * 4, 20 + len(rows) * (height + 18)), "white")
    draw = ImageDraw.Draw(sheet)
    x = 4
    for c, head in enumerate(heads):
        draw.text((x, 4), head, fill="black")
        x += widths[c] + 4
    for i, ((name, fname, _, r), row) in enumerate(zip(tiles, rows)):
        y = 20 + i * (height + 18)
        draw.text((4, y), f"{name}/{fname}  CORAL {r['info']['coral_before']:.4g} -> {r['info']['coral_after']:.4g}  "
                          f"mix {r['info']['anchor_mix']}", fill="black")
        x = 4
        for c, im in enumerate(row):
            sheet.paste(im, (x, y + 14))
            x += widths[c] + 4
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def lr_sweep(restorer, refiner, train_folder: Path, lrs: tuple[float, ...], photos: int = 8, crop: int = 160) -> list[dict]:
    """TTA learning rate on photos the refiner held out of training (the last of --train by name; never the
    eval set): mean PSNR gain of TTA over the refiner alone, and CORAL after / before, at severity 1.0."""
    paths = iter_image_paths([train_folder])[-photos:]
    samples = []
    for i, p in enumerate(paths):
        im = read_image(p).rgb
        _, h, w = im.shape
        clean = im[:, (h - crop) // 2:][:, :crop, (w - crop) // 2:][:, :, :crop]
        for k, name in enumerate(DEGRADATIONS):
            g = torch.Generator().manual_seed(100 * i + k)
            degraded = get_degradation(name).synthesize(clean[None], g, 1.0)[0].clamp(0, 1)
            res = restorer.restore(degraded, explain=not restorer.adapters)
            weights, _ = degradation_weights(restorer, degraded, res.seg_probs)
            alone, _ = refiner.refine(degraded, res.image, weights, steps=0)
            samples.append((clean, degraded, res.image, weights, psnr(alone, clean)))
    rows = []
    for lr in lrs:
        gains, ratios = [], []
        for clean, degraded, restored, weights, p_alone in samples:
            out, info = refiner.refine(degraded, restored, weights, steps=5, lr=lr)
            gains.append(psnr(out, clean) - p_alone)
            ratios.append(info["coral_after"] / max(info["coral_before"], 1e-12))
        row = {"lr": lr, "samples": len(samples), "psnr_gain": statistics.fmean(gains),
               "coral_ratio": statistics.fmean(ratios)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def timing(restorer, refiner, sizes: tuple[int, ...], runs: int = 5) -> list[dict]:
    rows = []
    g = torch.Generator().manual_seed(0)
    clean = read_image(Path(__file__).resolve().parents[1] / "examples" / "noisy_astronaut.png").rgb
    for s in sizes:
        img = torch.nn.functional.interpolate(clean[None], size=(s, s), mode="bilinear", align_corners=False)[0]
        x = get_degradation("noise").synthesize(img[None], g, 0.5)[0]
        restored = restorer.restore(x).image
        w = {"noise": 1.0}
        times = {"tta": [], "alone": [], "restore": []}
        for k in range(runs + 1):
            t = time.perf_counter()
            restorer.restore(x)
            t1 = time.perf_counter()
            refiner.refine(x, restored, w, steps=0)
            t2 = time.perf_counter()
            refiner.refine(x, restored, w, steps=5)
            t3 = time.perf_counter()
            if k:  # the first run is a warm-up
                times["restore"].append(t1 - t)
                times["alone"].append(t2 - t1)
                times["tta"].append(t3 - t2)
        row = {"size": s, "threads": torch.get_num_threads(), "runs": runs,
               **{f"{k}_median_s": statistics.median(v) for k, v in times.items()}}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eval", type=Path, required=True, help="clean photos (CBSD68)")
    ap.add_argument("--real", type=Path, required=True, help="folder holding DICM/, lowlight_LOL15/, RNI6/")
    ap.add_argument("--limit", type=int, default=12, help="synthetic: first N images by name")
    ap.add_argument("--real-limit", type=int, default=10, help="real: first N images of each set (0 = all)")
    ap.add_argument("--severities", type=float, nargs="+", default=[1.0, 0.5])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--weights", type=Path, default=None, help="UDAIR file (default: the bundled one)")
    ap.add_argument("--train", type=Path, default=None, help="training photos: sweep the TTA lr on their held-out end")
    ap.add_argument("--lrs", type=float, nargs="+", default=[1e-3, 1e-2, 1e-1])
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steadiest on a busy 2-core CPU)")
    ap.add_argument("--only-sweep", action="store_true", help="run the lr sweep and stop")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--sheet", type=Path, default=None, help="contact sheet PNG (default: runs/tta_contact.png)")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    restorer = load_restorer()
    refiner = load_refiner(args.weights)
    sweep = lr_sweep(restorer, refiner, args.train, tuple(args.lrs)) if args.train else None
    if args.only_sweep:
        return {"lr_sweep": sweep}
    started = time.perf_counter()
    # The sheet holds thumbnails of research-only photos: written under runs/ (git-ignored), never committed.
    sheet = args.sheet or Path(__file__).resolve().parents[1] / "runs" / "tta_contact.png"
    result = {
        "refiner": {"fingerprint": refiner.meta.get("fingerprint"), "metrics": refiner.meta.get("metrics"),
                    "train_severity": refiner.meta.get("training", {}).get("severity"),
                    "trained_with_adapters": refiner.meta.get("adapters"),
                    "parameters": sum(p.numel() for p in refiner.net.parameters()),
                    "file_bytes": Path(refiner.meta["path"]).stat().st_size},
        "base": restorer.info.fingerprint, "adapters": restorer.adapters,
        "weights_source": "estimator" if restorer.adapters else "segmentation head",
        "tta": {"steps": 5, "lr": refiner.lr, "optimizer": "AdamW"}, "lr_sweep": sweep,
        "synthetic": {"set": args.eval.name, "rows": synthetic(restorer, refiner, args.eval, args.limit,
                                                                tuple(args.severities))},
        "real": real(restorer, refiner, args.real, args.real_limit, sheet),
        "timing": timing(restorer, refiner, tuple(args.sizes)),
        "contact_sheet": "runs/tta_contact.png" if args.sheet is None else str(args.sheet),
    }
    result["wall_s"] = round(time.perf_counter() - started, 1)
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
