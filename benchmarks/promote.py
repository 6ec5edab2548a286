"""Promote a candidate base restorer only when it is better than the bundled one (base v2 issue).

    python benchmarks/promote.py --candidate training/base-v2/base.safetensors \
        --clean ../shared/data/eval/CBSD68 --limit 12 --pairs ../shared/data/pairs --real ../shared/data/real \
        --out benchmarks/results/promote.json
    python benchmarks/promote.py --candidate X --clean DIR --limit 1        # tiny (the tests do this)

Both bases run alone (no adapters: a new base invalidates them), side by side in one run, on:
- **single**: every row of the quality table (`quality.py` ROWS, same seeds and severities);
- **stacked**: plugins in turn, each at severity 0.5, seeded per image: `blending.py`'s mixed tasks and its
  whole stacked table (every pair of the seven built-ins in physical order, and its triples);
- **flat sky**: a photo whose far part is a flat, bright sky (in the target too), under dense haze (0.7), saved
  as a JPEG by libjpeg (:func:`sky_under_haze`). Real foggy photos are mostly such featureless fog, and a base
  that invents texture or dark blots there (what base v1 and the 16,508-step candidate do to real/hazy's
  fishers.jpg and foggyHouse.jpg; NOTES.md) loses PSNR on the sky, where the plugin rows cannot see it. Recipe
  widened5 trains on flat skies too, made another way (`core.families.with_sky`: above a wavy horizon, JPEG by
  the torch codec), so this row is not its training data;
- **clean**: the clean photo itself — a restorer should give it back unchanged;
- **real pairs**: the held-out split (last 10% by file name, as `air train adapter` holds it out) of
  each paired set under --pairs;
- **NIQE**: the median NIQE of the restored first --niqe-limit photos of each set under --real (lower
  is better; no reference).

With ``--adapter DIR`` (repeatable: an adapter trained on the candidate, ``air train adapter ... --weights
CANDIDATE``), every PSNR row with that adapter's degradation in its name is judged as each base with its own adapter
of that name at weight 1 and the clean-pixel gate on (the reference's: the installed adapter, bundled or local). A new
base is promoted with adapters retrained on it, and a base may leave part of a correction to one by design: recipe
widened4 brightens only photos darker than a mean of 0.12, so that dim photos which must stay dim are not brightened
(``core.families``), and loses the plugin's low-light rows alone while winning them with its low-light adapter
(NOTES.md).

The verdict: PROMOTE only when no PSNR row loses more than --tolerance dB and no NIQE median rises
by more than --niqe-tolerance; otherwise REFUSE, naming the rows. Exit code 0 for PROMOTE, 1 for
REFUSE. The candidate's own training families (core.families) are not rows here: they are its
training data, not a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import zlib
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from blending import ALL_STACKS, MIXED, stacked  # noqa: E402
from quality import ROWS, degrade  # noqa: E402

from air_restore.core import degradations as D  # noqa: E402
from air_restore.core.io.files import atomic_write_text  # noqa: E402
from air_restore.core.evaluation import paired_samples  # noqa: E402
from air_restore.core.metrics import psnr, quantize8  # noqa: E402
from air_restore.core.io.images import iter_image_paths, read_image  # noqa: E402
from air_restore.core.lora import attach, blend  # noqa: E402
from air_restore.core.restore import restore  # noqa: E402
from air_restore.registry.adapters import load_for_base, read_manifest  # noqa: E402
from air_restore.registry.store import all_adapters, bundled_base_path, load_base  # noqa: E402

#: The mixed tasks first (their rows and seeds as in earlier promotion runs), then the rest of the stacked table.
STACKED = tuple(dict.fromkeys((*MIXED, ("haze", "rain"), *ALL_STACKS)))
HELD_OUT = 0.1
SKY_SEED = 900


def sky_under_haze(clean: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(degraded, target) [3, H, W]: ``clean`` with its far part (a random depth field above a random level,
    soft-edged) replaced by a flat, bright, slightly tinted sky with a gentle vertical gradient, as the target;
    that scene under the haze plugin's fog at severity 0.7, then JPEG by libjpeg at the JPEG plugin's
    severity 0.5 (quality ~52). Under the sky there is nothing to recover: the right answer is flat."""
    _, h, w = clean.shape
    depth = D.depth_map(1, h, w, g, clean.device)[0]
    level = 0.45 + 0.45 * torch.rand((), generator=g)
    sky_mask = torch.sigmoid((depth - level) / 0.03)
    grey = 0.7 + 0.3 * torch.rand((), generator=g)
    tint = 1 + 0.05 * torch.randn((3, 1, 1), generator=g)
    slope = 0.12 * (torch.rand((), generator=g) - 0.5)
    ramp = torch.linspace(-1, 1, h).view(1, h, 1)
    sky = (grey * tint * (1 + slope * ramp)).clamp(0, 1).expand(3, h, w)
    target = quantize8(clean * (1 - sky_mask) + sky * sky_mask)
    degraded = D.jpeg_codec(D.haze(target[None], g, 0.7), g, 0.5)[0]
    return quantize8(degraded), target


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return psnr(a, b, quantize=True).item()


def held_out(names: list[str]) -> list[str]:
    """The last 10% of ``names`` by file name (at least one), as the adapters' training holds out."""
    names = sorted(names)
    return names[len(names) - max(1, round(HELD_OUT * len(names))):]


def _samples(clean_paths: list[Path], pairs: Path | None):
    """(group, row, list of (degraded, clean)) for every PSNR row."""
    cleans = [read_image(p).rgb for p in clean_paths]
    for row in ROWS:
        yield "single", row[0], [(degrade(c, row, i), c) for i, c in enumerate(cleans)]
    for parts in STACKED:
        name = " + ".join(parts)
        seed = zlib.crc32(name.encode())
        yield "stacked", name, [(stacked(c, parts, torch.Generator().manual_seed(seed + i)), c)
                                for i, c in enumerate(cleans)]
    yield "clean", "clean photo", [(quantize8(c), c) for c in cleans]
    yield "flat sky", "dense haze over a flat sky, JPEG", [
        sky_under_haze(c, torch.Generator().manual_seed(SKY_SEED + i)) for i, c in enumerate(cleans)]
    if pairs is not None:
        for folder in sorted(p for p in pairs.iterdir() if (p / "degraded").is_dir()):
            keep = set(held_out([p.name for p in iter_image_paths([folder / "degraded"])]))
            yield "real pairs", folder.name, [(s.degraded, s.clean) for s in paired_samples(folder) if s.name in keep]


def has(row: str, degradation: str) -> bool:
    """Whether a row's name (``"low light"``, ``"blur + lowlight"``) has ``degradation`` in it."""
    return degradation in row.replace(" ", "")


def compare(models: dict, clean_paths: list[Path], pairs: Path | None, real: Path | None, niqe_limit: int,
            log=print, adapters: tuple[str, ...] = ()) -> list[dict]:
    """One row per test: the input and each model's mean PSNR (or median NIQE), side by side. ``adapters``: the
    names of the adapters attached to every model, in the same order; a PSNR row with one's degradation in its name
    runs each model with it at weight 1 and the gate on (``with``); the NIQE rows run each base alone."""
    rows = []
    with torch.no_grad():
        for group, name, samples in _samples(clean_paths, pairs):
            row = {"group": group, "row": name, "images": len(samples), "metric": "psnr",
                   "input": statistics.fmean(_psnr(d, c) for d, c in samples)}
            on = [a for a in adapters if has(name, a)]
            if on:
                row["with"] = on
            w = torch.tensor([[float(a in on) for a in adapters]])
            for key, model in models.items():
                t = time.perf_counter()
                with blend(model, w) if on else nullcontext():
                    row[key] = statistics.fmean(_psnr(restore(model, d, gate=bool(on)).image, c) for d, c in samples)
                row[f"{key}_s"] = (time.perf_counter() - t) / len(samples)
            rows.append(row)
            log(json.dumps(row))
        if real is not None:
            from air_restore.core.niqe import niqe

            for folder in sorted(p for p in real.iterdir() if p.is_dir()):
                photos = [read_image(p).rgb for p in iter_image_paths([folder])[:niqe_limit]]
                row = {"group": "NIQE", "row": folder.name, "images": len(photos), "metric": "niqe",
                       "input": statistics.median(niqe(x) for x in photos)}
                for key, model in models.items():
                    row[key] = statistics.median(niqe(restore(model, x).image) for x in photos)
                rows.append(row)
                log(json.dumps(row))
    return rows


def verdict(rows: list[dict], tolerance: float, niqe_tolerance: float) -> tuple[bool, list[str]]:
    """(promote?, the rows that forbid it): a PSNR row that loses more than ``tolerance`` dB, or a NIQE
    median that rises more than ``niqe_tolerance``."""
    losses = []
    for r in rows:
        change = r["candidate"] - r["reference"]
        if r["metric"] == "psnr" and change < -tolerance:
            losses.append(f"{r['group']} / {r['row']}: {change:+.2f} dB")
        if r["metric"] == "niqe" and change > niqe_tolerance:
            losses.append(f"{r['group']} / {r['row']}: NIQE {change:+.2f}")
    return not losses, losses


def markdown(rows: list[dict]) -> str:
    lines = ["| group | row | images | input | reference | candidate | change |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        unit = "dB" if r["metric"] == "psnr" else "NIQE"
        name = r["row"] + (f" (+ {', '.join(r['with'])} adapter, gate on)" if r.get("with") else "")
        lines.append(f"| {r['group']} | {name} | {r['images']} | {r['input']:.2f} | {r['reference']:.2f} | "
                     f"{r['candidate']:.2f} | {r['candidate'] - r['reference']:+.2f} {unit} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--candidate", type=Path, required=True, help="base weights to judge")
    ap.add_argument("--reference", type=Path, default=None, help="base weights to beat (default: the bundled base)")
    ap.add_argument("--clean", type=Path, required=True, help="clean evaluation photos (CBSD68)")
    ap.add_argument("--limit", type=int, default=12, help="first N clean photos")
    ap.add_argument("--pairs", type=Path, default=None, help="folder of paired sets (degraded/ and clean/)")
    ap.add_argument("--real", type=Path, default=None, help="folder of real photo sets for NIQE")
    ap.add_argument("--niqe-limit", type=int, default=6, help="first N photos of each real set")
    ap.add_argument("--tolerance", type=float, default=0.1, help="largest PSNR loss allowed on any row (dB)")
    ap.add_argument("--niqe-tolerance", type=float, default=0.1, help="largest NIQE median rise allowed")
    ap.add_argument("--adapter", type=Path, action="append", default=[], metavar="DIR",
                    help="an adapter trained on the candidate (repeatable): PSNR rows with its degradation in their "
                         "name run each base with its own adapter of that name at weight 1, gate on")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    reference_path = args.reference or bundled_base_path()
    models, fps = {}, {}
    for key, path in (("reference", reference_path), ("candidate", args.candidate)):
        models[key], info = load_base(path)
        fps[key] = {"file": Path(path).name, "fingerprint": info.fingerprint,
                    "steps": info.training.get("steps"), "recipe": info.training.get("recipe", "v1")}
    names = []
    for folder in args.adapter:
        name = read_manifest(folder).get("name")
        ref = [a.path for a in all_adapters(fps["reference"]["fingerprint"]) if a.name == name and a.error is None]
        if not ref:
            raise SystemExit(f"--adapter {folder}: no installed adapter {name!r} for the reference base to compare "
                             "with")
        for key, adapter in (("reference", ref[0]), ("candidate", folder)):
            attach(models[key], name, load_for_base(adapter, fps[key]["fingerprint"])[1])
            fps[key].setdefault("adapters", {})[name] = str(adapter)
        names.append(name)
    clean_paths = iter_image_paths([args.clean])[: args.limit]
    rows = compare(models, clean_paths, args.pairs, args.real, args.niqe_limit, log=lambda s: print(s, flush=True),
                   adapters=tuple(names))
    ok, losses = verdict(rows, args.tolerance, args.niqe_tolerance)
    result = {"reference": fps["reference"], "candidate": fps["candidate"], "threads": torch.get_num_threads(),
              "tolerance_db": args.tolerance, "niqe_tolerance": args.niqe_tolerance, "rows": rows,
              "promote": ok, "losses": losses}
    print(markdown(rows))
    print(("PROMOTE" if ok else "REFUSE") + ("" if ok else ": " + "; ".join(losses)))
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    sys.exit(0 if main()["promote"] else 1)
