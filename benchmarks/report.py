"""Write BENCHMARKS.md from the JSON results of the other scripts in benchmarks/results/.

    python benchmarks/quality.py --clean ../shared/data/eval/CBSD68 --limit 12 --bm3d --tta --reuse benchmarks/results/quality_cbsd68.json --out benchmarks/results/quality_cbsd68.json
    python benchmarks/plots.py
    python benchmarks/estimator_variant.py --crop 0 --out runs/est_whole.safetensors   # the baseline of the next two
    python benchmarks/no_reference.py --real ../shared/data/real --limit 12 --baseline-estimator runs/prev.safetensors --baseline-label "the estimator of 6f0a01c" --out benchmarks/results/no_reference.json   # runs/prev.safetensors: git show 6f0a01c:registry/weights/estimator.safetensors
    python benchmarks/reliability.py --examples 200 --out benchmarks/results/reliability.json
    python benchmarks/niqe_check.py --basicsr /tmp/bsr/basicsr-1.4.2 --out benchmarks/results/niqe_check.json
    python benchmarks/segmentation.py --clean ../shared/data/eval/CBSD68 --out benchmarks/results/segmentation.json
    air eval --pairs ../shared/data/pairs/rain_Rain100H --csv benchmarks/results/eval_rain100h.csv
    air eval --pairs ../shared/data/pairs/noise_real_PolyU --csv benchmarks/results/eval_polyu.csv
    python benchmarks/adapters.py --data ../shared/data/pairs --out benchmarks/results/adapters.json
    air train adapter jpeg --synthetic jpeg --family --clean ../shared/data/train/clean --out registry/weights/adapters/jpeg --steps 1000
    python benchmarks/blending.py --clean ../shared/data/eval/CBSD68 --limit 12 --pairs ../shared/data/pairs --stacks all --without realnoise --baseline-estimator runs/prev.safetensors --baseline-label "the estimator of 6f0a01c (realnoise learnt on a split by photo)" --out benchmarks/results/blending.json
    python benchmarks/gate.py --clean ../shared/data/eval/CBSD68 --pairs ../shared/data/pairs --limit 12 --out benchmarks/results/gate.json
    python benchmarks/add_degradation.py --data runs/clean200 --steps 300 --eval-images 16 --out benchmarks/results/add_snow.json
    python benchmarks/add_degradation.py --data runs/clean200 --steps 300 --estimator-steps 800 --eval-images 16 --time-budget 8 --out benchmarks/results/add_snow_budget.json
    python benchmarks/add_degradation.py --pairs --data ../shared/data/pairs/noise_real_PolyU --name realnoise --holdout 0.2 --eval-images 20 --out benchmarks/results/add_real_polyu.json   # and rain_Rain100H → heavyrain, underwater_EUVP → underwater
    python benchmarks/add_degradation.py --pairs --data ../shared/data/pairs/noise_real_PolyU --name realnoise --holdout 0.2 --clean runs/clean200 --eval-images 20 --home runs/store --out benchmarks/results/add_real_polyu_scenes.json   # the bundled realnoise adapter and estimator, run on the bundle without realnoise (CONTRIBUTING.md)
    python benchmarks/real_baselines.py --pairs ../shared/data/pairs --out benchmarks/results/real_cbm3d.json
    python benchmarks/peer.py --data ../shared/data/train/clean --work runs/peer_lr1e-4 --lr 1e-4 --clean ../shared/data/eval/CBSD68 --limit 12 --out benchmarks/results/peer.json
    python benchmarks/peer.py --data ../shared/data/train/clean --work runs/peer --clean ../shared/data/eval/CBSD68 --limit 12 --out benchmarks/results/peer_lr5e-4.json
    air train adapter noise --synthetic noise --over haze,rain --clean ../shared/data/train/clean --out runs/over/noise --steps 500
    python benchmarks/over.py --adapter runs/over/noise --clean ../shared/data/eval/CBSD68 --limit 12 --out benchmarks/results/over.json
    air train adapter noise --synthetic noise --over haze,rain,lowlight --clean ../shared/data/train/clean --out runs/over_ll/noise --steps 500
    python benchmarks/over.py --adapter runs/over_ll/noise --clean ../shared/data/eval/CBSD68 --limit 12 --out benchmarks/results/over_lowlight.json
    air train adapter noise --synthetic noise --over haze,rain --rank 8 --clean ../shared/data/train/clean --out runs/over_r8/noise --steps 500
    python benchmarks/over.py --adapter runs/over_r8/noise --clean ../shared/data/eval/CBSD68 --limit 12 --out benchmarks/results/over_rank8.json
    air train adapter noise --synthetic noise --family --clean ../shared/data/train/clean --out runs/noise_fam --steps 400
    python benchmarks/family.py --adapter runs/noise_fam --clean ../shared/data/eval/CBSD68 --pairs ../shared/data/pairs --limit 12 --out benchmarks/results/family_noise.json
    air train adapter rain --synthetic rain --family --clean runs/clean200 --out runs/rain_fam --steps 300
    python benchmarks/family.py --adapter runs/rain_fam --clean ../shared/data/eval/CBSD68 --pairs ../shared/data/pairs --limit 12 --out benchmarks/results/family_rain.json
    mkdir -p runs/lowlight_before && for f in adapter_config.json adapter_model.safetensors air_manifest.json; do git show 74e6138:registry/weights/adapters/lowlight/$f > runs/lowlight_before/$f; done  # the adapter before
    air train adapter lowlight --synthetic lowlight --family --init runs/lowlight_before --clean ../shared/data/train/clean --out runs/lowlight_fam --steps 500
    air train adapter haze --synthetic haze --family --init registry/weights/adapters/haze --clean ../shared/data/train/clean --out runs/haze_fam --steps 250 --crop 192 --batch-size 4
    python benchmarks/family.py --adapter runs/haze_fam --pipeline --clean ../shared/data/eval/CBSD68 --pairs ../shared/data/pairs --limit 12 --out benchmarks/results/family_haze.json   # before copying it into registry/weights
    python benchmarks/family.py --adapter registry/weights/adapters/lowlight --baseline runs/lowlight_before --pipeline --clean ../shared/data/eval/CBSD68 --pairs ../shared/data/pairs --limit 12 --out benchmarks/results/family_lowlight.json
    python benchmarks/estimator.py --train ../shared/data/train/clean --eval ../shared/data/eval/CBSD68 --out benchmarks/results/estimator.json
    python benchmarks/speed.py --runs 3 --out benchmarks/results/speed.json
    python benchmarks/speed_paths.py --out benchmarks/results/speed_paths.json
    python benchmarks/speed_cpu.py --threads 2 --out benchmarks/results/speed_cpu.json
    python benchmarks/speed_cpu.py --threads 2 1 --variants "tile 768/128" --out benchmarks/results/speed_cpu_default.json
    python benchmarks/speed_cpu.py --variants "tile 1024/128" "tile 1280/128" "tile 768/128" --threads 2 --sizes --tiled 2048 --out benchmarks/results/speed_cpu_tiles.json
    python benchmarks/arch_speed.py --configs v1 --runs 5 --precision fp32 --out benchmarks/results/arch_speed_v1_fp32.json
    python benchmarks/arch_speed.py --configs v1 --runs 5 --precision bf16 --out benchmarks/results/arch_speed_v1_bf16.json
    python benchmarks/speed_cpu.py --variants "tile 1024/128" "tile 768/128" --sizes 512 1024 --threads 2 --out benchmarks/results/speed_cpu_tiles_bf16.json
    python benchmarks/speed_cpu.py --variants "tile 1024/128" "tile 768/128" --sizes 512 --threads 2 --precision fp32 --out benchmarks/results/speed_cpu_tiles_fp32.json
    python benchmarks/arch_speed.py --out benchmarks/results/arch_speed.json
    python benchmarks/fast_paths.py --clean ../shared/data/eval/CBSD68 --limit 12 --half-limit 3 --out benchmarks/results/fast_paths.json
    python benchmarks/memory.py --fit --out benchmarks/results/memory.json
    python benchmarks/train_speed.py --before /tmp/before_pkg --repeats 2 --out benchmarks/results/train_speed.json  # see its docstring
    python benchmarks/profile_restore.py --sizes 512 2048 --threads 2 --out benchmarks/results/profile.json
    python benchmarks/web.py --runs 3 --out benchmarks/results/web.json
    python benchmarks/batch.py --photos ../shared/data/eval/CBSD68 --limit 32 --runs 3 --out benchmarks/results/batch.json
    python benchmarks/promote.py --candidate training/base-v2/base.safetensors --clean ../shared/data/eval/CBSD68 --limit 12 --pairs ../shared/data/pairs --real ../shared/data/real --out benchmarks/results/promote_STEPS.json
    air train adapter lowlight --synthetic lowlight --family --over rain,haze,blur --over-share 0.25 --clean ../shared/data/train/clean --steps 600 --weights training/base-v2/base.safetensors --out runs/v2_lowlight   # a low-light adapter on the candidate, for the next line
    python benchmarks/promote.py --candidate training/base-v2/base.safetensors --adapter runs/v2_lowlight --clean ../shared/data/eval/CBSD68 --limit 12 --pairs ../shared/data/pairs --real ../shared/data/real --out benchmarks/results/promote_chunk8_lowlight.json
    mkdir -p runs/noise_before && for f in adapter_config.json adapter_model.safetensors air_manifest.json; do git show 19d2384:registry/weights/adapters/noise/$f > runs/noise_before/$f; done  # the noise adapter before
    air train adapter noise --synthetic noise --family --grey 0.25 --clean-share 0.1 --over rain --over-share 0.15 --init runs/noise_before --rank 16 --steps 2000 --clean ../shared/data/train/clean --out registry/weights/adapters/noise --overwrite
    python benchmarks/family.py --adapter registry/weights/adapters/noise --baseline runs/noise_before --pipeline --clean ../shared/data/eval/CBSD68 --pairs ../shared/data/pairs --limit 12 --out benchmarks/results/family_noise_luminance.json
    python benchmarks/floors.py --clean ../shared/data/eval/CBSD68 --limit 12 --pairs ../shared/data/pairs --real ../shared/data/real --out benchmarks/results/floors.json
    python benchmarks/report.py
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import subprocess
from pathlib import Path

try:  # run as a script (python benchmarks/report.py) or imported by path (tests)
    from report_adapters import (add_pairs_section, add_snow_section, before_after_section, blending_section,
                                 family_section, gate_section, over_section, peer_section, peer_variants)
except ImportError:
    import importlib.util as _ilu

    _spec = _ilu.spec_from_file_location("report_adapters", Path(__file__).with_name("report_adapters.py"))
    _mod = _ilu.module_from_spec(_spec)
    _spec.loader.exec_module(_mod)
    add_snow_section, blending_section, peer_section = _mod.add_snow_section, _mod.blending_section, _mod.peer_section
    over_section, peer_variants, gate_section = _mod.over_section, _mod.peer_variants, _mod.gate_section
    family_section, before_after_section = _mod.family_section, _mod.before_after_section
    add_pairs_section = _mod.add_pairs_section

HERE = Path(__file__).resolve().parent


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _baseline(r: dict) -> tuple[str, str] | None:
    """(key, label) of a row's classical baseline; results written before baselines.py name only CBM3D."""
    if r.get("baseline"):
        return r["baseline"], r.get("baseline_label", r["baseline"])
    return ("cbm3d", "CBM3D (true σ)") if "cbm3d_psnr" in r else None


def _ps(r: dict, key: str) -> str:
    return f"{r[key + '_psnr']:.2f} / {r[key + '_ssim']:.3f}" if key + "_psnr" in r else "–"


def quality_section(q: dict) -> list[str]:
    has_blended = any("blended_psnr" in r for r in q["rows"])
    head = "| degradation | input | classical baseline | air-restore base |"
    sep = "|---|---|---|---|"
    has_tta = any("tta_psnr" in r for r in q["rows"])
    if has_blended:
        head += " base + blended adapters |"
        sep += "---|"
    if has_tta:
        head += " blended + UDAIR TTA |"
        sep += "---|"
    head += (" base − input (dB) | base − baseline (dB) | s / image: baseline, base"
             + (", blended" if has_blended else "") + (", TTA" if has_tta else "") + " |")
    sep += "---|---|---|"
    blended_note = (
        f"Blended: the adapters {', '.join(q['blended']['adapters'])} weighted per image by the estimator "
        f"(`{q['blended']['estimator']}`), through `load_restorer()` as `air restore` runs them."
        if "blended" in q else
        f"No blended column: when this ran, {q['blended_skipped']}." if "blended_skipped" in q else "")
    lines = [
        f"## Quality: {q['set']} ({q['images']} images), degraded by the project's own plugins",
        "",
        "PSNR (dB) / SSIM, means over images; seeds `crc32(row name) + image index`; severities and options in "
        "`benchmarks/quality.py` (ROWS). PSNR/SSIM by torchmetrics on 8-bit-quantized RGB. Restored on "
        f"`{q['device']}`" + (f" (torch threads: {q['torch_threads']})" if "torch_threads" in q else "")
        + f", base `{q['fingerprint']}`. Classical baselines (`benchmarks/baselines.py`, `bm3d` package) run on "
        "the same degraded images: CBM3D is given the true σ; the dark channel prior (15 px patches, ω 0.95, "
        "guided-filter transmission) and the LIME-style illumination map (guided filter, γ 0.8) are applied as "
        "published, to the sRGB image. Seconds are medians per image on this shared machine. " + blended_note
        + (" *TTA*: the blended output refined by the UDAIR plugin with 5 steps of test-time adaptation, "
           "as `air restore --tta` runs it." if has_tta else "")
        + (f" ({q['reused']}; base and blended are timed side by side in one run.)" if "reused" in q else ""),
        "",
        head,
        sep,
    ]
    for r in q["rows"]:
        b = _baseline(r)
        line = (f"| {r['row']} | {_ps(r, 'input')} | " + (f"{b[1]}: {_ps(r, b[0])}" if b else "–")
                + f" | {_ps(r, 'air')} |")
        if has_blended:
            line += f" {_ps(r, 'blended')} |"
        if has_tta:
            line += f" {_ps(r, 'tta')} |"
        line += f" {r['air_psnr'] - r['input_psnr']:+.2f} | "
        line += f"{r['air_psnr'] - r[b[0] + '_psnr']:+.2f} |" if b else "– |"
        times = [f"{r[b[0] + '_s']:.2f}" if b and b[0] + "_s" in r else "–",
                 f"{r['air_s']:.2f}" if "air_s" in r else "–"]
        if has_blended:
            times.append(f"{r['blended_s']:.2f}" if "blended_s" in r else "–")
        if has_tta:
            times.append(f"{r['tta_s']:.2f}" if "tta_s" in r else "–")
        lines.append(line + " " + ", ".join(times) + " |")
    lines.append("")
    for png, alt in (("psnr_per_task.png", "PSNR per task"), ("quality_vs_time.png", "quality vs time")):
        if (HERE / "results" / png).exists():
            lines += [f"![{alt}](benchmarks/results/{png})", ""]
    return lines


def no_reference_section(n: dict) -> list[str]:
    blended = any("blended_niqe" in s for s in n["sets"])
    lines = [
        "## Real photos without a reference: NIQE (lower is more natural)",
        "",
        "`benchmarks/no_reference.py` (the function behind `air eval --no-reference DIR`): NIQE "
        "(`air_restore.core.niqe`, the authors' pristine model; it agrees with BasicSR's implementation, see "
        "below) of each photo and of its restored version; "
        + (f"the first {n['limit']} photos of each set by name" if n.get("limit") else "every photo")
        + f", restored on `{n['device']}` by the base `{n['fingerprint']}` (512 px tiles)"
        + (f" and by the base with the adapters {', '.join(n['blended']['adapters'])} blended by the estimator."
           if blended else f". No blended column: when this ran, {n.get('blended_skipped', 'it was not run')}."),
        "NIQE rewards natural-looking statistics, not fidelity: read it beside the contact sheet.",
        "",
        *([f"*Baseline*: the same blend with {n['baseline']}, same run.", ""] if n.get("baseline") else []),
        "| set | photos | input NIQE median (mean) | base NIQE median (mean) | base lower on |"
        + (" blended NIQE median (mean) | blended lower on |" if blended else "")
        + (" baseline NIQE median (mean) | baseline lower on |" if n.get("baseline") else ""),
        "|---|---|---|---|---|" + ("---|---|" if blended else "") + ("---|---|" if n.get("baseline") else ""),
    ]
    for s in n["sets"]:
        line = (f"| {s['set']} | {s['images']} | {s['input_niqe_median']:.2f} ({s['input_niqe']:.2f}) | "
                f"{s['base_niqe_median']:.2f} ({s['base_niqe']:.2f}) | {s['base_lower']} of {s['images']} |")
        if blended:
            line += (f" {s['blended_niqe_median']:.2f} ({s['blended_niqe']:.2f}) | {s['blended_lower']} of {s['images']} |"
                     if "blended_niqe" in s else " – | – |")
        if n.get("baseline"):
            line += (f" {s['baseline_niqe_median']:.2f} ({s['baseline_niqe']:.2f}) | {s['baseline_lower']} of "
                     f"{s['images']} |" if "baseline_niqe" in s else " – | – |")
        lines.append(line)
    lines.append("")
    if n.get("contact_sheet"):
        lines += ["Contact sheet (one photo per set, input | base | blended), not committed because it shows "
                  "thumbnails of research-only photos: `benchmarks/no_reference.py` writes "
                  f"`benchmarks/results/{n['contact_sheet']}`; what we saw in it:", ""]
        notes = HERE / "results" / "contact_sheet_notes.md"
        if notes.exists():
            lines += [notes.read_text().rstrip(), ""]
    return lines


def niqe_check_section(c: dict) -> list[str]:
    return [
        "## NIQE implementation check",
        "",
        f"`benchmarks/niqe_check.py` runs BasicSR's own NIQE code ({c['basicsr']}, which matches the authors' "
        f"MATLAB release to 4 decimals) beside `air_restore.core.niqe` on {len(c['rows'])} images (scikit-image "
        "samples, one with σ=25 noise, and every 12th real photo). Largest absolute difference: "
        f"**{c['max_abs_diff_float64']:.1e}** against BasicSR's code run in float64, "
        f"**{c['max_abs_diff_float32']:.3f}** against it as shipped (float32 luma and resize, which moves a "
        "few luma values at rounding ties and a few patch features; run in float64 it agrees).",
        "",
    ]


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


def base_v2_section(results: Path, run: Path) -> list[str]:
    """The chunked base-v2 run (training/base-v2) and every promotion check of it (promote_*.json)."""
    state_path = run / "training-state.json"
    if not state_path.is_file():
        return []
    state = json.loads(state_path.read_text())
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    start = next((r for r in rows if r["chunk"] == 0), None)
    lines = [
        "## Base v2: chunked training and the promotion gate",
        "",
        f"`training/gpu_chunk.sh` (CONTRIBUTING.md): one run made of short GPU spans, resumed from the committed "
        f"`{run.name}/` (EMA weights, training-state.json); {state['step']:,} of {state['config']['steps']:,} "
        f"scheduled steps after {state['chunks']} chunk(s), {state['wall_s_total'] / 60:.1f} GPU minutes in all. "
        "Held-out PSNR: 64 fixed crops (128²) of the 16 held-out training photos, widened CutMix, EMA weights"
        + (f"; the initial weights ({state['init']}) score {start['val_psnr']:.2f} dB" if start else "") + ".",
        "",
        "The held-out crops are degraded by the chunk's recipe, so a recipe change moves the input column too: "
        "compare PSNR within one recipe.",
        "",
        "| chunk | device | recipe | steps | to step | wall s | held-out input PSNR | held-out PSNR at its end |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in state["chunk_log"]:
        end = [r for r in rows if r["chunk"] == c["chunk"]][-1]
        lines.append(f"| {c['chunk']} | {c['device']} | {c.get('recipe', state['config']['recipe'])} | {c['steps']:,} | "
                     f"{c['to_step']:,} | {c['wall_s']:.0f} | {end['val_psnr_input']:.2f} | {end['val_psnr']:.2f} |")
    lines += ["", "![held-out PSNR across chunks](benchmarks/results/base_v2_curve.png)", ""]
    for f in sorted(results.glob("promote_*.json")):
        p = json.loads(f.read_text())
        cand, ref = p["candidate"], p["reference"]
        retrained = ", ".join(f"{n} (`{d}`)" for n, d in cand.get("adapters", {}).items())
        alone = ("both alone (no adapters), except on the rows marked with an adapter: there each base with its own "
                 f"adapter of that name at weight 1 and the clean-pixel gate on (the candidate's, trained on it: "
                 f"{retrained}; the bundled base's: the bundled one)" if retrained else "both alone (no adapters)")
        lines += [
            f"`benchmarks/promote.py` ({f.name}): candidate `{cand['fingerprint']}` ({cand['steps']} steps, recipe "
            f"{cand['recipe']}) against the bundled `{ref['fingerprint']}`, {alone}, side by side "
            f"in one run on the CPU ({p['threads']} thread(s)). PSNR rows: 12 CBSD68 images per row as in the "
            "quality table; stacked at severity 0.5 each; flat sky (where the run has it): a flat bright sky, in the "
            "target too, under the haze plugin at 0.7, then libjpeg (`promote.sky_under_haze`); real pairs: held-out "
            "last 10% by name. NIQE: median of "
            f"the first 6 photos per set (lower is better). Rule: refuse if any PSNR row loses more than "
            f"{p['tolerance_db']} dB or any NIQE median rises more than {p['niqe_tolerance']}.",
            "",
            "| group | row | images | input | bundled base | candidate | change |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in p["rows"]:
            unit = "dB" if r["metric"] == "psnr" else "NIQE"
            inp = "—" if r["group"] == "clean" else f"{r['input']:.2f}"
            name = r["row"] + (f" (+ {', '.join(r['with'])} adapter)" if r.get("with") else "")
            lines.append(f"| {r['group']} | {name} | {r['images']} | {inp} | {r['reference']:.2f} | "
                         f"{r['candidate']:.2f} | {r['candidate'] - r['reference']:+.2f} {unit} |")
        verdict = "PROMOTE" if p["promote"] else "REFUSE: " + "; ".join(p["losses"])
        lines += ["", f"Verdict: **{verdict}**", ""]
    return lines


def real_baselines_section(d: dict) -> list[str]:
    """CBM3D beside the pipeline on PolyU's held-out pairs (real_baselines.py)."""
    m, t, sig = d["mean"], d["median_s"], d["sigma_255"]
    return [
        f"## Real camera noise: CBM3D beside the pipeline (PolyU, {d['pairs']} held-out pairs)",
        "",
        f"`benchmarks/real_baselines.py` at {d['commit']}: the held-out 20% of noise_real_PolyU ({d['split']}; no "
        "shipped weight saw them), whole photos, PSNR (dB) on 8-bit RGB; seconds are medians per photo on this "
        f"machine ({d['threads']} threads). CBM3D needs the noise's σ: *blind* estimates it from the noisy photo "
        "(scikit-image's wavelet estimator, as a user without the clean photo can), *true σ* takes the σ of "
        f"noisy − clean, which nobody has (medians: estimated {sig['estimated_median']:.2f}, true "
        f"{sig['true_median']:.2f} on the 0–255 scale: camera noise is correlated by demosaicing and JPEG, and a "
        "per-pixel estimator misses most of it). The pipeline: `air restore` with the bundled adapters "
        f"({', '.join(d['adapters'])}) and estimator.",
        "",
        "| input | CBM3D, blind | CBM3D, true σ | base alone | **pipeline** | pipeline − input |",
        "|---|---|---|---|---|---|",
        f"| {m['input']:.2f} | {m['cbm3d']:.2f} ({t['cbm3d']:.1f} s) | {m['cbm3d_true_sigma']:.2f} "
        f"({t['cbm3d_true_sigma']:.1f} s) | {m['base']:.2f} ({t['base']:.1f} s) | **{m['pipeline']:.2f}** "
        f"({t['pipeline']:.1f} s) | {m['pipeline'] - m['input']:+.2f} |",
        "",
    ]


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


def speed_paths_section(sp: dict) -> list[str]:
    """results/speed_paths.json: inference paths before and after, side by side in one run (#15)."""
    m, rf = sp.get("machine", {}), sp["receptive_field"]
    lines = [
        "## Inference paths, before and after (CPU)",
        "",
        f"`benchmarks/speed_paths.py` at {sp['commit']}" + (f" on {m['cpu_model']}" if m.get("cpu_model") else "")
        + f", {sp['threads']} threads, median of {sp['runs']} runs after a warm-up, every row through `restore()` in "
        "channels-last layout on a real photo. *unfused*: LayerNorm2d as eight elementwise passes (before); "
        "*fused*: torch's layer_norm over the channels (after). PSNR of each output against the reference "
        "(unfused, whole image or overlap 128): the speed issue asks ≥ 45 dB of every fast path. The network's "
        f"receptive field reaches {rf['extent']} px; {rf['r99']} px hold 99% of an output pixel's input gradient, "
        f"{rf['r999']} px 99.9%.",
        "",
        "| size | mode | layer norm | median s | ms / megapixel | PSNR vs reference |",
        "|---|---|---|---|---|---|",
    ]
    for r in sp["rows"]:
        lines.append(f"| {r['size']}² | {r['mode']} | {r['layer_norm']} | {r['median_s']:.3f} | "
                     f"{r['ms_per_megapixel']:.0f} | {r['psnr_vs_reference']:.1f} dB |")
    return lines + [""]


def arch_speed_section(a: dict, title: str = "## What the CPU allows: the floor per megapixel, and shapes for base-v2"
                       ) -> list[str]:
    """results/arch_speed*.json: the base's cost against this CPU's own peak in one precision, and candidate
    base-v2 shapes."""
    m = a.get("machine", {})
    sizes = [str(s) for s in a["sizes"]]
    prec = a.get("precision", "fp32")
    lines = [
        title,
        "",
        f"`benchmarks/arch_speed.py` at {a['commit']}" + (f" on {m['cpu_model']}" if m.get("cpu_model") else "")
        + f" ({', '.join(m.get('simd', []))}), {m.get('threads')} threads, the network in {prec}"
        + (" (autocast)" if prec != "fp32" else "") + f". *Peak*: the best of ten {prec} 2048³ "
        f"matrix products, **{a['matmul_peak_gflops']:.0f} GFLOP/s** (a 1×1 convolution in channels-last layout "
        "is such a product, so no convolution runs faster). *GFLOP/MP*: torch's FlopCounterMode over one "
        "forward with the segmentation head (the gate reads it). *Floor*: GFLOP/MP ÷ peak, the least any "
        "inference trick can reach with that network. Measured: median of "
        f"{a['runs']} runs through `restore()` with the gate, each size as one tile, rows round-robin in one "
        "process, random weights (the same draw for every row; speed does not depend on the values). Shapes "
        "other than v1 (the bundled base) are untrained: speed only.",
        "",
        "| shape | width | blocks enc / middle / dec | params | GFLOP / MP | floor ms / MP | "
        + " | ".join(f"{s}² ms / MP" for s in sizes) + " | share of peak |",
        "|---|---|---|---|---|---|" + "---|" * len(sizes) + "---|",
    ]
    for r in a["rows"]:
        c = r["config"]
        blocks = f"{'-'.join(map(str, c['enc_blocks']))} / {c['middle_blocks']} / {'-'.join(map(str, c['dec_blocks']))}"
        lines.append(f"| {r['name']} | {c['width']} | {blocks} | {r['params'] / 1e6:.2f} M | {r['gflop_per_mp']:.1f} | "
                     f"{r['floor_ms_per_mp']:.0f} | " + " | ".join(f"{r['ms_per_mp'][s]:.0f}" for s in sizes)
                     + f" | {r['share_of_peak']:.0%} |")
    return lines + [""]


def dark_scenes_section(d: dict) -> list[str]:
    """results/dark_scenes.json: dark scenes against low light, the shipped estimator and a candidate (#14);
    ``labels`` renames the two once the candidate is shipped."""
    old, new = d.get("labels", {}).get("shipped", "shipped"), d.get("labels", {}).get("candidate", "candidate")
    lines = [
        "## Dark scenes against low light: the estimator side by side",
        "",
        f"`benchmarks/dark_scenes.py` at {d['commit']}: `air restore`'s pipeline (adapters {', '.join(d['adapters'])}; "
        "routing, fallback, gate) with each estimator on the same seeded inputs, the last "
        f"{len(d['photos'])} {d['clean_set']} photos per synthetic row and the held-out real PolyU pairs. *Dark "
        "scene ×g*: the photo exposed down in linear light, its clean version exposed the same (a well-exposed "
        "dark scene: nothing to brighten). *Low light*, *dim*, *dark and noisy*: under-exposed photos whose clean "
        "version is the original. Mean PSNR (dB); *w*: mean low-light weight; *worst*: the worst photo's change "
        f"against its input. Estimators: {old} `{d['estimators']['shipped']}`, {new} "
        f"`{d['estimators']['candidate']}`" + (f". {d['note']}" if d.get("note") else "") + ".",
        "",
        f"| task | images | input | {old} | {new} | {new} − {old} | w {old} | w {new} "
        f"| worst {old} | worst {new} |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in d["rows"]:
        lines.append(f"| {r['task']} | {r['images']} | {r['input']:.2f} | {r['shipped']:.2f} | "
                     f"**{r['candidate']:.2f}** | {r['candidate'] - r['shipped']:+.2f} | "
                     f"{r['shipped_lowlight_weight']:.2f} | {r['candidate_lowlight_weight']:.2f} | "
                     f"{r['shipped_worst']:+.2f} | {r['candidate_worst']:+.2f} |")
    return lines + [""]


def floors_section(f: dict) -> list[str]:
    """results/floors.json: `air restore`'s pipeline with its floors (core.floors) and without, side by side (#14)."""
    lines = [
        "## The noise floor: noise without colour, side by side",
        "",
        f"`benchmarks/floors.py`: `air restore`'s pipeline (adapters {', '.join(f['adapters'])}) with its floors "
        f"({', '.join(f['floors'])}) and without, on the same seeded inputs: the first {f['images_per_task']} "
        f"{f['clean_set']} photos per synthetic row (compared with the grey photo where the row is grey) and the "
        "held-out real pairs. Mean PSNR (dB); *w*: mean noise weight (the noise and lumanoise adapters' together: "
        "the floor hands the noise weight to lumanoise where it finds noise without colour); *worst*/*best*: the "
        "largest change of one "
        "photo. The floor raises the noise weight by the photo's fine, white luma noise where the segmentation head "
        "reads the photo as clean, and lifts the clean-pixel gate by as much (`core/floors.py`).",
        "",
        "| task | images | input | without | with | with − without | w without | w with | worst | best |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in f["rows"]:
        lines.append(f"| {r['task']} | {r['images']} | {r['input']:.2f} | {r['without']:.2f} | **{r['with']:.2f}** | "
                     f"{r['with'] - r['without']:+.2f} | {r['weight_without']:.2f} | {r['weight_with']:.2f} | "
                     f"{r['worst']:+.2f} | {r['best']:+.2f} |")
    if f.get("real"):
        lines += ["", "NIQE (lower is better) on real photos: every photo of RNI6 (real noisy grey scans), the first "
                  f"{f['images_per_task']} of each other set; *changed*: photos whose output differs (mean |Δ| over "
                  "0.01 levels).", "",
                  "| set | photos | input | without | with | changed | lower with |", "|---|---|---|---|---|---|---|"]
        for name in dict.fromkeys(r["set"] for r in f["real"]):
            rs = [r for r in f["real"] if r["set"] == name]
            med = {k: statistics.median(r[k] for r in rs) for k in ("input", "without", "with")}
            changed = [r for r in rs if r["mean_abs_change"] > 0.01]
            lower = sum(r["with"] < r["without"] for r in changed)
            lines.append(f"| {name} | {len(rs)} | {med['input']:.2f} | {med['without']:.2f} | {med['with']:.2f} | "
                         f"{len(changed)} | {lower} of {len(changed)} |")
        moved = [r for r in f["real"] if r["mean_abs_change"] > 0.01]
        if moved:
            lines += ["", "Changed: " + "; ".join(
                f"{r['set']}/{r['photo']} NIQE {r['without']:.2f} → {r['with']:.2f} (noise weight "
                f"{r['weight_without']:.2f} → {r['weight_with']:.2f})" for r in moved) + "."]
    return lines + [""]


def fast_paths_section(f: dict) -> list[str]:
    """results/fast_paths.json: every fast path of `air restore` against the fp32 reference, per task (#15)."""
    paths = list(dict.fromkeys(r["path"] for r in f["rows"]))
    by = {(r["task"], r["path"]): r for r in f["rows"]}
    tasks = list(dict.fromkeys(r["task"] for r in f["rows"]))
    lines = [
        "## Fast paths against the fp32 reference, per task",
        "",
        f"`benchmarks/fast_paths.py` at {f['commit']}: the bundled pipeline (adapters {', '.join(f['adapters'])}; "
        "estimator, gate) as `air restore` routes each photo, on the first "
        f"{f['limit']} {f['clean']} photos per task (each plugin at severity {f['severity']}, seeded) and on the "
        "shipped examples. *Reference*: the whole photo as one tile, layer norm as eight elementwise passes, "
        "adapters unmerged, fp32. Each column changes one of those as `air restore` does; *as `air restore` "
        "(CPU)* changes them all together (default tiles 768/128; every photo here fits in one). *tiles 256/128* "
        "is a stress test with more seams than the default tiles make. bf16/fp16 autocast (what a GPU runs) "
        f"is emulated on this CPU, on the first {f['half_limit']} photos per task. Each cell: the lowest PSNR of "
        "the path's output against the reference's over the photos (the speed issue asks ≥ 45 dB; 100 = equal "
        "to float rounding), and in brackets the change of the mean PSNR against the clean photo, in dB.",
        "",
        "| task | images | " + " | ".join(paths) + " |",
        "|---|---|" + "---|" * len(paths),
    ]
    for t in tasks:
        cells = []
        for p in paths:
            r = by.get((t, p))
            if r is None:
                cells.append("–")
                continue
            change = f" ({round(r['quality_change_db'], 3) + 0.0:+.3f})" if "quality_change_db" in r else ""
            cells.append(f"{r['min_psnr_vs_reference']:.1f}{change}")
        images = max(by[(t, p)]["images"] for p in paths if (t, p) in by)
        lines.append(f"| {t} | {images} | " + " | ".join(cells) + " |")
    return lines + [""]


def memory_section(m: dict) -> list[str]:
    """results/memory.json: peak memory of `air restore` measured against core.memory's prediction (#13)."""
    c = m["constants"]
    lines = [
        "## Memory: the peak of `air restore`, predicted before any work (CPU)",
        "",
        f"`benchmarks/memory.py` at {m.get('commit', 'the commit of this file')}: `air restore` on a JPEG of each "
        "size (a real photo resized) in a fresh process on the CPU; *peak* is that process's own high-water "
        "mark (VmHWM: start-up, loading, reading, restoring and writing), *predicted* is `core.memory.predict` "
        f"for the same image and tile, made before any work: {c['fixed_bytes'] / 1e6:.0f} MB + "
        f"{c['image_bytes_per_pixel']:.0f} B per image pixel + {c['tile_bytes_per_pixel']:.0f} B per pixel of the "
        f"largest tile (+{c['explain_bytes_per_pixel']:.0f} B/px with --explain, +{c['tta_bytes_per_pixel']:.0f} "
        "with --tta). `air restore` makes the tile smaller when the prediction does not fit in the memory "
        "available, and refuses an image that does not fit even at 256 px before decoding it.",
        "",
        "| image | --tile | largest tile | options | peak MB | predicted MB | error | wall s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in m["rows"]:
        opts = " ".join(o for o, on in (("--explain", r["explain"]), ("--tta", r["tta"])) if on) or "–"
        lines.append(f"| {r['width']}×{r['height']} | {r['tile']} | {r['tile_shape'][1]}×{r['tile_shape'][0]} | "
                     f"{opts} | {r['peak_mb']:.0f} | {r['predicted_mb']:.0f} | {r['error_pct']:+.0f}% | "
                     f"{r['wall_s']:.1f} |")
    if fit := m.get("fit"):
        lines += ["", f"Least-squares fit of the plain rows: {fit['fixed_bytes'] / 1e6:.0f} MB + "
                  f"{fit['image_bytes_per_pixel']:.1f} B/px + {fit['tile_bytes_per_pixel']:.0f} B per tile pixel; "
                  "core/memory.py rounds it up so that the prediction errs on the safe side."]
    return lines + [""]


def train_speed_section(ts: dict) -> list[str]:
    """results/train_speed.json: steps/s of every trainer before and after the one training engine (#12)."""
    commits = ", ".join(ts.get("commits") or [ts["commit"]])
    rows = {(r["trainer"], r["variant"], r["tree"]): r["steps_per_s"] for r in ts["rows"]}
    lines = [
        "## Training speed: every trainer before and after the one training engine (CPU)",
        "",
        f"`benchmarks/train_speed.py` at {commits}, {ts['threads']} threads, median of the runs stated in the "
        "JSON, each in a fresh process; *before* is the tree before `core.training.engine` (10e4375), timed in "
        "the same run, row by row, beside *after*. Steps per second from the trainers' progress callbacks, "
        f"leaving out the first {ts['warm']} steps; sizes as the CLI trains on a CPU (base: 8 crops of 96²; adapter: "
        "8 of 96²; estimator: its 64² views of 16 crops; UDAIR: 18 crops of 64²). Before the engine no trainer "
        "had a channels_last option and only the base had a precision. *fp32* rows are contiguous fp32, the "
        "before trees' only layout. Steps per second; in brackets the ratio to *fp32 before*.",
        "",
        "| trainer | fp32 before | fp32 after | bf16 autocast | channels_last | default now |",
        "|---|---|---|---|---|---|",
    ]
    fmt = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    for trainer in dict.fromkeys(r["trainer"] for r in ts["rows"]):
        before, after = rows.get((trainer, "fp32", "before")), rows.get((trainer, "fp32", "after"))
        bf16 = rows.get((trainer, "bf16", "after"))
        cl = rows.get((trainer, "channels_last", "after"))
        default = ts.get("defaults", {}).get(trainer, "")
        ratio = lambda v: f" ({v / before:.2f}×)" if v and before else ""  # noqa: E731
        lines.append(f"| {trainer} | {fmt(before)} | {fmt(after)}{ratio(after)} | {fmt(bf16)}{ratio(bf16)} | "
                     f"{fmt(cl)}{ratio(cl)} | {default} |")
    return lines + [""]


def speed_cpu_section(sc: dict, title: str = "## CPU inference: the allocator and the tiles, before and after"
                      ) -> list[str]:
    """One run of benchmarks/speed_cpu.py (results/speed_cpu*.json): CPU inference before and after the
    allocator and tiling changes, each variant in a fresh process (#15)."""
    m = sc.get("machine", {})
    lines = [
        title,
        "",
        f"`benchmarks/speed_cpu.py` at {sc['commit']}" + (f" on {m['cpu_model']}" if m.get("cpu_model") else "")
        + (f" ({', '.join(m['simd'])})" if m.get("simd") else "")
        + (f", precision `{sc.get('precision_asked', 'auto')}`"
           + (f" = {sc['precision']} there" if sc.get("precision_asked", "auto") == "auto" else "")
           if sc.get("precision") else "")
        + ". Every row goes through `restore()` with the gate, as `air restore` runs it, on a real photo; each "
        "variant in a fresh process. *before*: glibc's allocator as it comes and tiles of exactly 512 px "
        "with 128 px overlap; *allocator*: freed memory kept for reuse (`core.runtime.keep_freed_memory`); "
        "*even tiles*: as few tiles as fit, sharing the length evenly; then other tile sizes and overlaps "
        "(the default is now 768/128; 1024/128 where the tiles compute in bf16 or fp16, core/defaults.py). Median of the stated runs; the 4000×3000 photo runs once, first in its "
        "process, so *peak MB* (VmHWM) is its own. Rows of the same code vary by ±30% on this shared machine "
        "(the whole-image rows of every variant after *allocator* run the same code). PSNR against *before*'s "
        "output of the same size; the speed issue asks ≥ 45 dB of every fast path.",
        "",
        "| variant | threads | size | mode | runs | median s | ms / megapixel | peak MB | PSNR vs before |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rows = sc["rows"]
    for r in rows:
        peak = f"{r['peak_mb_so_far']:.0f}" if r["height"] * r["width"] > 4096 * 2048 else ""  # the big photo's
        lines.append(f"| {r['variant']} | {r['threads']} | {r['width']}×{r['height']} | {r['mode']} | {r['runs']} | "
                     f"{r['median_s']:.2f} | {r['ms_per_megapixel']:.0f} | {peak} | {r['psnr_vs_before']:.1f} dB |")
    lines.append("")
    before = {(r["threads"], r["height"], r["width"]): r for r in rows if r["variant"] == "before"}
    default = [r for r in rows if r["variant"] == "tile 768/128" and r["mode"] != "whole"]
    for r in default:
        b = before.get((r["threads"], r["height"], r["width"]))
        if b:
            lines.append(f"- {r['width']}×{r['height']}, {r['threads']} thread(s): {b['median_s']:.1f} s → "
                         f"{r['median_s']:.1f} s (**{b['median_s'] / r['median_s']:.2f}×**), "
                         f"{b['ms_per_megapixel']:.0f} → {r['ms_per_megapixel']:.0f} ms per megapixel.")
    return lines + [""]


def reliability_section(r: dict) -> list[str]:
    """results/reliability.json (benchmarks/reliability.py): the bad-input suite's fuzz counts."""
    lines = [
        "## Reliability: fuzzed bad input",
        "",
        f"`benchmarks/reliability.py`: up to {r['examples_per_class']} inputs per class from the generators of "
        "`tests/test_fuzz.py` (hypothesis, derandomized: a rerun tries the same inputs), in a fresh `$AIR_HOME`. "
        "*Refused*: our error, one line (exit 2 for the CLI; nothing written); *crash*: anything else (a "
        "traceback, another exception or exit code); *files lost*: files in the working folder that changed or "
        "vanished. The failure classes found by hand (#13: `air remove` of a path, outputs replaced, NaN "
        "adapters, weights of NaN/inf/100, the pixel limit, offline search, ...) each have a test that "
        "reproduced them first (tests/test_store.py, test_cli.py, test_fuzz.py, test_hub.py).",
        "",
        "| class | inputs tried | handled (read / restored) | refused clearly | crashes | files lost | s |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        lines.append(f"| {row['class']} | {row['tried']} | {row['read'] + row['restored']} | {row['refused']} | "
                     f"**{row['crash']}** | **{row['files_lost']}** | {row['seconds']:.0f} |")
    return lines + ["", f"Crashes in all: **{r['crashes']}**; files lost: **{r['files_lost']}**.", ""]


def profile_section(p: dict) -> list[str]:
    """results/profile.json (benchmarks/profile_restore.py): where `air restore`'s CPU time goes (#15)."""
    cpu = p.get("cpu", {}).get("cpu_model", "")
    lines = [
        "## Where the CPU time goes (profile)",
        "",
        f"`benchmarks/profile_restore.py`: torch.profiler over one restore by the bundled pipeline (estimator, "
        f"{len(p.get('adapters', []))} adapters merged, tiles of 512 with overlap 128, the gate), after a warm-up; "
        f"{p['threads']} threads" + (f", {cpu}" if cpu else "") + f", torch {p['torch']}. Self CPU time per "
        "operator group as a share of all profiled time (convolutions split by weight shape). Read the shares: "
        "the wall times are single runs under the profiler, which about doubles them (the speed tables above "
        "are the unprofiled times).",
        "",
    ]
    for r in p["rows"]:
        lines += [f"{r['size']}²: {r['wall_s']:.2f} s, {r['ms_per_mp']:.0f} ms per megapixel.", "",
                  "| operator | self s | share |", "|---|---|---|"]
        lines += [f"| {o['op']} | {o['self_s']:.2f} | {100 * o['share']:.1f}% |" for o in r["ops"]]
        lines.append("")
    return lines


def speed_section(sp: dict) -> list[str]:
    m = sp["machine"]
    lines = [
        "## Speed and memory",
        "",
        f"Machine: {m['cpu']}" + (f" ({m['cpu_model']}; {', '.join(m['simd']) or 'no AVX2'})" if m.get("cpu_model") else "")
        + f", {m['cores']} cores, torch {m['torch']} with {m['torch_threads']} threads"
        + (f"; GPU {m['gpu']}" if "gpu" in m else "; no GPU") + (f"; at commit {sp['commit']}" if sp.get("commit") else "")
        + ". Every row goes through `restore()` with the gate, as `air restore` runs it (from the commit above: "
        "channels-last, the allocator setting, autocast for the precision; earlier runs timed the bare module "
        "in NCHW for *whole*). Mode *whole*: the image as one tile; *tiled T/O*: T px tiles, O px overlap. "
        "Median of the stated number of runs after a warm-up; CPU timings on this shared machine vary by ±30%.",
        "",
        "| size | device | precision | mode | threads | median s (runs) | ms / megapixel | megapixels / s "
        "| PSNR against fp32 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sp["cpu"] + sp.get("gpu", []):
        mps = r.get("megapixels_per_s", r["size"] ** 2 / 1e6 / r["median_s"])
        against = f"{r['psnr_vs_fp32']:.1f} dB" if "psnr_vs_fp32" in r else "–"
        lines.append(f"| {r['size']}² | {r['device']} | {r.get('precision', 'fp32')} | {r.get('mode', 'whole')} | "
                     f"{r.get('threads') or m['torch_threads'] if r['device'] == 'cpu' else '–'} | "
                     f"{r['median_s']:.3f} ({r.get('runs', '?')}) | {r['ms_per_megapixel']:.0f} | {mps:.3f} "
                     f"| {against} |")
    if "gpu" not in sp:
        lines += ["", "No GPU rows: no CUDA device in this run; the same script times the GPU in fp32 and bf16 "
                  "autocast when one is present."]
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
            f"`air restore` on a {b['width']}×{b['height']} {b.get('format', 'PNG')} on the CPU: peak memory "
            f"**{b['peak_rss_mb']:.0f} MB** (RSS of the whole process), **{b['wall_s']:.0f} s** for the whole command "
            "(start-up, loading the pipeline, reading and writing the file included; written as "
            f"{b.get('output', 'PNG')})."
        )
    return lines + [""]


def speed_gpu_section(sp: dict) -> list[str]:
    """GPU timings from a lent GPU span (`speed.py --gpu-only` → speed_gpu.json); no CPU rows in that run."""
    m = sp["machine"]
    lines = [
        f"GPU timings ({m['gpu']}, torch {m['torch']}, lent for one session; `{sp.get('command', 'speed.py --gpu-only')}` "
        f"at commit {sp.get('commit', '?')}, base `{sp['fingerprint']}`):",
        "",
        "| size | precision | mode | median s (runs) | ms / megapixel | megapixels / s |",
        "|---|---|---|---|---|---|",
    ]
    for r in sp["gpu"]:
        lines.append(f"| {r['size']}² | {r['precision']} | {r['mode']} | {r['median_s']:.4f} ({r['runs']}) | "
                     f"{r['ms_per_megapixel']:.0f} | {r['megapixels_per_s']:.1f} |")
    return lines + [""]


def web_section(w: dict) -> list[str]:
    """`air serve` in headless Chromium beside `air restore` on the same photo (benchmarks/web.py → web.json)."""
    ratio = w["page_median_s"] / w["cli_wall_median_s"]
    return [
        "## Web page (`air serve`)",
        "",
        f"{w['photo']}, CPU, {w['threads']} threads, medians of {w['runs']} runs at commit {w['commit']}. "
        "The page's time runs from handing the file to the upload box to the download link appearing, in a real "
        "headless Chromium (fresh page each run); it includes the upload, the restore with the degradation map, "
        "the before/after and map previews (PNG) and the restored file. `air restore` is the command's whole wall "
        "time (process start and model load included); the page loads the model once, when the server starts.",
        "",
        "| path | median (s) | runs (s) |",
        "|---|---|---|",
        f"| `air restore PHOTO` (wall) | {w['cli_wall_median_s']:.2f} | {', '.join(f'{x:.2f}' for x in w['cli_wall_s'])} |",
        f"| page: upload → result | {w['page_median_s']:.2f} | "
        f"{', '.join(f'{x:.2f}' for x in w['page_upload_to_result_s'])} |",
        f"| page: server start (once) | {w['page_startup_s']:.2f} | |",
        "",
        f"The page takes {ratio:.2f}× the command's wall time per photo.",
        "",
    ]


def batch_section(b: dict) -> list[str]:
    """`air restore DIR` against `air batch` on local Ray (benchmarks/batch.py → batch.json)."""
    rows = {r["path"]: r for r in b["rows"]}
    ref = rows["air restore DIR"]["wall_median_s"]
    lines = [
        "## Batch (`air batch` on Ray Data)",
        "",
        f"{b['photos']} ({b['images']} images, {b['megapixels']:.2f} MP), CPU, {b['cpus']} cores, medians of "
        f"{b['runs']} interleaved runs at commit {b['commit']}. Wall time of the whole command (process, model, "
        "Ray and worker start-up included); \"first result\" is when `air batch` received its first restored "
        "image, i.e. its start-up cost.",
        "",
        "| command | wall (s) | images/s | MP/s | vs `air restore DIR` | first result (s) |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        first = f"{r['first_result_median_s']:.1f}" if r.get("first_result_median_s") else ""
        lines.append(f"| `{name}` | {r['wall_median_s']:.1f} | {r['images_per_s']:.2f} | {r['mp_per_s']:.3f} | "
                     f"{ref / r['wall_median_s']:.2f}× | {first} |")
    lines += ["", "No GPU run has measured `speed.py` yet, so there is no projection per GPU worker.", ""]
    return lines


def tta_section(t: dict) -> list[str]:
    """UDAIR refiner and its test-time adaptation (benchmarks/tta.py → tta.json); the verdict lines are
    computed from the numbers, so a rerun cannot leave a stale conclusion."""
    r, m = t["refiner"], t["refiner"].get("metrics") or {}
    rows = t["synthetic"]["rows"]
    lines = [
        "## UDAIR refiner and test-time adaptation (`air restore --tta`)",
        "",
        f"`registry/weights/udair-v1.safetensors`: {r['parameters'] / 1e3:.0f}k parameters, {r['file_bytes'] / 1e3:.0f} kB, "
        f"trained on severities {r['train_severity']} on the output of the frozen restorer (adapters: "
        f"{', '.join(r['trained_with_adapters']) or 'none, base alone'}); held-out training crops: restored "
        f"{m.get('val_psnr_restored', float('nan')):.2f} dB → refined {m.get('val_psnr_refined', float('nan')):.2f} dB. "
        f"TTA: {t['tta']['steps']} {t['tta']['optimizer']} steps (lr {t['tta']['lr']}) of the DAM only, reset per "
        f"image; anchors mixed by the {t['weights_source']}'s weights. Restorer now: adapters "
        f"{', '.join(t['adapters']) or 'none'}.",
        "",
        f"Synthetic: the first {rows[0]['images']} {t['synthetic']['set']} images by name, whole, fixed seeds; PSNR (dB). "
        "Severity 1.0 lies outside the refiner's training range, 0.5 inside it.",
        "",
        "| degradation @ severity | input | restored | + refiner, no TTA | + refiner + TTA | TTA − no TTA | images TTA better | CORAL before → after |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(f"| {row['row']} | {row['input']:.2f} | {row['restored']:.2f} | {row['alone']:.2f} | "
                     f"{row['tta']:.2f} | {row['tta'] - row['alone']:+.3f} | {row['tta_better']}/{row['images']} | "
                     f"{row['coral_before']:.1e} → {row['coral_after']:.1e} |")
    lines += ["", "Real photos without reference: NIQE (lower is more natural; `core/niqe.py`), means:", "",
              "| set | images | input | restored | + refiner, no TTA | + refiner + TTA | images TTA better | CORAL before → after |",
              "|---|---|---|---|---|---|---|---|"]
    for name, row in t["real"].items():
        lines.append(f"| {name} | {row['images']} | {row['niqe_input']:.2f} | {row['niqe_restored']:.2f} | "
                     f"{row['niqe_alone']:.2f} | {row['niqe_tta']:.2f} | {row['tta_better']}/{row['images']} | "
                     f"{row['coral_before']:.1e} → {row['coral_after']:.1e} |")
    if t.get("lr_sweep"):
        sw = t["lr_sweep"]
        lines += ["", f"TTA learning rate, swept on {sw[0]['samples']} crops of photos held out of the refiner's "
                  "training (severity 1.0): " + "; ".join(
                      f"lr {s['lr']:g}: CORAL × {s['coral_ratio']:.2f}, PSNR {s['psnr_gain']:+.3f} dB" for s in sw) + "."]
    lines += ["", "Time per image on the CPU (median of 5 after a warm-up; a shared 2-core machine):", "",
              "| size | threads | restore s | refine, no TTA s | refine + TTA s |", "|---|---|---|---|---|"]
    for row in t["timing"]:
        lines.append(f"| {row['size']}² | {row['threads']} | {row['restore_median_s']:.2f} | "
                     f"{row['alone_median_s']:.2f} | {row['tta_median_s']:.2f} |")
    delta = max(rows, key=lambda row: abs(row["tta"] - row["alone"]))
    helps = [row["row"] for row in rows if row["alone"] - row["restored"] > 0.1]
    hurts = [row["row"] for row in rows if row["alone"] - row["restored"] < -0.1]
    better = sum(row["tta_better"] for row in rows)
    total = sum(row["images"] for row in rows)
    lowered = sum(row["coral_after"] < row["coral_before"] for row in rows)
    niqe_move = max((abs(row["niqe_tta"] - row["niqe_alone"]) for row in t["real"].values()), default=float("nan"))
    lines += [
        "",
        f"**Verdict.** TTA lowers the CORAL loss on {lowered} of {len(rows)} rows but changes PSNR by at most "
        f"{delta['tta'] - delta['alone']:+.3f} dB ({delta['row']}), is better on {better} of {total} synthetic "
        f"images, and moves the mean NIQE of the real sets by at most {niqe_move:.3f}. The refiner itself, without TTA, helps on "
        f"{', '.join(helps) or 'nothing'} and hurts on {', '.join(hurts) or 'nothing'} (> 0.1 dB either way). "
        + (f"Contact sheet (not committed: thumbnails of research-only photos): `{t['contact_sheet']}`."
           if t.get("contact_sheet") else ""),
    ]
    return lines + [""]


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, default=HERE / "results")
    ap.add_argument("--out", type=Path, default=HERE.parent / "BENCHMARKS.md")
    ap.add_argument("--run", type=Path, default=HERE.parent / "training" / "base-v2", help="the chunked base-v2 run")
    args = ap.parse_args(argv)
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `benchmarks/report.py` on {datetime.date.today()} at commit {_commit()} "
        f"({platform.system()} {platform.machine()}). Every number comes from a script in `benchmarks/` "
        "(commands at the top of `benchmarks/report.py`); rerun them to check.",
        "",
    ]
    # Other runs of the peer comparison (peer_*.json, e.g. another learning rate), summarised under it.
    peer_runs = [json.loads(f.read_text()) for f in sorted(args.results.glob("peer_*.json"))]
    # More --over recipes (over_*.json), one section each after the first.
    over_runs = [json.loads(f.read_text()) for f in sorted(args.results.glob("over_*.json"))]
    # air add-degradation on each real paired set (add_real_*.json), one table.
    add_real = sorted(args.results.glob("add_real_*.json"))
    for name, section in (("quality_cbsd68.json", quality_section), ("segmentation.json", segmentation_section)):
        data = _load(args.results / name)
        if data:
            lines += section(data)
    lines += pairs_section(args.results)
    if (d := _load(args.results / "real_cbm3d.json")):
        lines += real_baselines_section(d)
    for name, section in (("no_reference.json", no_reference_section), ("niqe_check.json", niqe_check_section),
                          ("blending.json", blending_section), ("gate.json", gate_section),
                          ("previous.json", lambda p: before_after_section(
                              p, _load(args.results / "blending.json"), _load(args.results / "gate.json"))),
                          ("floors.json", floors_section),
                          ("add_snow.json", add_snow_section), ("add_snow_budget.json", add_snow_section),
                          *([(add_real[0].name, lambda _: add_pairs_section(
                              [json.loads(f.read_text()) for f in add_real]))] if add_real else []),
                          ("over.json", lambda o: over_section(o) + [x for r in over_runs for x in over_section(r)]),
                          ("peer.json", lambda p: peer_section(p) + peer_variants(p, peer_runs)),
                          *((f.name, family_section) for f in sorted(args.results.glob("family_*.json"))),
                          ("adapters.json", adapters_section), ("estimator.json", estimator_section),
                          ("speed.json", speed_section), ("speed_paths.json", speed_paths_section),
                          ("speed_cpu.json", speed_cpu_section),
                          ("speed_cpu_default.json", lambda sc: speed_cpu_section(
                              sc, "### The default tiles (768/128) against before, 2 and 1 threads, one run")),
                          ("speed_cpu_tiles.json", lambda sc: speed_cpu_section(
                              sc, "### Larger tiles on a CPU with native bf16, one run")),
                          *((f"speed_cpu_tiles_{p}.json", lambda sc, p=p: speed_cpu_section(
                              sc, f"### A tile size per precision: 1024 against 768 px in {p}, one run"))
                            for p in ("bf16", "fp32")),
                          ("dark_scenes.json", dark_scenes_section),
                          ("arch_speed.json", arch_speed_section),
                          *((f"arch_speed_v1_{p}.json", lambda a, p=p: arch_speed_section(
                              a, f"### The bundled base against this CPU's {p} peak")) for p in ("fp32", "bf16")),
                          ("fast_paths.json", fast_paths_section),
                          ("train_speed.json", train_speed_section), ("memory.json", memory_section),
                          ("profile.json", profile_section), ("reliability.json", reliability_section),
                          ("speed_gpu.json", speed_gpu_section),
                          ("web.json", web_section),
                          ("batch.json", batch_section)):
        data = _load(args.results / name)
        if data:
            lines += section(data)
    if tta := _load(args.results / "tta.json"):
        lines += tta_section(tta)
    lines += base_v2_section(args.results, args.run)
    notes = args.results / "NOTES.md"
    if notes.exists():
        lines += [notes.read_text().rstrip(), ""]
    text = "\n".join(lines)
    args.out.write_text(text)
    return text


if __name__ == "__main__":
    main()
