"""BENCHMARKS.md sections for the adapters, the estimator and `air add-degradation` (issue #3), rendered by
``report.py`` from ``results/blending.json`` (benchmarks/blending.py) and ``results/add_snow.json``
(benchmarks/add_degradation.py)."""

from __future__ import annotations


def _table(rows: list[dict], first: str) -> list[str]:
    out = [f"| {first} | images | input | base alone | blended (estimator) | oracle adapter | blended − base | top-1 |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['task']} | {r['images']} | {r['input']:.2f} | {r['base']:.2f} | **{r['blended']:.2f}** | "
                   f"{r['oracle']:.2f} | {r['blended'] - r['base']:+.2f} | {100 * r['top1']:.0f}% |")
    return out


def _weights(rows: list[dict]) -> list[str]:
    names = list(rows[0]["mean_weights"])
    out = ["| task | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for r in rows:
        out.append(f"| {r['task']} | " + " | ".join(f"{r['mean_weights'][n]:.2f}" for n in names) + " |")
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
        "adapter. *Top-1* = images whose largest estimator weight is the right adapter.",
        "",
        *_table(b["single"], "single degradation"),
        "",
        f"Estimator top-1 over the {len(b['single'])} single-degradation tasks: "
        f"**{100 * b['estimator_top1_single']:.1f}%**.",
        "",
        "Mixed degradations (two plugins stacked, each at severity 0.5; the oracle puts weight 1 on both; "
        "top-1 counts the first one):",
        "",
        *_table(b["mixed"], "mixed"),
        "",
    ]
    if b.get("real"):
        lines += ["Real paired sets (never seen in training; the oracle is the synthetic-trained adapter of "
                  "that degradation):", "", *_table(b["real"], "real pairs"), ""]
    lines += ["Mean estimator weights per task:", "", *_weights(b["single"] + b["mixed"] + b.get("real", [])), ""]
    return lines


def add_snow_section(a: dict) -> list[str]:
    ad = a["adapter"]
    tasks = a["tasks"]
    new = next(t for t in tasks if t["new"])
    old = [t for t in tasks if not t["new"]]
    worst = min(old, key=lambda t: t["after"] - t["before"]) if old else None
    lines = [
        f"## `air add-degradation {a['name']}`",
        "",
        f"`benchmarks/add_degradation.py` ran `{a['command']}` in a fresh `$AIR_HOME`: "
        f"**{a['command_wall_s'] / 60:.1f} min** wall on the CPU ({a['threads']} thread(s), machine shared "
        f"with other jobs), everything included (adapter {ad['training']['steps']} steps, estimator "
        f"{a['estimator']['steps']} steps warm-started, evaluation, install). Held-out photos "
        f"({new['images']} per task, centre 256² crops, held out from this run's training), PSNR (dB) of the "
        "whole pipeline "
        "(estimator-blended adapters) before and after:",
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
        + f"Estimator top-1 on these held-out images after: {100 * a['estimator_heldout_top1']:.1f}%.",
        "",
    ]
    return lines
