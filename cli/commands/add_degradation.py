"""``air add-degradation``: teach air-restore a new degradation (the job is
:func:`air_restore.registry.add_degradation.run`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from ..ui import StageBars, console, fail, flag, say, stdout, warn


def add_degradation(
    name: str = typer.Argument(..., help="Name of the new degradation, e.g. snow (lowercase letters, digits, _)."),
    data: Path = typer.Option(..., "--data", help="Paired folder (degraded/ + clean/, same file names), or with "
                              "--synthetic a folder of clean photos."),
    synthetic: Optional[str] = typer.Option(None, "--synthetic", help="Degrade --data's clean photos with this "
                                            "plugin's synthesizer (see `air list`)."),
    clean: Optional[Path] = typer.Option(
        None, "--clean", help="Clean photos of every kind for the other adapters' examples when the estimator is "
        "retrained (and their before/after rows). Default: --data's clean photos, which for a narrow paired set "
        "(one camera, one scene type) can shift how the estimator routes other photos."),
    steps: Optional[int] = typer.Option(None, help="Adapter training steps. Default: 1500 with --synthetic (fresh "
                                        "crops without end), 400 with real pairs."),
    rank: Optional[int] = typer.Option(None, help="LoRA rank. Default: 8 with --synthetic, 4 with real pairs."),
    batch_size: int = typer.Option(8, help="Crops per adapter step."),
    crop: int = typer.Option(96, help="Crop side in pixels."),
    holdout: float = typer.Option(0.1, help="Share of the images held out for the before/after table, whole scenes "
                                  "at a time (shots named NAME_1, NAME_2 … stay on one side)."),
    estimator_steps: int = typer.Option(
        3200, help="Estimator retraining steps (warm-started from the current one); the views it learns from "
                   "grow with them (one batch of 16 per 8 steps)."),
    eval_images: int = typer.Option(8, help="Held-out images per task in the before/after table."),
    seed: int = typer.Option(0),
    overwrite: bool = flag("--overwrite", help="Replace an installed adapter of the same name."),
    report: Optional[Path] = typer.Option(None, "--report", help="Also write the before/after table as JSON here."),
    time_budget: Optional[float] = typer.Option(
        None, "--time-budget", min=0.1, help="Minutes for the whole job: the adapter and the estimator run the "
        "steps that fit (fewer than --steps / --estimator-steps, never more)."),
    estimator_update: str = typer.Option(
        "keep", "--estimator-update", metavar="keep|distill|new-only|all",
        help="How the estimator learns the new adapter's weight. keep: as distill, then the old weights are read "
        "from the current estimator exactly (its tower travels in the file, ~0.55 MB more). distill: all of it "
        "learns, but photos of the old degradations keep the weights the current one gives them on its training "
        "crops (on whole photos they still drift). new-only: only the new weight learns, on frozen "
        "features (the old weights stay exact, but may keep firing on the new photos). all: retrained freely (old "
        "degradations may route up to 0.3 dB worse)."),
    fresh: bool = flag("--fresh", help="Train the adapter again even if an interrupted run of this same command "
                       "left one (by default it is reused)."),
) -> None:
    """Teach air-restore a new degradation: train its adapter, retrain the estimator, install both.

    Examples:

      air add-degradation underwater --data ../shared/data/pairs/underwater_EUVP --clean ../shared/data/train/clean

      air add-degradation polyu --data ../shared/data/pairs/noise_real_PolyU --clean ../shared/data/train/clean

      air add-degradation sepia --synthetic sepia --data photos/ --time-budget 10

    (sepia: a third-party plugin's synthesizer, `pip install tests/plugin_package`; the bundled snow
    adapter was made by `air add-degradation snow --synthetic snow` before it was bundled.)

    A share of the images is held out; the table at the end compares the held-out PSNR of the whole
    pipeline before and after, on the new task and on every old one; a warning names any old one that
    lost more than 0.3 dB. Nothing is installed until everything succeeded (Ctrl-C leaves your
    adapters as they were). Then `air restore` uses it.

    Interrupted after the adapter was trained, the same command run again goes on from there: it reuses
    that adapter and retrains only the estimator (--fresh trains the adapter again).
    """
    import json

    import torch
    from rich.table import Table

    from ...core.io.files import atomic_write_text
    from ...registry.add_degradation import CLEAN_TASK, kept_adapter, run

    labels = {"adapter": f"1/3 adapter {name}", "views": "2/3 estimator: synthesizing and judging views",
              "estimator": "2/3 estimator: training", "compare": "3/3 before/after"}
    try:
        with StageBars(labels) as bars:
            r = run(name, data, synthetic=synthetic, clean=clean, steps=steps, rank=rank, batch_size=batch_size,
                    crop=crop, holdout=holdout, estimator_steps=estimator_steps, eval_images=eval_images, seed=seed,
                    overwrite=overwrite, progress=bars, time_budget=None if time_budget is None else 60 * time_budget,
                    fresh=fresh, estimator_update=estimator_update)
    except KeyboardInterrupt:
        say("interrupted: nothing was installed; your adapters are as they were", out=console)
        if kept_adapter(name) is not None:
            say(f"the {name} adapter was trained and is kept ({kept_adapter(name)}): run the same command again "
                "to go on from it (--fresh trains it again)", out=console)
        raise typer.Exit(130)
    except OSError as e:  # FileExistsError (installed meanwhile), a full or read-only store
        fail(str(e))
    table = Table(title=escape(f"held-out PSNR (dB) of the whole pipeline, before and after adding {name}"),
                  show_edge=False)
    for col in ("task", "images", "input", "before", "after", "change"):
        table.add_column(col, justify="left" if col == "task" else "right")
    for task, inp, b, a in r.rows:
        label = f"{task.name} (new)" if task.name == name else task.name
        table.add_row(escape(label), str(len(task.pairs)), f"{inp:.2f}", f"{b:.2f}", f"{a:.2f}", f"{a - b:+.2f}")
    stdout.print(table)
    if any(task.name == CLEAN_TASK for task, *_ in r.rows):
        say(f"{CLEAN_TASK}: held-out photos with nothing wrong, against themselves as 8-bit files (100 = given back "
            "unchanged; a grey level off on a few pixels reads 50-90)")
    if r.resumed:
        say(f"the {name} adapter is the one an interrupted run of this command trained ({r.manifest['training']['steps']}"
            " steps); --fresh trains it again")
    if worse := r.worse():
        warn(f"with {name} installed, the pipeline restores " + ", ".join(f"{t} {-d:.2f} dB" for t, d in worse)
             + f" worse (held out, above). If your photos have that degradation, `air remove {name}` undoes this "
             "install.")
    say(f"estimator top-1 on these held-out images: {r.top1}/{r.n_eval}")
    say("time: " + ", ".join(f"{phase} {sec:.0f} s" for phase, sec in r.phases_s.items()))
    if report is not None:
        atomic_write_text(report, json.dumps({
            "name": name, "source": r.source, "adapter": r.manifest, "estimator": r.estimator,
            "estimator_heldout_top1": r.top1 / r.n_eval, "wall_s": round(r.wall_s, 1), "phases_s": r.phases_s,
            "resumed": r.resumed,
            "threads": torch.get_num_threads(),
            "tasks": [{"task": t.name, "new": t.name == name, "images": len(t.pairs), "note": t.note, "input": inp,
                       "before": b, "after": a} for t, inp, b, a in r.rows],
        }, indent=1) + "\n")
    say(f"installed {name} → {r.dest} ({r.wall_s:.0f} s). `air restore photo.jpg` now uses it; "
        f"`air remove {name}` undoes it.")
