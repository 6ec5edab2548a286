"""``air restore``: the main job."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from ...core.defaults import OVERLAP, TILE, TILE_HALF
from ..options import check_tiles, open_pipeline
from ..ui import CtrlC, console, error, fail, flag, say, stdout


def restore(
    inputs: list[Path] = typer.Argument(..., help="Image files and/or folders of images.", show_default=False),
    output: Optional[Path] = typer.Option(
        None, "-o", "--output",
        help="Output file (one input) or folder. Default: NAME_restored.EXT beside each input.",
    ),
    overwrite: bool = flag("--overwrite", help="Replace existing outputs (and the input, if -o names it)."),
    device: str = typer.Option("auto", metavar="auto|cpu|cuda", help="auto (GPU if there is one), cpu or cuda."),
    tile: Optional[int] = typer.Option(
        None, show_default=False,
        help=f"Tile side in pixels; smaller uses less memory. Multiple of 8. Default: {TILE_HALF} where the tiles "
             f"compute in bf16 or fp16 (see --precision), else {TILE}."),
    overlap: int = typer.Option(OVERLAP, help="Overlap between tiles in pixels (wide enough to keep tiles seamless). "
                                "Multiple of 8."),
    precision: str = typer.Option(
        "auto", metavar="auto|fp32|bf16|fp16", help="Number format of the network: auto, fp32, bf16 or fp16. auto "
        "is fp32 on a CPU without native bf16 (where bf16 is about 20x slower) and bf16/fp16 on a GPU."),
    explain: bool = flag(
        "--explain", help="Also write NAME_map.png (what the model sees where) and print each class's share."
    ),
    weights: Optional[Path] = typer.Option(None, help="Base weights file (default: the bundled model)."),
    adapters: Optional[str] = typer.Option(
        None, "--adapters",
        help="Set the adapter weights yourself instead of the estimator, e.g. noise=1,rain=0.5 (others 0). "
             "See `air list` for the installed adapters.",
    ),
    no_adapters: bool = flag("--no-adapters", help="Use the base model alone (no adapters, no estimator)."),
    adapter: Optional[list[str]] = typer.Option(
        None, "--adapter",
        help="Also apply an adapter folder that is not installed, as PATH or PATH=WEIGHT (default 1). Repeatable.",
    ),
    max_pixels: int = typer.Option(
        64_000_000, "--max-pixels",
        help="Refuse images with more pixels than this (64 MP needs about 3 GB of memory for the whole image, plus 0.3 GB for the model and about 1 GB for a tile)."),
    tta: bool = flag(
        "--tta", help="Then run the UDAIR refiner, adapted to each image (5 steps); --explain prints its CORAL loss."
    ),
    strength: Optional[float] = typer.Option(
        None, "--strength", min=0.0, max=1.0,
        help="How much of the restoration to keep, from 0 (the input as it is) to 1 (all of it). Default: the "
        "estimator's choice for each photo (1 with --adapters)."),
    no_gate: bool = flag(
        "--no-gate", help="Let the network change every pixel, also where it sees nothing wrong (by default "
        "those pixels are kept as they are, so a clean photo comes back unchanged)."),
) -> None:
    """Restore photos: removes noise, blur, haze, rain and low light without being told which.

    Examples:

      air restore photo.jpg                  # writes photo_restored.jpg beside it

      air restore shots/ -o clean/           # every image of a folder, into clean/

      air restore photo.jpg --explain        # also photo_restored_map.png and the adapter weights

      air restore photo.jpg --adapters rain=1,lowlight=0.5   # choose the adapters yourself

      air restore photo.jpg --strength 0.5   # a lighter touch: half-way between the input and the restoration

    By default the estimator looks at each photo and weights every installed adapter (`air list`);
    the weights are blended into one pass of the base model. The output keeps the input's format, bit depth, gray/colour mode and alpha channel. Nothing is
    overwritten unless you pass --overwrite. Exit code 1 if any image failed.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ...core.io.images import ImageReadError
    from ...registry import jobs

    check_tiles(tile, overlap)
    plan = jobs.plan(inputs, output)
    if plan.skipped:
        say(f"skipping {len(plan.skipped)} earlier output(s) (*_restored*); name them to restore them", out=console)
    if no_adapters and (adapters or adapter):
        fail("--no-adapters cannot be combined with --adapters or --adapter")
    pipe, fixed = open_pipeline(weights, device, no_adapters, tta, adapters, adapter or [], gate=not no_gate,
                                precision=precision)
    failed = finished = 0
    interrupted = False
    # Ctrl-C is raised only where ctrl_c.check() is called (each file, each tile), so that a file written is counted.
    with CtrlC(at_once=False) as ctrl_c, Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console,
            disable=not console.is_terminal, transient=True) as bar:
        task = bar.add_task("restoring", total=len(plan.jobs), visible=plan.is_batch)
        tiles = bar.add_task("  tiles", total=None)
        try:
            for job in plan.jobs:
                ctrl_c.check()
                bar.update(task, description=f"restoring {job.src.name}")
                bar.reset(tiles, total=None)
                try:
                    done = jobs.restore_file(pipe, job, adapters=fixed, tile=tile, overlap=overlap, explain=explain,
                                             overwrite=overwrite, max_pixels=max_pixels, strength=strength,
                                             progress=lambda d, t: (ctrl_c.check(),
                                                                    bar.update(tiles, completed=d, total=t)))
                except (ImageReadError, FileExistsError, ValueError, OSError) as e:
                    failed += 1
                    error(str(e), out=bar.console)
                else:
                    for note in done.restored.notes:
                        say(f"{job.src.name}: {note}")
                    say(f"{job.src} → {job.dest}")
                    if explain:
                        failed += _report_explain(done)
                finished += 1
                bar.advance(task)
        except KeyboardInterrupt:
            interrupted = True
    if interrupted:  # the file being written when Ctrl-C came is not left half-written (core.io.files.atomic_write)
        say(f"interrupted: {finished - failed} restored, {failed} failed, {len(plan.jobs) - finished} not done "
            "(no output is left half-written)", out=console)
        raise typer.Exit(130)
    if plan.is_batch or failed:
        stdout.print(f"{len(plan.jobs) - failed} restored, {failed} failed")
    if failed:
        raise typer.Exit(1)


def _report_explain(done) -> int:
    """--explain's lines for one restored file; returns 1 if its map could not be written."""
    r, name = done.restored, done.job.src.name
    if r.tta is not None:
        say(f"{name}: {r.tta}")
    if r.seg_probs is None:
        return 0
    if done.map_error:
        error(done.map_error)
    print_explain(stdout, name, r)
    say(f"degradation map → {done.job.map_path}")
    return int(done.map_error is not None)


def _rule_lines(result) -> list[str]:
    """--explain's line for each adapter weight a rule measured, raised, moved or scaled (core.routing, core.floors)."""
    lines = [f"the {adapter} weight is measured on the photo, not chosen by the estimator ({why})"
             for adapter, why in result.detected.items()]
    lines += [f"the {adapter} weight was raised to {floor:.2f} by a measurement of the photo ({why}): the estimator "
              "gave it less" for adapter, (floor, why) in result.floored.items() if adapter not in result.moved]
    for adapter, (source, why) in result.moved.items():
        if result.weights.get(adapter, 0.0) >= 0.01:
            raised = (f"raised to {result.floored[adapter][0]:.2f} by a measurement of the photo and "
                      if adapter in result.floored else "")
            lines.append(f"the {adapter} weight is the estimator's {source} weight, {raised}handed to the {adapter} "
                         f"adapter, the rule's own ({why})")
    return lines + [f"the {adapter} weight was " + (f"multiplied by {factor:.2f}" if factor else "set to 0") + f": {why}"
                    for adapter, (factor, why) in result.yielded.items()]


def print_explain(out: Console, name: str, result) -> None:
    """--explain's tables: each class's share of the image, and the adapter weights and who chose them."""
    from rich.table import Table

    # Titles as lines of their own: a table title wraps to the (narrow) table's width.
    out.print(escape(f"{name}: share of the image per class"), highlight=False, soft_wrap=True)
    table = Table(show_edge=False)
    table.add_column("class")
    table.add_column("share", justify="right")
    for cls, share in result.shares.items():
        table.add_row(cls, f"{100 * share:.1f}%")
    out.print(table)
    if result.weights:
        ruled = result.detected or result.floored or result.moved or result.yielded
        how = "given by --adapters" if result.weights_source == "given" else (
            "chosen by the estimator and the rules below" if ruled else "chosen by the estimator")
        out.print(escape(f"{name}: adapter weights ({how})"), highlight=False, soft_wrap=True)
        wt = Table(show_edge=False)
        wt.add_column("adapter")
        wt.add_column("weight", justify="right")
        for adapter, w in result.weights.items():
            wt.add_row(escape(adapter), f"{w:.2f}")
        out.print(wt)
        for line in _rule_lines(result):
            out.print(escape(f"{name}: {line}"), highlight=False, soft_wrap=True)
        if result.second is not None:
            found = ", ".join(f"{a} {v:.2f}" for a, v in result.second.items() if v >= 0.01) or "none"
            out.print(escape(f"{name}: restored twice: a scene-wide correction (haze or low light) led the first "
                             f"pass, so the estimator judged its output again for what the veil or the dark hid "
                             f"(weights: {found})"),
                      highlight=False, soft_wrap=True)
        if result.toned:
            out.print(escape(f"{name}: low light led, so the large-scale brightness was refitted to the input's "
                             "(window by window, one affine map): what was equally dark nearby comes out equally "
                             "bright, without the blotches the network paints on flat areas"),
                      highlight=False, soft_wrap=True)
        if result.fallback > 0:
            out.print(escape(f"{name}: {result.fallback:.2f} of the noise weight is the share the estimator left "
                             "unassigned: the noise adapter restores mild, unclear degradations better than the base "
                             "alone (never given on a dark photo, nor on a veiled, hazy one, whose dehazing it would "
                             "undo)"), highlight=False, soft_wrap=True)
    dark = result.kept_dark > 0 and result.shares is not None and result.shares.get("lowlight", 0.0) >= 0.01
    if dark:
        out.print(escape(f"{name}: the estimator finds it exposed as meant (low light "
                         f"{result.weights.get('lowlight', 0.0):.2f}), so the gate also kept "
                         f"{100 * result.kept_dark:.0f}% of what looks under-exposed as it came: a night sky stays "
                         "dark"), highlight=False, soft_wrap=True)
    if result.kept_haze > 0 and result.shares is not None and result.shares.get("haze", 0.0) >= 0.01:
        out.print(escape(f"{name}: neither the estimator (haze {result.weights.get('haze', 0.0):.2f}) nor a veil over "
                         f"the darkest parts shows haze, so the gate also kept {100 * result.kept_haze:.0f}% of what "
                         "looks hazy as it came: the base would only guess there, and darkens bright clouds and snow "
                         "or blotches fog"),
                  highlight=False, soft_wrap=True)
    if result.clean_share > 0:
        what = "clean (or dark on purpose)" if dark else "clean"
        out.print(escape(f"{name}: looks {what} as a whole, so the gate kept {100 * result.clean_share:.0f}% of the "
                         "input everywhere, and more where a pixel looks clean (--no-gate turns this off)"),
                  highlight=False, soft_wrap=True)
    if result.strength_source != "none":
        how = "given" if result.strength_source == "given" else "chosen by the estimator"
        out.print(escape(f"{name}: strength {result.strength:.2f} (share of the restoration kept, {how})"),
                  highlight=False, soft_wrap=True)
