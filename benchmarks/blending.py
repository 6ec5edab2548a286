"""Base alone vs base + estimator-blended adapters vs the oracle adapter, per task (issue #3).

    python benchmarks/blending.py --clean ../shared/data/eval/CBSD68 --pairs ../shared/data/pairs \
        --out benchmarks/results/blending.json
    python benchmarks/blending.py --clean DIR --limit 1 --size 64           # tiny (the tests do this)

Single degradations: every CBSD68 image degraded by each built-in plugin at severity 0.5 (image i of
task t uses seed 1000·t + i). Mixed: two plugins stacked (noise+blur, haze+noise, rain+lowlight,
lowlight+noise), each at 0.5; with ``--stacks all`` every pair of the seven built-ins (21) and four triples
instead, each stacked in physical order (scene → optics → exposure → sensor → compression). A plugin
without an adapter (snow before 2026-12-07, a third party's): its rows measure what the pipeline
does to a degradation it was not given an adapter for, and have no top-1 unless an adapter of a later
part of the stack stands in (top-1 counts the first part that has an adapter). Real pairs: Rain100H and PolyU (the adapters never saw them). Columns:
input; the base alone (adapter weights 0); blended (the estimator's weights); the oracle (weight 1 on
the right adapter, 0 elsewhere; for a mixed task, 1 on both). Also the estimator's top-1 on the
single-degradation images. Every column is the pipeline as `air restore` runs it, with its clean-pixel gate
(``core.restore``; ``--no-gate`` turns it off here too) and the estimator's strength; ``blended_ungated`` is
the estimator's blend without the gate, ``blended_no_fallback`` without the fallback adapter's share
(each blended column with the second pass where haze or low light led the first, ``core.routing.Sequel``, as
`air restore` runs it; the routing of ``blended_without``'s second pass is the whole pipeline's)
(``core.routing``), ``blended_full`` at strength 1 (for an estimator with a strength output). All PSNRs on 8-bit-quantized inputs, whole images, tiles of 512. With
``--baseline-estimator FILE`` every row also gets the pipeline with that estimator in this one's place (the
same fallback and detection rules), side by side; an adapter it was not trained for gets weight 0 unless a
rule weights it (as `air restore` does with an estimator older than an adapter), so an estimator from before
an adapter was added measures the pipeline as it was. With ``--without NAME``
every row also gets ``blended_without``: the routing of the pipeline with adapter NAME detached (the estimator's
output for it unread, the fallback and detection rules run on the rest, as for a user who removes it), which is
the pipeline as it was before that adapter up to the estimator. Until 2026-12-05 (second session) the column set
NAME's weight to 0 after the routing; since the jpeg rule yields to realnoise (``core.routing.Detected``) that left
the jpeg weight scaled down for an adapter no longer there.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import statistics
import time
import zlib
from pathlib import Path

import torch

from air_restore.core.io.files import atomic_write_text
from air_restore.core.metrics import psnr, quantize8
from air_restore.core.routing import estimated
from air_restore.core.io.images import iter_image_paths, read_image
from air_restore.registry.discovery import get_degradation
from air_restore.registry.store import bundled_adapters, bundled_estimator_path
from air_restore.registry.pipeline import Restorer, load_restorer
from air_restore.core.io.weights import read_estimator
from air_restore.registry.store import load_base

#: Snow last, so the seeds of the others (1000 · its index) are those of the tables before it came in.
SINGLE = ("noise", "blur", "haze", "rain", "lowlight", "jpeg", "snow")
MIXED = (("noise", "blur"), ("haze", "noise"), ("rain", "lowlight"), ("lowlight", "noise"))
#: Physical order of stacking (scene → optics → exposure → sensor → compression), for ``--stacks all``.
PHYSICAL = ("haze", "rain", "snow", "blur", "lowlight", "noise", "jpeg")
TRIPLES = (("haze", "lowlight", "noise"), ("rain", "blur", "noise"), ("blur", "lowlight", "noise"),
           ("lowlight", "noise", "jpeg"))
ALL_STACKS = (*itertools.combinations(PHYSICAL, 2), *TRIPLES)
PAIRS = {"rain_Rain100H": ("rain",), "noise_real_PolyU": ("noise",)}
SEVERITY = 0.5


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return psnr(a, b, quantize=True).item()


def stacked(clean: torch.Tensor, parts: tuple[str, ...], g: torch.Generator, severity: float = SEVERITY) -> torch.Tensor:
    """``clean`` [3, H, W] degraded by each plugin of ``parts`` in turn, then quantized to 8 bits."""
    x = clean[None]
    for p in parts:
        x = get_degradation(p).synthesize(x, g, severity).clamp(0, 1)
    return quantize8(x[0])


def pipeline(weights: Path | None = None, folders: list[Path] | None = None) -> Restorer:
    """A restorer built from exactly these files, whatever the local store holds: the base ``weights``
    (default: bundled), the adapter ``folders`` (default: the bundled ones) and the bundled estimator."""
    r = Restorer(*load_base(weights))
    for f in folders if folders is not None else [a.path for a in bundled_adapters()]:
        r.attach_folder(f)
    r.estimator, r.estimator_path = read_estimator(bundled_estimator_path()), bundled_estimator_path()
    return r


#: The real pairs' held-out share: ``air add-degradation NAME --data SET --holdout 0.2`` (seed 0) trains a
#: real-pair adapter (realnoise, heavyrain) on the rest, so these are photos no shipped weight has seen.
HOLDOUT = 0.2
#: How the real pairs were chosen, recorded with the results: before/after tables compare real rows only
#: between runs on the same pairs (until 2026-11-29: the last 20 by name).
PAIRS_SPLIT = f"air add-degradation --holdout {HOLDOUT}, seed 0, whole scenes"  # by photo until ca6732e


def held_out_pairs(root: Path, limit: int, size: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(degraded, clean) of the first ``limit`` held-out pairs of a paired folder (the seeded split of
    ``air add-degradation --holdout`` :data:`HOLDOUT`, seed 0), centre-cropped to ``size``."""
    from air_restore.registry.pairs import split

    names = [p.name for p in iter_image_paths([root / "degraded"])]
    names = [names[i] for i in split(names, HOLDOUT, 0)[1]][:limit]
    return [(_crop(read_image(root / "degraded" / n).rgb, size), _crop(read_image(root / "clean" / n).rgb, size))
            for n in names]


def _crop(x: torch.Tensor, size: int) -> torch.Tensor:
    if not size:
        return x
    _, h, w = x.shape
    s = min(size, h, w)
    return x[:, (h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]


def _row(r, task: str, parts: tuple[str, ...], samples, baseline=None, without: str | None = None) -> dict:
    """PSNR of the input, the base alone, the estimator's blend and the oracle (weight 1 on each of ``parts``;
    none for a clean photo), the estimator's top-1 and its mean weights; with ``baseline`` (``r`` with another
    estimator) also the blend it routes to; with ``without`` (an adapter) also the blend routed with that adapter
    detached (weight 0, and no rule reads its estimated weight)."""
    oracle_w = r.weights_from({p: 1.0 for p in parts if p in r.adapters})  # none for a degradation without one
    first = next((p for p in parts if p in r.adapters), None)  # what top-1 counts
    acc = {"input": [], "base": [], "blended": [], "oracle": []}
    weights, strengths, top1 = [], [], 0
    zero = torch.zeros(len(r.adapters))
    if without is not None:  # routed as if NAME were not attached, so no rule reads its weight
        k = r.adapters.index(without)
        detached = dataclasses.replace(r, adapters=r.adapters[:k] + r.adapters[k + 1 :])
    for degraded, clean in samples:
        w, strength, extra = r.route(degraded)
        keep = r.also_clean(w, degraded)  # the gate's keep rules, as `air restore` applies them (core.routing)
        weights.append(w)
        if r.fallback is not None:  # the estimator's weights alone, without the fallback's part (core.routing)
            est_only = w.clone()
            if extra:
                est_only[r.adapters.index(r.fallback.adapter)] -= extra
            acc.setdefault("blended_no_fallback", []).append(
                _psnr(r.restore(degraded, est_only, strength=strength, also_clean=keep, again=True).image, clean)
                if extra else None)
        strengths.append(strength)
        if baseline is not None:  # the whole routing (fallback, detection rules) with the other estimator
            wb, b_strength, _ = baseline.route(degraded)
            acc.setdefault("blended_baseline", []).append(
                _psnr(baseline.restore(degraded, wb, strength=b_strength, also_clean=baseline.also_clean(wb, degraded),
                                       again=True).image, clean))
        if without is not None:
            part, s0, _ = detached.route(degraded)
            w0 = torch.cat([part[:k], torch.zeros(1), part[k:]])
            acc.setdefault("blended_without", []).append(
                _psnr(r.restore(degraded, w0, strength=s0, also_clean=detached.also_clean(part, degraded), again=True).image,
                      clean))
        top1 += (r.adapters[int(w.argmax())] == first) if parts else bool(w.max() < 0.5)
        acc["input"].append(_psnr(degraded, clean))
        acc["base"].append(_psnr(r.restore(degraded, zero).image, clean))
        blended = r.restore(degraded, w, strength=strength, also_clean=keep, again=True)  # what `air restore` gives
        acc["blended"].append(_psnr(blended.image, clean))
        if r.estimator is not None and r.estimator.config.strength:  # the same blend at full strength
            acc.setdefault("blended_full", []).append(
                _psnr(r.restore(degraded, w, also_clean=keep, again=True).image, clean))
        if r.gate:  # the same blend without the clean-pixel gate, side by side
            acc.setdefault("blended_ungated", []).append(
                _psnr(r.restore(degraded, w, gate=False, strength=strength, again=True).image, clean))
        acc["oracle"].append(_psnr(r.restore(degraded, oracle_w).image, clean))
    if "blended_no_fallback" in acc:  # where the fallback took nothing, the blend is the same image
        acc["blended_no_fallback"] = [b if v is None else v for v, b in zip(acc["blended_no_fallback"], acc["blended"])]
    mean_w = torch.stack(weights).mean(0)
    return {"task": task, "images": len(samples), **{k: statistics.fmean(v) for k, v in acc.items()},
            "top1": None if parts and first is None else top1 / len(samples),
            "mean_weights": dict(zip(r.adapters, map(float, mean_w))),
            "mean_strength": statistics.fmean(strengths)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clean", type=Path, required=True, help="clean photos (CBSD68)")
    ap.add_argument("--pairs", type=Path, default=None, help="folder holding the real paired sets")
    ap.add_argument("--limit", type=int, default=0, help="images per task (0 = all)")
    ap.add_argument("--pairs-limit", type=int, default=20, help="pairs per real set (of its held-out 20%%)")
    ap.add_argument("--size", type=int, default=0, help="centre-crop side (0 = whole images)")
    ap.add_argument("--estimator", type=Path, default=None, help="an estimator file to judge instead of the one "
                    "`air restore` would pick (for the same adapters)")
    ap.add_argument("--baseline-estimator", type=Path, default=None,
                    help="another estimator (for these adapters or some of them), whose blend is measured beside "
                    "(e.g. the previous one)")
    ap.add_argument("--baseline-label", default=None, help="how the report names the baseline estimator")
    ap.add_argument("--baseline-no-dead-zones", action="store_true",
                    help="the baseline column without the dead zones (core.deadzone): this pipeline's blend, or with "
                    "--baseline-estimator that estimator's")
    ap.add_argument("--stacks", choices=("default", "all"), default="default",
                    help="default: the four mixed tasks above; all: every pair of the built-ins and four triples")
    ap.add_argument("--no-gate", action="store_true", help="every column without the clean-pixel gate")
    ap.add_argument("--without", default=None, help="an adapter whose weight is set to 0 in one more column, "
                    "blended_without (the pipeline before it was added)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    started = time.time()
    r = load_restorer()
    r.gate = not args.no_gate
    if args.estimator is not None:
        r.estimator, r.estimator_path = read_estimator(args.estimator), args.estimator
        if list(r.estimator.config.adapters) != estimated(r.adapters):  # a detected adapter has a rule instead
            raise SystemExit(f"{args.estimator}: made for {list(r.estimator.config.adapters)}, not "
                             f"{estimated(r.adapters)}")
    baseline = None
    if args.baseline_estimator is not None:
        other = read_estimator(args.baseline_estimator)
        if not set(other.config.adapters) <= set(r.adapters):
            raise SystemExit(f"{args.baseline_estimator}: made for {list(other.config.adapters)}, not a subset "
                             f"of {r.adapters}")
        baseline = dataclasses.replace(r, estimator=other)  # the same model, adapters and rules
    if args.baseline_no_dead_zones:
        baseline = dataclasses.replace(baseline or r, dead_zones=())
    if args.without is not None and args.without not in r.adapters:
        raise SystemExit(f"--without {args.without}: no such active adapter; active: {', '.join(r.adapters)}")
    clean = [_crop(read_image(p).rgb, args.size) for p in iter_image_paths([args.clean])[: args.limit or None]]
    rows, mixed, real = [], [], []
    for t, name in enumerate(SINGLE):
        synth = get_degradation(name).synthesize
        samples = [(quantize8(synth(c[None], torch.Generator().manual_seed(1000 * t + i), SEVERITY)[0]), c)
                   for i, c in enumerate(clean)]
        rows.append(_row(r, name, (name,), samples, baseline, args.without))
        print(json.dumps(rows[-1]), flush=True)
    for t, parts in enumerate(MIXED if args.stacks == "default" else ALL_STACKS):
        seed = 50_000 + 1000 * t if args.stacks == "default" else zlib.crc32("+".join(parts).encode())
        samples = [(stacked(c, parts, torch.Generator().manual_seed(seed + i)), c) for i, c in enumerate(clean)]
        mixed.append(_row(r, "+".join(parts), parts, samples, baseline, args.without))
        print(json.dumps(mixed[-1]), flush=True)
    # Nothing wrong: every adapter should stay off, and the photo come back as it is.
    clean_row = _row(r, "clean", (), [(quantize8(c), c) for c in clean], baseline, args.without)
    print(json.dumps(clean_row), flush=True)
    if args.pairs is not None:
        for folder, parts in PAIRS.items():
            root = args.pairs / folder
            if not root.is_dir():
                continue
            real.append(_row(r, folder, parts, held_out_pairs(root, args.pairs_limit, args.size), baseline,
                             args.without))
            print(json.dumps(real[-1]), flush=True)
    result = {
        "clean_set": args.clean.name, "images_per_task": len(clean), "severity": SEVERITY,
        "crop": args.size or "whole", "adapters": r.adapters, "estimator": str(r.estimator_path.name if r.estimator_path else None),
        "without": args.without,
        "second_pass": r.sequel is not None,  # core.routing.Sequel in the blended columns
        "tone": r.tone is not None,  # core.tone.ToneGuard in the blended columns
        "baseline_estimator": (args.baseline_label or str(args.baseline_estimator or "without dead zones"))
        if baseline is not None else None,
        "stacks": args.stacks, "pairs_split": PAIRS_SPLIT,
        "base_fingerprint": r.info.fingerprint, "threads": torch.get_num_threads(), "gate": r.gate,
        "single": rows, "mixed": mixed, "clean": clean_row, "real": real,
        "estimator_top1_single": statistics.fmean(x["top1"] for x in rows if x["top1"] is not None),
        "wall_s": round(time.time() - started, 1),
    }
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
