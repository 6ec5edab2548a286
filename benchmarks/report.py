"""Write BENCHMARKS.md from the JSON results of the other scripts in benchmarks/results/.

    python benchmarks/quality.py --clean ../shared/data/eval/CBSD68 --bm3d --out benchmarks/results/quality_cbsd68.json
    python benchmarks/segmentation.py --clean ../shared/data/eval/CBSD68 --out benchmarks/results/segmentation.json
    air eval --pairs ../shared/data/pairs/rain_Rain100H --csv benchmarks/results/eval_rain100h.csv
    air eval --pairs ../shared/data/pairs/noise_real_PolyU --csv benchmarks/results/eval_polyu.csv
    python benchmarks/adapters.py --data ../shared/data/pairs --out benchmarks/results/adapters.json
    python benchmarks/estimator.py --train ../shared/data/train/clean --eval ../shared/data/eval/CBSD68 --out benchmarks/results/estimator.json
    python benchmarks/speed.py --out benchmarks/results/speed.json
    python benchmarks/report.py
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def quality_section(q: dict) -> list[str]:
    has_bm3d = any("cbm3d_psnr" in r for r in q["rows"])
    head = "| degradation | input PSNR / SSIM | air-restore base PSNR / SSIM | gain (dB) |"
    sep = "|---|---|---|---|"
    if has_bm3d:
        head += " CBM3D PSNR / SSIM | air − CBM3D (dB) | CBM3D s/image |"
        sep += "---|---|---|"
    lines = [
        f"## Quality: {q['set']} ({q['images']} images), degraded by the project's own plugins",
        "",
        "Seeds: `crc32(row name) + image index`; severities and options in `benchmarks/quality.py` (ROWS).",
        "Means over images; PSNR/SSIM by torchmetrics on 8-bit-quantized RGB. Restored on "
        f"`{q['device']}`, base `{q['fingerprint']}`. CBM3D (`bm3d` package, `bm3d_rgb` with the true σ) "
        "runs side by side on the same noisy images.",
        "",
        head,
        sep,
    ]
    for r in q["rows"]:
        line = (f"| {r['row']} | {r['input_psnr']:.2f} / {r['input_ssim']:.3f} | {r['air_psnr']:.2f} / "
                f"{r['air_ssim']:.3f} | {r['air_psnr'] - r['input_psnr']:+.2f} |")
        if has_bm3d:
            if "cbm3d_psnr" in r:
                line += (f" {r['cbm3d_psnr']:.2f} / {r['cbm3d_ssim']:.3f} | {r['air_psnr'] - r['cbm3d_psnr']:+.2f} |"
                         f" {r['cbm3d_s']:.1f} |")
            else:
                line += " – | – | – |"
        lines.append(line)
    return lines + [""]


def segmentation_section(s: dict) -> list[str]:
    lines = [
        f"## Segmentation head: held-out Degradation CutMix crops ({s['set']}, {s['crops']} crops of {s['crop']}², seed {s['seed']})",
        "",
        f"Per-pixel accuracy: **{100 * s['pixel_accuracy']:.1f}%**. Per-class recall:",
        "",
        "| " + " | ".join(s["classes"]) + " |",
        "|" + "---|" * len(s["classes"]),
        "| " + " | ".join(f"{100 * s['recall'][c]:.1f}%" for c in s["classes"]) + " |",
        "",
    ]
    return lines


def adapters_section(a: dict) -> list[str]:
    lines = [
        "## Phase II adapters on real paired sets (held-out split)",
        "",
        f"One rank-4 LoRA adapter per set on the frozen bundled base, {a['steps']} steps of batch {a['batch_size']} × "
        f"{a['crop']}² crops on the CPU (one thread), via `air train adapter`; PSNR on the held-out last 10% "
        "(by file name), whole images.",
        "",
        "| set | train / held-out images | input | base | base + adapter | gain over base | train time | adapter file |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in a["sets"]:
        lines.append(
            f"| {r['set']} | {r['train_images']} / {r['heldout_images']} | {r['heldout_psnr_input']:.2f} | "
            f"{r['heldout_psnr_base']:.2f} | {r['heldout_psnr_adapter']:.2f} | "
            f"{r['heldout_psnr_adapter'] - r['heldout_psnr_base']:+.2f} | {r['wall_s']:.0f} s | "
            f"{r['adapter_bytes'] / 1e3:.0f} kB |"
        )
    return lines + [""]


def pairs_section(results: Path) -> list[str]:
    import csv
    import statistics

    rows = []
    for name, label in (("eval_rain100h.csv", "rain_Rain100H"), ("eval_polyu.csv", "noise_real_PolyU")):
        path = results / name
        if not path.exists():
            continue
        data = list(csv.DictReader(open(path)))
        mean = {k: statistics.fmean(float(r[k]) for r in data) for k in data[0] if k != "image"}
        rows.append(f"| {label} | {len(data)} | {mean['input_psnr']:.2f} / {mean['input_ssim']:.3f} | "
                    f"{mean['restored_psnr']:.2f} / {mean['restored_ssim']:.3f} | "
                    f"{mean['restored_psnr'] - mean['input_psnr']:+.2f} |")
    if not rows:
        return []
    return [
        "## Real paired sets, base alone (`air eval --pairs DIR --csv ...`)",
        "",
        "| set | images | input PSNR / SSIM | air-restore base PSNR / SSIM | gain (dB) |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]


def estimator_section(e: dict) -> list[str]:
    names = e["adapters"]
    lines = [
        "## Estimator: which degradation is it? (held-out, whole images)",
        "",
        f"The tiny estimator ({e['parameters'] / 1e3:.0f}k parameters) trained on {e['train_samples']} synthetic "
        f"crops for {e['steps']} steps on the CPU ({e['synth_s'] + e['train_s']:.0f} s), then shown "
        f"{e['eval_images']} {e['eval_set']} images, each with one built-in degradation at a random severity in "
        f"[0.2, 1]. Top-1 accuracy: **{100 * e['top1']:.1f}%**. Confusion (rows: truth, columns: prediction):",
        "",
        "| | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for name, row in zip(names, e["confusion"]):
        lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    return lines + [""]


def speed_section(sp: dict) -> list[str]:
    m = sp["machine"]
    lines = [
        "## Speed and memory",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} with {m['torch_threads']} threads"
        + (f"; GPU {m['gpu']}" if "gpu" in m else "; no GPU") + ". Whole image in one pass, median of runs "
        "after a warm-up.",
        "",
        "| size | device | median s | ms / megapixel |",
        "|---|---|---|---|",
    ]
    for r in sp["cpu"] + sp.get("gpu", []):
        lines.append(f"| {r['size']}² | {r['device']} | {r['median_s']:.3f} | {r['ms_per_megapixel']:.0f} |")
    t = sp["tiling"]
    lines += [
        "",
        f"Tiled vs whole image ({t['size']}² photo with σ=25 noise, {t['tile']} px tiles, {t['overlap']} px overlap): "
        f"**{t['psnr_tiled_vs_whole']:.1f} dB** PSNR between the two outputs (max abs difference "
        f"{t['max_abs_diff']:.3f}); `benchmarks/results/tiling_tiled.png` shows no seams.",
    ]
    if sp.get("blending"):
        lines += [
            "",
            f"Blending K rank-4 LoRA adapters with per-image weights ({sp['blending'][0]['size']}² image, CPU, "
            "adapters with random factors on every target conv; time relative to the base alone, same run):",
            "",
            "| K | base s | unmerged s (×base) | merged per image s (×base) |",
            "|---|---|---|---|",
        ]
        for r in sp["blending"]:
            lines.append(f"| {r['adapters']} | {r['base_s']:.3f} | {r['unmerged_s']:.3f} ({r['unmerged_vs_base']:.2f}×) | "
                         f"{r['merged_s']:.3f} ({r['merged_vs_base']:.2f}×) |")
        lines.append("")
    if "big_image" in sp:
        b = sp["big_image"]
        lines.append(
            f"`air restore` on a {b['width']}×{b['height']} image on the CPU: peak memory **{b['peak_rss_mb']:.0f} MB** "
            f"(RSS of the whole process), {b['wall_s']:.0f} s."
        )
    return lines + [""]


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, default=HERE / "results")
    ap.add_argument("--out", type=Path, default=HERE.parent / "BENCHMARKS.md")
    args = ap.parse_args(argv)
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `benchmarks/report.py` on {datetime.date.today()} at commit {_commit()} "
        f"({platform.system()} {platform.machine()}). Every number comes from a script in `benchmarks/` "
        "(commands at the top of `benchmarks/report.py`); rerun them to check.",
        "",
    ]
    for name, section in (("quality_cbsd68.json", quality_section), ("segmentation.json", segmentation_section)):
        data = _load(args.results / name)
        if data:
            lines += section(data)
    lines += pairs_section(args.results)
    for name, section in (("adapters.json", adapters_section), ("estimator.json", estimator_section),
                          ("speed.json", speed_section)):
        data = _load(args.results / name)
        if data:
            lines += section(data)
    notes = args.results / "NOTES.md"
    if notes.exists():
        lines += [notes.read_text().rstrip(), ""]
    text = "\n".join(lines)
    args.out.write_text(text)
    return text


if __name__ == "__main__":
    main()
