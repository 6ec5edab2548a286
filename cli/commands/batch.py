"""``air batch``: a whole archive on Ray Data (the scale extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ...core.defaults import OVERLAP
from ..options import check_tiles, open_pipeline
from ..ui import console, error, fail, flag, say



def batch_cmd(
    input: str = typer.Argument(..., help="Folder of images (searched recursively), or a URI: s3://..., gs://..."),
    output: str = typer.Argument(..., help="Folder or URI for the results: same relative paths and names."),
    address: str = typer.Option("local", help="local (start Ray on this machine), auto (join `ray start --head`) "
                                "or ray://HOST:PORT."),
    workers: int = typer.Option(1, help="Model workers (Ray actors), each holding the pipeline once."),
    gpus_per_worker: float = typer.Option(0.0, "--gpus-per-worker", help="GPUs per worker, e.g. 0.5 (0: CPU)."),
    batch_size: int = typer.Option(4, "--batch-size", help="Images per call of a worker."),
    tile: Optional[int] = typer.Option(None, show_default=False,
                                       help="Tile side in pixels, as in `air restore` (default: as there)."),
    overlap: int = typer.Option(OVERLAP, help="Tile overlap in pixels, as in `air restore`."),
    adapters: Optional[str] = typer.Option(None, "--adapters", help="Your adapter weights instead of the "
                                           "estimator's, e.g. noise=1,rain=0.5 (others 0)."),
    no_adapters: bool = flag("--no-adapters", help="The base model alone."),
    tta: bool = flag("--tta", help="Then run the UDAIR refiner on each image."),
    weights: Optional[Path] = typer.Option(None, help="Base weights file (default: the bundled model)."),
    max_pixels: int = typer.Option(64_000_000, "--max-pixels", help="Refuse (and record) bigger images."),
    overwrite: bool = flag("--overwrite", help="Restore every image again, replacing outputs."),
) -> None:
    """Restore a whole archive on Ray Data: many workers, resumable, nothing lost.

    Examples:

      air batch scans/ restored/                          # this machine, one worker

      air batch scans/ restored/ --workers 2              # two workers (one CPU core each on 2 cores)

      air batch s3://bucket/scans s3://bucket/restored --address auto --workers 8 --gpus-per-worker 0.5

    A rerun skips images whose output exists (outputs are written whole, then renamed), so a killed job
    loses only the images in flight. Bad images are listed in OUTPUT/_air_errors.jsonl and the job goes on;
    exit code 1 if any failed. Outputs are what `air restore` writes for the same files.
    Needs the scale extra: pip install "air-restore[scale]".
    """
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        fail('air batch needs the scale extra (Ray Data): pip install "air-restore[scale]"')
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ...registry.batch import run_batch

    check_tiles(tile, overlap)
    if workers < 1 or batch_size < 1 or gpus_per_worker < 0:
        fail("--workers and --batch-size must be at least 1, --gpus-per-worker at least 0")
    if no_adapters and adapters:
        fail("--no-adapters cannot be combined with --adapters")
    # Opened here once, so that a bad name or file is one line rather than a failure in every worker.
    _, fixed = open_pipeline(weights, "cpu", no_adapters, tta, adapters, [])

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[rate]}"), console=console, disable=not console.is_terminal) as bar:
        task = bar.add_task("restoring", total=None, rate="")

        def show(s) -> None:
            bar.update(task, total=s.total - s.skipped, completed=s.restored + s.failed,
                       rate=f"{(s.restored + s.failed) / max(s.seconds, 1e-9):.2f} images/s")
        s = run_batch(input, output, address=address, workers=workers, gpus_per_worker=gpus_per_worker,
                      batch_size=batch_size, tile=tile, overlap=overlap, adapters=fixed,
                      use_adapters=not no_adapters, tta=tta, weights=str(weights) if weights else None,
                      max_pixels=max_pixels, overwrite=overwrite, progress=show)
    line = f"{s.restored} restored, {s.skipped} already done, {s.failed} failed (of {s.total})"
    if s.seconds:
        line += (f" in {s.seconds:.1f} s: {(s.restored + s.failed) / s.seconds:.2f} images/s, "
                 f"{s.megapixels / s.seconds:.3f} MP/s (first result after {s.first_result_s:.1f} s: "
                 "Ray and the workers starting)")
    say(line)
    for e in s.errors[:10]:
        error(e["path"] + ": " + e["reason"])
    if s.failed:
        say(f"every failure: {s.errors_file}", out=console)
        raise typer.Exit(1)
