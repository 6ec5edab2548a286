"""BENCHMARKS.md sections for the adapters, the estimator and `air add-degradation` (issue #3) and for the
same-budget peer (issue #4), rendered by ``report.py`` from ``results/blending.json``
(benchmarks/blending.py), ``results/add_snow.json`` (benchmarks/add_degradation.py),
``results/over*.json`` (benchmarks/over.py) and ``results/peer*.json`` (benchmarks/peer.py)."""

from __future__ import annotations

import json
from pathlib import Path

from air_restore.registry.add_degradation import CLEAN_TASK


def _table(rows: list[dict], first: str, without_name: str | None = None) -> list[str]:
    before = "blended_baseline" in rows[0]
    ungated = "blended_ungated" in rows[0]
    full = "blended_full" in rows[0]
    nofb = "blended_no_fallback" in rows[0]
    without = "blended_without" in rows[0]
    out = [f"| {first} | images | input | base alone | "
           + ("blended (previous estimator) | " if before else "")
           + (f"blended without {without_name} | " if without else "")
           + ("blended, no gate | " if ungated else "")
           + ("blended, no fallback | " if nofb else "")
           + ("blended, strength 1 | " if full else "")
           + "blended (estimator) | oracle adapter | blended − base | top-1 |",
           "|---|---|---|---|---|---|---|---|" + ("---|" if before else "") + ("---|" if without else "")
           + ("---|" if ungated else "")
           + ("---|" if nofb else "") + ("---|" if full else "")]
    for r in rows:
        out.append(f"| {r['task']} | {r['images']} | {r['input']:.2f} | {r['base']:.2f} | "
                   + (f"{r['blended_baseline']:.2f} | " if before else "")
                   + (f"{r['blended_without']:.2f} | " if without else "")
                   + (f"{r['blended_ungated']:.2f} | " if ungated else "")
                   + (f"{r['blended_no_fallback']:.2f} | " if nofb else "")
                   + (f"{r['blended_full']:.2f} | " if full else "")
                   + f"**{r['blended']:.2f}** | {r['oracle']:.2f} | {r['blended'] - r['base']:+.2f} | "
                   + ("— |" if r["top1"] is None else f"{100 * r['top1']:.0f}% |"))
    return out


def _weights(rows: list[dict]) -> list[str]:
    names = list(rows[0]["mean_weights"])
    strength = "mean_strength" in rows[0]
    out = ["| task | " + " | ".join(names) + (" | strength" if strength else "") + " |",
           "|---|" + "---|" * (len(names) + strength)]
    for r in rows:
        out.append(f"| {r['task']} | " + " | ".join(f"{r['mean_weights'][n]:.2f}" for n in names)
                   + (f" | {r['mean_strength']:.2f}" if strength else "") + " |")
    return out


def blending_section(b: dict) -> list[str]:
    lines = [
        "## Adapters: base alone vs estimator-blended vs oracle",
        "",
        f"`benchmarks/blending.py`: {b['images_per_task']} {b['clean_set']} images per task "
        f"({b['crop']} images), each built-in plugin at severity {b['severity']} (seeded per image); "
        f"adapters {', '.join(b['adapters'])}; base `{b['base_fingerprint']}`; CPU, {b['threads']} thread(s), "
        f"{b['wall_s'] / 60:.0f} min. PSNR in dB. *Base alone* = adapter weights 0; *blended* = the weights "
        "the estimator chose for each image (what `air restore` does); *oracle* = weight 1 on the right "
        "adapter. *Top-1* = images whose largest estimator weight is the right adapter."
        + (" Every column runs the pipeline as `air restore` does, with the clean-pixel gate (pixels the "
           "segmentation head sees as clean are kept, and the input over a photo that looks clean as a whole); "
           "*blended, no gate* is the estimator's blend without it."
           if b.get("gate") else "")
        + (" Where haze or low light leads (an estimator weight of 0.3 or more), every blended column restores the "
           "photo a second time, routed on the first pass's output, as `air restore` does (`core.routing.Sequel`)."
           if b.get("second_pass") else "")
        + (" Where low light leads and haze does not, every blended column refits the output's large-scale "
           "brightness to the input's, as `air restore` does (`core.tone.ToneGuard`)." if b.get("tone") else "")
        + (" Where the estimator's weights sum to less than 1, the rest goes to the noise adapter unless the photo "
           "looks dark or clean (`core.routing`); *blended, no fallback* is the estimator's weights alone."
           if "blended_no_fallback" in b["single"][0] else "")
        + (" The estimator also chooses a strength per image (the share of the restoration kept); *blended, "
           "strength 1* is its blend at full strength." if "blended_full" in b["single"][0] else "")
        + (f" *Blended without {b['without']}*: the same routing with the {b['without']} adapter's weight at 0"
           + (", the pipeline before it was added (same images, same run). Its weight is measured on each photo by "
              "`core.routing.Detected`, not chosen by the estimator (top-1 counts it too)."
              if b["without"] == "jpeg" else " (same images, same run); the previous estimator beside it is the "
              "pipeline before it was added.") if b.get("without") else "")
        + (f" *Previous estimator*: the blend chosen by {b['baseline_estimator']} on the same images, same run."
           if b.get("baseline_estimator") else ""),
        "",
        *_table(b["single"], "single degradation", b.get("without")),
        "",
        f"Estimator top-1 over the {sum(r['top1'] is not None for r in b['single'])} single-degradation tasks "
        "with an adapter: "
        f"**{100 * b['estimator_top1_single']:.1f}%**.",
        "",
        (f"Stacked degradations (every pair of the {len(b['single'])} built-ins and {sum('+' in r['task'] and r['task'].count('+') == 2 for r in b['mixed'])} "
         "triples, each plugin at severity 0.5, applied in physical order: scene, optics, exposure, sensor, "
         "compression; the oracle puts weight 1 on each that has an adapter; top-1 counts the first that has one):"
         if b.get("stacks") == "all" else
         "Mixed degradations (two plugins stacked, each at severity 0.5; the oracle puts weight 1 on both; "
         "top-1 counts the first one):"),
        "",
        *_table(b["mixed"], "mixed", b.get("without")),
        "",
    ]
    if b.get("clean"):
        c = b["clean"]
        lines += [f"Clean photos ({c['images']}, nothing wrong with them): the base alone gives them back at "
                  f"{c['base']:.2f} dB, the estimator's blend at {c['blended']:.2f} dB"
                  + (f" ({c['blended_ungated']:.2f} dB without the gate)" if "blended_ungated" in c else "")
                  + (f" (previous estimator {c['blended_baseline']:.2f} dB)" if "blended_baseline" in c else "")
                  + (f" (without {b['without']} {c['blended_without']:.2f} dB)" if "blended_without" in c else "")
                  + "; " f"{100 * c['top1']:.0f}% of them get every adapter weight below 0.5.", ""]
    if b.get("real"):
        lines += ["Real paired sets (never seen in training; the oracle is the synthetic-trained adapter of "
                  "that degradation):", "", *_table(b["real"], "real pairs", b.get("without")), ""]
    lines += ["Mean estimator weights per task:", "",
              *_weights(b["single"] + b["mixed"] + ([b["clean"]] if b.get("clean") else []) + b.get("real", [])), ""]
    return lines


def gate_section(g: dict) -> list[str]:
    """results/gate.json (benchmarks/gate.py): clean photos and mild inputs through the pipeline."""
    rows = g["rows"]
    full = "gated_full" in rows[0]
    pixel = "pixel_gate" in rows[0]  # runs from before the whole-image part have no such column
    fb = "no_fallback" in rows[0]  # runs from before the fallback adapter (core.routing) have no such column
    lines = [
        "## Clean in, clean out; mild inputs",
        "",
        f"`benchmarks/gate.py`: {rows[0]['images']} CBSD68 photos per row, clean or degraded at the severity shown "
        f"(seeded; by a plugin, or for light rain and camera noise by `core.degradations`, which no bundled adapter "
        f"was trained on, and for thin haze by its `flat_haze`, a uniform veil in sRGB that is part of the haze "
        f"adapter's training family but was never shown to the estimator), and held-out real pairs; adapters {', '.join(g['adapters'])}. PSNR in dB against the "
        "clean photo (a clean input counts as 100). *No gate* / *pipeline*: the estimator's blend without / with "
        "the clean-pixel gate"
        + ("; *pixel gate*: its per-pixel part alone, without keeping the input over a photo that looks clean as "
           "a whole (*share*: the mean share kept that way, `core.restore.clean_share`)" if pixel else "")
        + (", all at the estimator's strength; *strength 1*: gated, at full strength" if full else "")
        + ("; *no fallback*: the pipeline without the fallback adapter (`core.routing`: the noise adapter takes "
           "the weight the estimator leaves unassigned, except on a photo that looks dark; *fallback*: the mean "
           "weight it took)" if fb else "")
        + ("; the pipeline's columns restore a second time where haze or low light led the first pass "
           "(`core.routing.Sequel`)" if g.get("second_pass") else "")
        + ". *p_clean*: the segmentation head's mean probability that a pixel is clean (of the input).",
        "",
        "| input | severity | input PSNR | no gate | " + ("pixel gate | " if pixel else "")
        + ("strength 1 | " if full else "") + ("no fallback | " if fb else "") + "**pipeline** | pipeline − input | "
        + ("fallback | " if fb else "") + ("strength | " if full else "") + "p_clean |" + (" share |" if pixel else ""),
        "|---|---|---|---|---|---|" + ("---|---|" if pixel else "") + ("---|---|" if full else "")
        + ("---|---|" if fb else "") + "---|",
    ]
    for r in rows:
        gain = "" if r["input"] >= 100 else f"{r['gated'] - r['input']:+.2f}"
        sev = "" if r["severity"] is None else r["severity"]
        lines.append(f"| {r['task']} | {sev} | {r['input']:.2f} | {r['ungated']:.2f} | "
                     + (f"{r['pixel_gate']:.2f} | " if pixel else "")
                     + (f"{r['gated_full']:.2f} | " if full else "") + (f"{r['no_fallback']:.2f} | " if fb else "")
                     + f"**{r['gated']:.2f}** | {gain} | " + (f"{r['fallback']:.2f} | " if fb else "")
                     + (f"{r['strength']:.2f} | " if full else "") + f"{r['p_clean']:.2f} |"
                     + (f" {r['share']:.2f} |" if pixel else ""))
    return lines + [""]


def add_snow_section(a: dict) -> list[str]:
    ad = a["adapter"]
    tasks = a["tasks"]
    new = next(t for t in tasks if t["new"])
    old = [t for t in tasks if not t["new"] and t["task"] != CLEAN_TASK]
    clean = next((t for t in tasks if t["task"] == CLEAN_TASK), None)
    worst = min(old, key=lambda t: t["after"] - t["before"]) if old else None
    weights = a["estimator"].get("source_weights", {})
    lines = [
        f"## `air add-degradation {a['name']}`" + (" with `--time-budget`" if "--time-budget" in a["command"] else ""),
        "",
        f"`benchmarks/add_degradation.py` ran `{a['command']}` in a fresh `$AIR_HOME`: "
        f"**{a['command_wall_s'] / 60:.1f} min** wall on the CPU ({a['threads']} thread(s); the same run "
        f"varies by up to 40% from one session to the next), everything included (adapter {ad['training']['steps']} steps, estimator "
        f"{a['estimator']['steps']} steps warm-started"
        + (f", old outputs distilled, off weight {a['estimator']['off_weight']:g}" if a["estimator"].get("distilled")
           else "")
        + (f", the new degradation's views drawn {weights[a['name']]:g}× as often as each old one's"
           if weights.get(a["name"], 1) != 1 else "")
        + ", evaluation, install). Held-out photos "
        f"({new['images']} per task, centre 256² crops, held out from this run's training), PSNR (dB) of the "
        "whole pipeline "
        "(estimator-blended adapters) before and after"
        + (f"; *{CLEAN_TASK}*: the same crops with nothing done to them (a photo given back as it came scores the "
           "100 dB cap)" if clean else "") + ":",
        "",
        "| task | input | before | after | change |",
        "|---|---|---|---|---|",
    ]
    for t in tasks:
        label = f"**{t['task']} (new)**" if t["new"] else t["task"]
        lines.append(f"| {label} | {t['input']:.2f} | {t['before']:.2f} | {t['after']:.2f} | "
                     f"{t['after'] - t['before']:+.2f} |")
    lines += [
        "",
        f"{a['name']}: {new['after'] - new['before']:+.2f} dB (goal +4 dB). "
        + (f"Largest change on an old task: {worst['task']} {worst['after'] - worst['before']:+.2f} dB "
           "(goal: no drop beyond 0.1 dB). " if worst else "")
        + (f"Clean photos: {clean['before']:.2f} → {clean['after']:.2f} dB (a mean of PSNRs capped at 100, where "
           "a grey level off on a few pixels reads as a loss of tens of dB; NOTES.md has them per photo). "
           if clean else "")
        + f"Estimator top-1 on these held-out images after: {100 * a['estimator_heldout_top1']:.1f}%.",
        "",
    ]
    if prev := a.get("previous"):
        lines += _add_previous(a, prev)
    return lines


def add_pairs_section(runs: list[dict]) -> list[str]:
    """``air add-degradation NAME --data PAIRS --holdout 0.2`` on each real paired set (results/add_real_*.json)."""
    lines = [
        "## `air add-degradation` on real pairs (seeded 80/20 splits)",
        "",
        "`benchmarks/add_degradation.py --pairs` ran `air add-degradation NAME --data ../shared/data/pairs/SET "
        "--holdout 0.2` in a fresh `$AIR_HOME` per set: a rank-4 adapter on the frozen base from the 80%, the "
        "estimator retrained with one more output (warm-started; the new adapter's examples are the training "
        "photos' stored views), then the held-out 20% (seed 0 split; by photo until ca6732e, whole scenes since, as "
        "the row says: 19 of PolyU's 20 photos held out by photo shared a scene with the training ones) through "
        "the whole pipeline. "
        "*Adapter alone*: the new adapter at weight 1, no estimator. *Old tasks*: the built-in degradations at "
        "severity 0.5 on the held-out clean photos of the set (with `--clean DIR`: of DIR, which also gives the "
        "other adapters' examples to the estimator), before and after (the worst change shown). PSNR in dB.",
        "",
        "| set → adapter | pairs train / held out | input | base alone | adapter alone | pipeline before | "
        "pipeline after | after − input | worst old task | min | commit |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for a in runs:
        new = next(t for t in a["tasks"] if t["new"])
        old = [t for t in a["tasks"] if not t["new"] and t["task"] != CLEAN_TASK]
        worst = min(old, key=lambda t: t["after"] - t["before"])
        m, d = a["adapter"]["metrics"], a["adapter"]["training"]["data"]
        note = _run_note(a)
        lines.append(
            f"| {a['source']['folder']} → {a['name']}{f' ({note})' if note else ''} | "
            f"{d['train_images']} / {d['heldout_images']} | "
            f"{new['input']:.2f} | {m['heldout_psnr_base']:.2f} | {m['heldout_psnr_adapter']:.2f} | "
            f"{new['before']:.2f} | **{new['after']:.2f}** | {new['after'] - new['input']:+.2f} | "
            f"{worst['task']} {worst['after'] - worst['before']:+.2f} | "
            + ("adapter reused | " if a.get("resumed") else f"{a['command_wall_s'] / 60:.1f} | ")
            + f"{a.get('commit', '?')} |")
    return lines + [""]


def _run_note(a: dict) -> str:
    """How a real-pair run differs from the plain command: --clean, installed after other adapters."""
    parts = [f"`--clean {a['source']['clean']}`"] if a["source"].get("clean") else []
    if a["estimator"].get("kept_inherited"):
        parts.append("`--estimator-update new-only`")
    elif not a["estimator"].get("distilled"):  # before the estimator learned by distillation, it retrained whole
        parts.append("`--estimator-update all`")
    elif a["estimator"].get("steps"):  # distilled: the recipe changed since (steps, views)
        parts.append(f"estimator {a['estimator']['steps']} steps")
    if a["estimator"].get("p_other_stacked"):
        parts.append(f"JPEG stacked on {a['estimator']['p_other_stacked']:g} of the views")
    if a["estimator"].get("p_exposed"):
        parts.append(f"{a['estimator']['p_exposed']:g} of the real views exposed down as low light")
    if a["estimator"].get("p_pair_clean"):
        parts.append(f"{a['estimator']['p_pair_clean']:g} of them clean versions, every output off")
    data = a["adapter"]["training"]["data"]
    if data.get("heldout_scenes", data["heldout_images"]) < data["heldout_images"]:
        parts.append(f"held out: {data['heldout_scenes']} whole scenes")
    if a.get("after_adapters"):
        parts.append("after " + ", ".join(a["after_adapters"]))
    if _shipped(a):
        parts.append("shipped")
    return "; ".join(parts)


def _shipped(a: dict) -> bool:
    """Whether the run's adapter is the bundled one of its name (the same manifest)."""
    bundled = Path(__file__).resolve().parents[1] / "registry" / "weights" / "adapters" / a["name"] / "air_manifest.json"
    return bundled.is_file() and json.loads(bundled.read_text()).get("created") == a["adapter"].get("created")


def _add_previous(a: dict, prev: dict) -> list[str]:
    """The same command at an earlier commit (``previous`` in the JSON): wall time per phase and the PSNR after."""
    phases = list(dict.fromkeys([*prev["phases_s"], *a["phases_s"]]))
    lines = [f"The same command at {prev['commit']} ({prev['change']}) against this run, seconds per phase:", "",
             "| phase | " + " | ".join(phases) + " | whole command |", "|---|" + "---|" * (len(phases) + 1)]
    for label, run in ((prev["commit"], prev), ("this run", a)):
        lines.append(f"| {label} | " + " | ".join(f"{run['phases_s'].get(ph, 0):.0f}" for ph in phases)
                     + f" | {run['command_wall_s']:.0f} |")
    before = {t["task"]: t for t in prev["tasks"]}
    lines += ["", "PSNR (dB) of the pipeline after installing, both runs (same held-out photos and seeds):", "",
              f"| task | base pipeline | after, {prev['commit']} | after, this run |", "|---|---|---|---|"]
    for t in a["tasks"]:
        if t["task"] in before:
            lines.append(f"| {t['task']} | {t['before']:.2f} | {before[t['task']]['after']:.2f} | {t['after']:.2f} |")
    return lines + [""]


def _peer_intro_shipped(p: dict) -> str:
    b, n, tr = p["budget"], p["parameters"], p["training"]["peer"]
    per = ", ".join(f"{k} {v['steps']} × {v['batch_size']} × {v['crop']}²" for k, v in b["adapters"].items())
    return (
        "`benchmarks/peer.py` (shipped mode): what Phase II buys. **ABAIR** is what `air restore` runs: the bundled "
        f"base ({n['abair_base'] / 1e6:.2f}M parameters), the five bundled adapters ({n['abair_adapters'] / 1e3:.0f}k "
        f"parameters in all) and the bundled estimator ({n['estimator'] / 1e3:.0f}k). The adapters were trained "
        f"for {per} steps × crops (≈ {b['adapter_pixels'] / 1e6:.0f} M pixels). **Peer**: the same bundled base "
        "fine-tuned as a plain all-in-one network — every weight, L1 only, no adapters, no estimator — on "
        f"Degradation CutMix crops of the same photos ({b['data']}) for as many pixels: {b['peer_steps']} steps of "
        f"{b['batch_size']} × {b['crop']}², learning rate {b['lr']:g}"
        + (" (the adapters')" if b["lr"] in {v["lr"] for v in b["adapters"].values()} else "")
        + ", cosine, EMA "
        f"(the better of EMA and last weights on held-out crops is kept: {tr.get('weights', '?')}); "
        f"{tr.get('wall_s', 0) / 60:.0f} min on the CPU. Same network, same data, same number of steps: the only "
        "difference is how the Phase II budget is spent. (The estimator's own training, 3000 steps of a "
        "136k-parameter classifier on 64² views, is not counted.)"
        + (f" **Smoke run: the peer was capped at {b['peer_steps']} of {b['capped_from']} steps.**"
           if "capped_from" in b else ""))


def _peer_intro_scratch(p: dict) -> str:
    b, n, tr = p["budget"], p["parameters"], p["training"]
    crops = b["peer_steps"] * b["batch_size"]
    return (
        f"`benchmarks/peer.py` (scratch mode): both arms trained from scratch on the same {b['data']} photos, the "
        f"same Degradation CutMix crops ({b['batch_size']} × {b['crop']}² per step), learning-rate schedule and "
        f"seed. **ABAIR**: the base ({n['abair_base'] / 1e6:.2f}M parameters, segmentation head, λ = 0.05) for "
        f"{b['base_steps']} steps, then one rank-4 LoRA adapter per degradation ({', '.join(b['adapters'])}; "
        f"{n['abair_adapters'] / 1e3:.0f}k parameters in all) for {b['adapter_steps_each']} steps each"
        + "".join(f" ({k} on {c}² crops, batch {m}: the same pixels per step)"
                  for k, (c, m) in b.get("adapter_crops", {}).items())
        + f", blended per image by the bundled estimator ({n['estimator'] / 1e3:.0f}k parameters; it reads only "
        "the degraded image, so it is reused, and its own training is not counted). **Peer**: the same "
        f"NAFNet-style U-Net widened to {n['peer'] / 1e6:.2f}M parameters (≈ base + adapters + estimator), no "
        f"segmentation loss, adapters or estimator, trained {b['peer_steps']} steps: the same {crops:,} crops as "
        f"the ABAIR arm in all (training wall time: ABAIR base {tr['abair_base'].get('wall_s', 0) / 60:.0f} min, "
        f"peer {tr['peer'].get('wall_s', 0) / 60:.0f} min).")


def peer_section(p: dict) -> list[str]:
    """Same-budget peer (benchmarks/peer.py): the ABAIR design against a plain all-in-one network."""
    intro = _peer_intro_shipped(p) if p.get("mode") == "shipped" else _peer_intro_scratch(p)
    lines = [
        "## Same-budget peer: the ABAIR design vs a plain all-in-one network",
        "",
        intro + f" Evaluation: {p['images']} {p['set']} images per row, degraded as in the quality table "
        "(seeded; stacked pairs at severity 0.5 each), PSNR (dB) / SSIM on 8-bit output; seconds are medians "
        f"per image ({p['torch_threads']} thread(s)).",
        "",
        "| degradation | input | peer | ABAIR base alone | ABAIR base + blended adapters | blended − peer (dB) | s / image: peer, blended |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in p["rows"]:
        lines.append(
            f"| {r['row']} | {r['input_psnr']:.2f} / {r['input_ssim']:.3f} | {r['peer_psnr']:.2f} / {r['peer_ssim']:.3f} | "
            f"{r['abair_base_psnr']:.2f} / {r['abair_base_ssim']:.3f} | "
            f"{r['abair_blended_psnr']:.2f} / {r['abair_blended_ssim']:.3f} | "
            f"{r['abair_blended_psnr'] - r['peer_psnr']:+.2f} | {r['peer_s']:.2f}, {r['abair_blended_s']:.2f} |")
    single = [r for r in p["rows"] if "+" not in r["row"]]
    mean = lambda rows, k: sum(r[k] for r in rows) / len(rows)  # noqa: E731
    wins = sum(r["abair_blended_psnr"] > r["peer_psnr"] for r in p["rows"])
    lines += [
        "",
        f"Mean over the {len(single)} single-degradation rows: peer {mean(single, 'peer_psnr'):.2f} dB, ABAIR base "
        f"alone {mean(single, 'abair_base_psnr'):.2f}, blended {mean(single, 'abair_blended_psnr'):.2f} "
        f"({mean(single, 'abair_blended_psnr') - mean(single, 'peer_psnr'):+.2f} dB against the peer). "
        f"Blended beats the peer on {wins} of {len(p['rows'])} rows."
        + ("" if p.get("mode") == "shipped" else  # in shipped mode the two were validated on different crops
           f" Held-out CutMix crops at the end of training: ABAIR base "
           f"{p['val']['abair_base'].get('val_psnr', float('nan')):.2f} dB, peer "
           f"{p['val']['peer'].get('val_psnr', float('nan')):.2f} dB."),
        "",
    ]
    return lines


def over_section(o: dict) -> list[str]:
    """`air train adapter --over` (benchmarks/over.py): an adapter trained over other degradations."""
    t, name = o["training"], o["adapter"]
    lines = [
        f"## `air train adapter --over {','.join(o['over'] or [])}`"
        + (f" `--rank {o['rank']}`" if o.get("rank", 4) != 4 else "") + f": a {name} adapter trained over other degradations",
        "",
        f"`benchmarks/over.py`: the bundled pipeline, and the same with the bundled {name} adapter replaced by one "
        f"trained with `--over {','.join(o['over'] or [])} --over-share {o['over_share']}"
        + (f" --rank {o['rank']}" if o.get("rank", 4) != 4 else "") + f"` ({t['steps']} steps × "
        f"{t['batch_size']} × {t['crop']}², as the bundled one but for the steps): a share of its training crops "
        f"first got one of those degradations, with the base's output on that background as the target. "
        f"{o['images_per_task']} {o['clean_set']} images per task, {o['crop']}² centre crops, every plugin at "
        f"severity {o['severity']}. PSNR (dB); *alone* = that adapter at weight 1, others 0; *blended* = the "
        "estimator's weights.",
        "",
        "| task | input | base alone | bundled alone | --over alone | bundled blended | --over blended | blended: --over − bundled |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in o["rows"]:
        lines.append(f"| {r['task']} | {r['input']:.2f} | {r['base']:.2f} | {r['bundled_alone']:.2f} | "
                     f"{r['over_alone']:.2f} | {r['bundled_blended']:.2f} | {r['over_blended']:.2f} | "
                     f"{r['over_blended'] - r['bundled_blended']:+.2f} |")
    lines.append("")
    return lines


def peer_variants(main: dict, others: list[dict]) -> list[str]:
    """Other runs of the same peer comparison (e.g. another learning rate for the peer), one line each."""
    if not others:
        return []
    def summary(p: dict) -> str:
        single = [r for r in p["rows"] if "+" not in r["row"]]
        mean = lambda k: sum(r[k] for r in single) / len(single)  # noqa: E731
        wins = sum(r["abair_blended_psnr"] > r["peer_psnr"] for r in p["rows"])
        return (f"| {p['budget']['lr']:g} | {p['budget']['peer_steps']} | {p['training']['peer'].get('weights', '?')} | "
                f"{mean('peer_psnr'):.2f} | {mean('abair_blended_psnr'):.2f} | {wins} of {len(p['rows'])} |")
    return ["Peer runs side by side (the table above is the first row):", "",
            "| peer learning rate | steps | weights kept | peer, mean of single rows (dB) | ABAIR blended | rows where blended wins |",
            "|---|---|---|---|---|---|", summary(main), *map(summary, others), ""]


def family_section(f: dict) -> list[str]:
    """`air train adapter --family` (benchmarks/family.py): an adapter trained on a widened family, alone, and
    (``--pipeline``) in the whole pipeline beside the adapter it replaces."""
    t, name = f["training"], f["adapter"]
    data = t.get("data", {})
    init = data.get("init")
    before = "bundled" if not f.get("pipeline") else "previous"
    flags = "".join(f" --{flag} {data[key]:g}" for flag, key in (("grey", "grey"), ("clean-share", "clean_share"))
                    if data.get(key))
    lines = [
        f"## `air train adapter {name} --family{flags}`: a {name} adapter trained on its widened family",
        "",
        f"`benchmarks/family.py`: the {before} {name} adapter and one trained with `--synthetic {name} --family` "
        f"({t.get('steps')} steps × {t.get('batch_size')} × {t.get('crop')}²"
        + (f", starting from the {before} adapter (`--init`)" if init else ", otherwise as the bundled one")
        + (f", over {', '.join(t['data']['over'])} on {t['data']['over_share']:.0%} of the crops" if t.get("data", {}).get("over") else "")
        + "), each alone at weight 1 with the clean-pixel gate, beside the base alone. The family rows are the new "
        "adapter's own training distribution; only the real pairs (held out, neither adapter saw them) and the "
        f"clean row test it independently. {f['images_per_task']} {f['clean_set']} images per synthetic row, "
        "PSNR (dB).",
        "",
    ]
    if f.get("pipeline"):
        lines[-2] += (f" *Pipeline*: `air restore` as it runs, every bundled adapter blended by the bundled estimator "
                      f"(fallback and gate on), with the {before} or the new {name} adapter; *w*: the estimator's mean "
                      f"weight for it. Stacked rows as in the blending table (each part at 0.5, physical order).")
        lines += [f"| task | images | input | base alone | {before} adapter | --family adapter | pipeline, {before} | "
                  "pipeline, new | new − previous (pipeline) | w |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in f["rows"]:
            lines.append(f"| {r['task']} | {r['images']} | {r['input']:.2f} | {r['base']:.2f} | {r['bundled']:.2f} | "
                         f"{r['new']:.2f} | {r['pipeline_bundled']:.2f} | {r['pipeline_new']:.2f} | "
                         f"{r['pipeline_new'] - r['pipeline_bundled']:+.2f} | {r['weight_new']:.2f} |")
    else:
        lines += ["| task | images | input | base alone | bundled adapter | --family adapter | --family − bundled |",
                  "|---|---|---|---|---|---|---|"]
        for r in f["rows"]:
            lines.append(f"| {r['task']} | {r['images']} | {r['input']:.2f} | {r['base']:.2f} | {r['bundled']:.2f} | "
                         f"{r['new']:.2f} | {r['new'] - r['bundled']:+.2f} |")
    lines.append("")
    return lines


def before_after_section(prev: dict, now_b: dict, now_g: dict) -> list[str]:
    """results/previous.json: the blending and gate tables of the pipeline before a change of shipped weights or
    routing (``blending``, ``gate``: those scripts' JSON at ``commit``), beside this tree's ``now_b``
    (results/blending.json) and ``now_g`` (results/gate.json). Both scripts are seeded and deterministic, so a row
    moves only because the weights or the routing did."""
    lines = [f"## Before → after: {prev['change']}", "",
             f"The pipeline (`air restore`'s routing, gate and fallback) at commit {prev['commit']} and now, on the "
             "same seeded inputs (`benchmarks/blending.py --stacks all` and `benchmarks/gate.py`, 12 CBSD68 photos "
             "per row, held-out real pairs; the previous tables are kept in `benchmarks/results/previous.json`). "
             "PSNR (dB) of the pipeline; *base alone* is the same in both.", "",
             "| table | input | images | input PSNR | base alone | before | after | after − before |",
             "|---|---|---|---|---|---|---|---|"]

    def rows(table: str, old: list[dict], new: list[dict], key: str, name) -> None:
        before = {name(r): r for r in old}
        for r in new:
            o = before.get(name(r))
            if o is not None and abs(o["input"] - r["input"]) < 1e-4:  # the same inputs, or no comparison
                base = f"{r['base']:.2f}" if "base" in r else ""
                lines.append(f"| {table} | {name(r)} | {r['images']} | {r['input']:.2f} | {base} | {o[key]:.2f} | "
                             f"{r[key]:.2f} | {r[key] - o[key]:+.2f} |")

    pb = prev["blending"]
    same_pairs = pb.get("pairs_split") == now_b.get("pairs_split")  # else other real photos: not comparable
    for part in ("single", "mixed", "real") if same_pairs else ("single", "mixed"):
        rows("blending", pb.get(part, []), now_b.get(part, []), "blended", lambda r: r["task"])
    rows("blending", [pb["clean"]], [now_b["clean"]], "blended", lambda r: r["task"])
    gate_rows = [r for r in now_g["rows"] if same_pairs or not r["task"].startswith("real")]
    rows("gate", prev["gate"]["rows"], gate_rows, "gated",
         lambda r: r["task"] + ("" if r.get("severity") in (None, 0.0) else f" {r['severity']}"))
    if not same_pairs:
        lines += ["", f"Real pairs left out: the previous tables held out {pb.get('pairs_split') or 'the last 20 by name'}, "
                  f"these {now_b.get('pairs_split')}; the real rows above (*blended* beside the baseline estimator) "
                  "compare both pipelines on the same photos."]
    return lines + [""]
