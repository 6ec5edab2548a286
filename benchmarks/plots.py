"""PNG plots for BENCHMARKS.md from the JSON results (matplotlib, the ``bench`` extra).

    python benchmarks/plots.py --results benchmarks/results

- ``psnr_per_task.png``: mean PSNR per degradation, one bar per method: the input, the classical
  baseline (CBM3D, dark channel prior, LIME-style), the base restorer, the base + blended adapters;
- ``quality_vs_time.png``: PSNR against median seconds per image (log scale), one point per method
  and degradation, from the same run of ``quality.py``;
- ``base_v2_curve.png``: held-out PSNR against step of the chunked base-v2 run (``training/base-v2``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (key in the quality JSON, legend label, colour)
METHODS = [
    ("input", "input (no restoration)", "#bbbbbb"),
    ("baseline", "classical baseline", "#e69f00"),
    ("air", "air-restore base", "#0072b2"),
    ("blended", "base + blended adapters", "#009e73"),
]


def _baseline_key(row: dict) -> str | None:
    return row.get("baseline") or ("cbm3d" if "cbm3d_psnr" in row else None)


def _value(row: dict, method: str, what: str) -> float | None:
    key = _baseline_key(row) if method == "baseline" else method
    return row.get(f"{key}_{what}") if key else None


def psnr_per_task(q: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = q["rows"]
    present = [m for m in METHODS if any(_value(r, m[0], "psnr") is not None for r in rows)]
    x = np.arange(len(rows))
    width = 0.8 / len(present)
    fig, ax = plt.subplots(figsize=(10, 4.2), dpi=110)
    for i, (key, label, colour) in enumerate(present):
        vals = [_value(r, key, "psnr") for r in rows]
        xs = [xi + (i - (len(present) - 1) / 2) * width for xi, v in zip(x, vals) if v is not None]
        bars = ax.bar(xs, [v for v in vals if v is not None], width, label=label, color=colour)
        if key == "baseline":
            names = [r.get("baseline_label", "CBM3D").split(" (")[0] for r in rows if _value(r, key, "psnr") is not None]
            for b, n in zip(bars, names):
                ax.annotate(n, (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom",
                            fontsize=6, rotation=90, xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(x, [r["row"] for r in rows], fontsize=8)
    ax.set_ylabel("PSNR (dB), mean over images")
    ax.set_ylim(0, max(r.get("air_psnr", 0) for r in rows) + 8)
    ax.set_title(f"{q['set']}, {q['images']} images, degraded by the project's plugins (fixed seeds)", fontsize=9)
    ax.legend(fontsize=7, ncol=len(present), loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def quality_vs_time(q: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    markers = {"baseline": "s", "air": "o", "blended": "^"}
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=110)
    cmap = plt.get_cmap("tab10")
    for j, r in enumerate(q["rows"]):
        pts = []
        for key, label, _ in METHODS[1:]:
            p, s = _value(r, key, "psnr"), _value(r, key, "s")
            if p is not None and s is not None:
                ax.scatter(s, p, marker=markers[key], color=cmap(j % 10), s=40)
                pts.append((s, p))
        if pts:
            ax.plot(*zip(*sorted(pts)), color=cmap(j % 10), alpha=0.35, lw=1)
            ax.annotate(r["row"], max(pts, key=lambda t: t[1]), fontsize=7, xytext=(4, 2), textcoords="offset points")
    for key, label, _ in METHODS[1:]:
        if any(_value(r, key, "s") is not None for r in q["rows"]):
            ax.scatter([], [], marker=markers[key], color="grey", label=label)
    ax.set_xscale("log")
    ax.set_xlabel(f"median seconds per image ({q['device']}, {q.get('torch_threads', '?')} torch threads)")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(f"Quality vs time, {q['set']} ({q['images']} images)", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def training_curve(rows: list[dict], path: Path, *, title: str) -> Path:
    """Held-out PSNR against step of a chunked run (its log.jsonl rows), chunk boundaries marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 3.8), dpi=110)
    chunks = sorted({r["chunk"] for r in rows if r["chunk"] > 0})
    cmap = plt.get_cmap("tab10")
    for c in chunks:
        pts = [(r["step"], r["val_psnr"]) for r in rows if r["chunk"] == c]
        ax.plot(*zip(*pts), marker="o", ms=3, color=cmap(c % 10), label=f"chunk {c}")
        ax.axvline(min(p[0] for p in pts), color="grey", lw=0.6, ls=":")
    start = [r for r in rows if r["chunk"] == 0]
    if start:
        ax.scatter([start[0]["step"]], [start[0]["val_psnr"]], color="black", zorder=3, label="start (init weights)")
    ax.set_xlabel("step")
    ax.set_ylabel("held-out PSNR (dB)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> list[Path]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, default=HERE / "results")
    ap.add_argument("--quality", default="quality_cbsd68.json")
    ap.add_argument("--run", type=Path, default=HERE.parent / "training" / "base-v2", help="a chunked training run")
    args = ap.parse_args(argv)
    q = json.loads((args.results / args.quality).read_text())
    out = [psnr_per_task(q, args.results / "psnr_per_task.png"), quality_vs_time(q, args.results / "quality_vs_time.png")]
    log = args.run / "log.jsonl"
    if log.is_file():
        rows = [json.loads(line) for line in log.read_text().splitlines()]
        out.append(training_curve(rows, args.results / "base_v2_curve.png",
                                  title=f"{args.run.name}: held-out PSNR on widened CutMix crops"))
    for p in out:
        print(p)
    return out


if __name__ == "__main__":
    main()
