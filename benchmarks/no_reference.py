"""No-reference quality on real photos (no clean image exists): NIQE of the input and of the restored
image, per set, plus a contact sheet (input | restored) of a few photos to look at.

    python benchmarks/no_reference.py --real ../shared/data/real --limit 12 --out benchmarks/results/no_reference.json
    python benchmarks/no_reference.py --real DIR --limit 1 --sheet-per-set 1   # tiny (the tests do this)

NIQE is ``air_restore.core.niqe`` (lower is more natural; checked against BasicSR's code by
``niqe_check.py``), computed by ``air_restore.core.evaluation.evaluate_no_reference``, as
``air eval --no-reference DIR`` does. Sets are the sub-folders of --real; the first --limit photos of
each, by name. Restorers: the base alone and, when adapters and an estimator are installed, the base
with the adapters blended per photo by the estimator (what ``air restore`` runs); with
``--baseline-estimator FILE`` that blend again with another estimator in its place, side by side.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import blended_restorer  # noqa: E402

from air_restore.core.io.files import atomic_write_text  # noqa: E402
from air_restore.core.evaluation import evaluate_no_reference  # noqa: E402
from air_restore.core.io.images import iter_image_paths, read_image  # noqa: E402
from air_restore.core.io.weights import read_estimator  # noqa: E402
from air_restore.core.restore import restore  # noqa: E402
from air_restore.registry.store import load_base  # noqa: E402


def _pil(x: torch.Tensor, height: int) -> Image.Image:
    a = (x.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype("uint8")
    im = Image.fromarray(a)
    return im.resize((max(1, round(im.width * height / im.height)), height), Image.BICUBIC)


def contact_sheet(entries: list[tuple[str, list[tuple[str, torch.Tensor]]]], height: int = 240) -> Image.Image:
    """One row per photo: its panels side by side (label above each), the photo's name on the left."""
    label_h, gap, name_w = 18, 6, 150
    rows = [(name, [(lab, _pil(t, height)) for lab, t in panels]) for name, panels in entries]
    width = name_w + max(sum(im.width + gap for _, im in panels) for _, panels in rows)
    sheet = Image.new("RGB", (width, len(rows) * (height + label_h + gap)), "white")
    draw = ImageDraw.Draw(sheet)
    y = 0
    for name, panels in rows:
        draw.text((4, y + label_h + height // 2), name, fill="black")
        x = name_w
        for lab, im in panels:
            draw.text((x + 2, y + 3), lab, fill="black")
            sheet.paste(im, (x, y + label_h))
            x += im.width + gap
        y += height + label_h + gap
    return sheet


LABELS = {"base": "base (air-restore)", "blended": "base + blended adapters",
          "baseline": "blended, baseline estimator"}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", type=Path, required=True, help="folder whose sub-folders are sets of real photos")
    ap.add_argument("--sets", nargs="*", default=None, help="sub-folder names (default: all)")
    ap.add_argument("--limit", type=int, default=0, help="first N photos of each set (0 = all)")
    ap.add_argument("--sheet-per-set", type=int, default=1, help="photos per set on the contact sheet")
    ap.add_argument("--no-blended", action="store_true", help="skip the base + blended adapters restorer")
    ap.add_argument("--baseline-estimator", type=Path, default=None,
                    help="another estimator for these adapters, whose blend is measured beside (e.g. the previous one)")
    ap.add_argument("--baseline-label", default=None, help="how the report names the baseline estimator")
    ap.add_argument("--baseline-no-dead-zones", action="store_true",
                    help="the baseline without the dead zones (core.deadzone): this pipeline's blend, or with "
                    "--baseline-estimator that estimator's")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", type=Path, default=None, help="JSON here; the contact sheet beside it")
    args = ap.parse_args(argv)

    model, info = load_base(device=args.device)
    restorers = {"base": lambda x: restore(model, x).image}
    blended, why = (None, "--no-blended") if args.no_blended else blended_restorer(args.device)
    if blended is not None:
        restorers["blended"] = lambda x: blended.restore(x).image
        if args.baseline_estimator is not None or args.baseline_no_dead_zones:  # the same model and adapters
            other = blended
            if args.baseline_estimator is not None:  # another estimator
                other = dataclasses.replace(other, estimator=read_estimator(args.baseline_estimator))
            if args.baseline_no_dead_zones:
                other = dataclasses.replace(other, dead_zones=())
            restorers["baseline"] = lambda x: other.restore(x).image
    else:
        print(f"base + blended adapters: skipped ({why})", file=sys.stderr)
    sets = args.sets or sorted(p.name for p in args.real.iterdir() if p.is_dir())
    results = {"fingerprint": info.fingerprint, "device": args.device, "limit": args.limit, "sets": [],
               **({"blended": {"adapters": blended.adapters}} if blended else {"blended_skipped": why}),
               **({"baseline": args.baseline_label or str(args.baseline_estimator or "without dead zones")}
                  if "baseline" in restorers else {})}
    sheet_entries = []
    for name in sets:
        paths = iter_image_paths([args.real / name])
        if args.limit:
            paths = paths[: args.limit]
        row = {"set": name, "photos": len(paths)}
        for key, fn in restorers.items():
            t = time.perf_counter()
            with torch.no_grad():
                r = evaluate_no_reference(paths, fn, on_skip=lambda p, why: print(f"skipped {p}: {why}", file=sys.stderr))
            row.update({"images": r["images"], "input_niqe_median": r["input_niqe_median"],
                        "input_niqe": r["input_niqe"], f"{key}_niqe_median": r["restored_niqe_median"],
                        f"{key}_niqe": r["restored_niqe"], f"{key}_lower": r["restored_better"],
                        f"{key}_s": time.perf_counter() - t,
                        f"{key}_rows": [{k: v for k, v in x.items() if k in ("image", "input_niqe", "restored_niqe")}
                                        for x in r["rows"]]})
        results["sets"].append(row)
        print(json.dumps({k: v for k, v in row.items() if not k.endswith("_rows")}), flush=True)
        for p in paths[: args.sheet_per_set]:
            x = read_image(p).rgb
            with torch.no_grad():
                panels = [("input", x)] + [(LABELS[k], fn(x)) for k, fn in restorers.items()]
            sheet_entries.append((f"{name}/{p.name}", panels))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        sheet = args.out.with_name("contact_sheet_real.png")
        contact_sheet(sheet_entries).save(sheet)
        results["contact_sheet"] = sheet.name
        atomic_write_text(args.out, json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
