"""``air eval``: PSNR/SSIM against references, or NIQE on real photos."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from ...core.defaults import OVERLAP, TILE
from ..ui import CtrlC, console, fail, flag, say, stdout, warn


def eval_cmd(
    pairs: Optional[Path] = typer.Option(None, "--pairs", help="Folder with degraded/ and clean/ images matched by name."),
    clean: Optional[Path] = typer.Option(None, "--clean", help="Folder of clean photos to degrade with --degrade."),
    degrade: Optional[str] = typer.Option(None, "--degrade", help="PLUGIN[:SEVERITY] for --clean, e.g. noise:0.5."),
    seed: int = typer.Option(0, help="With --clean: image i is degraded with seed + i."),
    csv_path: Optional[Path] = typer.Option(None, "--csv", help="Write per-image PSNR/SSIM (or NIQE) here."),
    device: str = typer.Option("auto", metavar="auto|cpu|cuda", help="auto, cpu or cuda."),
    tile: int = typer.Option(TILE, help="Tile side in pixels."),
    overlap: int = typer.Option(OVERLAP, help="Tile overlap in pixels."),
    weights: Optional[Path] = typer.Option(None, help="Base weights file (default: the bundled model)."),
    no_reference: Optional[Path] = typer.Option(
        None, "--no-reference", help="Folder of real photos without a clean reference: NIQE of input and restored.",
    ),
    no_adapters: bool = flag("--no-adapters", help="Evaluate the base model alone (no adapters, no estimator)."),
) -> None:
    """Measure PSNR/SSIM of the input and of the restored image against the clean reference, or NIQE
    (no reference needed; lower is more natural) on real photos.

    Examples:

      air eval --pairs ../shared/data/pairs/rain_Rain100H --csv rain.csv

      air eval --clean ../shared/data/eval/CBSD68 --degrade noise:0.5

      air eval --no-reference ../shared/data/real/hazy --csv hazy_niqe.csv

    The restorer is the one `air restore` runs: the base with the installed adapters weighted per image by
    the estimator (`--no-adapters` for the base alone).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ...core.evaluation import evaluate, evaluate_no_reference
    from ...core.restore import resolve_device
    from ...registry.restorer import load_restorer

    if sum(x is not None for x in (pairs, clean, no_reference)) != 1:
        fail("give exactly one of --pairs DIR, --clean DIR (with --degrade PLUGIN[:SEVERITY]) or --no-reference DIR")
    if clean is not None and degrade is None:
        fail("--clean needs --degrade PLUGIN[:SEVERITY], e.g. --degrade noise:0.5")
    folder = pairs or clean or no_reference
    if not folder.is_dir():
        fail(f"{folder}: no such folder")
    restorer = load_restorer(weights, device=resolve_device(device), use_adapters=not no_adapters)
    for w in restorer.warnings:
        warn(w)
    what = f"base {restorer.info.fingerprint}" + (f" + {', '.join(restorer.adapters)}" if restorer.adapters else "")
    title, samples, total = _samples(pairs, clean, no_reference, degrade, seed)
    with CtrlC() as ctrl_c, Progress(TextColumn("evaluating"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("eval", total=total)

        def restore_fn(x):
            ctrl_c.check()
            return restorer.restore(x, tile=tile, overlap=overlap).image

        if no_reference is not None:
            result = evaluate_no_reference(
                samples, restore_fn, csv_path=csv_path, on_image=lambda row: bar.advance(task),
                on_skip=lambda p, why: (say(f"skipped {p.name}: {why}", out=bar.console), bar.advance(task)))
        else:
            result = evaluate(samples, restore_fn, csv_path=csv_path, on_image=lambda row: bar.advance(task))
    if no_reference is not None:
        _print_niqe(no_reference, result, what)
    else:
        _print_psnr(f"{title}: {result['images']} images, {what}", result)
    if csv_path:
        say(f"per-image results → {csv_path}")


def _samples(pairs, clean, no_reference, degrade, seed):
    """(title, samples, count) of the one folder given: image paths for --no-reference, else (degraded,
    clean) samples; count is None when it is not known in advance."""
    from ...core.evaluation import paired_samples, parse_degrade, synthetic_samples
    from ...core.io.images import iter_image_paths
    from ...registry.discovery import get_degradation

    if no_reference is not None:
        paths = iter_image_paths([no_reference])
        if not paths:
            fail(f"{no_reference}: no images")
        return no_reference.name, paths, len(paths)
    if pairs is not None:
        total = len(iter_image_paths([pairs / "degraded"])) if (pairs / "degraded").is_dir() else None
        return f"{pairs.name} (paired)", paired_samples(pairs), total
    name, severity = parse_degrade(degrade)
    synth = get_degradation(name).synthesize
    if synth is None:
        fail(f"plugin {name!r} has no synthesizer; use --pairs with real pairs instead")
    return (f"{clean.name} + {name} (severity {severity}, seed {seed})", synthetic_samples(clean, synth, severity, seed),
            len(iter_image_paths([clean])))


def _print_niqe(folder: Path, result: dict, what: str) -> None:
    from rich.table import Table

    if not result["images"]:
        fail(f"{folder}: no image large enough for NIQE")
    table = Table(title=escape(f"{folder.name}: NIQE (lower is more natural), {result['images']} images, {what}"),
                  show_edge=False)
    for col in ("", "median", "mean"):
        table.add_column(col, justify="right" if col else "left")
    for key, label in (("input_niqe", "input"), ("restored_niqe", "restored")):
        table.add_row(label, f"{result[key + '_median']:.2f}", f"{result[key]:.2f}")
    table.add_row("restored lower", f"{result['restored_better']} of {result['images']}", "")
    stdout.print(table)


def _print_psnr(title: str, result: dict) -> None:
    from rich.table import Table

    table = Table(title=escape(title), show_edge=False)
    for col in ("", "PSNR (dB)", "SSIM"):
        table.add_column(col, justify="right" if col else "left")
    table.add_row("input", f"{result['input_psnr']:.2f}", f"{result['input_ssim']:.4f}")
    table.add_row("restored", f"{result['restored_psnr']:.2f}", f"{result['restored_ssim']:.4f}")
    table.add_row("gain", f"{result['restored_psnr'] - result['input_psnr']:+.2f}",
                  f"{result['restored_ssim'] - result['input_ssim']:+.4f}")
    stdout.print(table)
