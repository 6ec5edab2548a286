"""The ``air`` command."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(
    name="air",
    help="air-restore: blind all-in-one image restoration (noise, blur, haze, rain, low light).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
train_app = typer.Typer(help="Train the models.", no_args_is_help=True)
app.add_typer(train_app, name="train")

# Results (what was written where, tables, summaries) go to stdout; progress, warnings and errors to
# stderr, so that `air restore ... > log.txt` keeps the results.
console = Console(stderr=True)
stdout = Console()


def _flag(*decls: str, help: str, **kw) -> bool:
    """An on/off option (default off). Shown without typer's ``<bool>`` type column, which would read as if
    the flag took a value."""
    return typer.Option(False, *decls, help=help, metavar="", **kw)


def _version_callback(value: bool) -> None:
    if not value:
        return
    from importlib.metadata import version

    from air_restore.registry.discovery import discover

    typer.echo(f"air-restore {version('air-restore')}")
    for r in discover():
        status = r.plugin.manifest.version if r.plugin else f"BROKEN ({r.error})"
        typer.echo(f"  {r.display}: {status}")
    raise typer.Exit()


@app.callback()
def _main(
    version: bool = _flag(
        "--version", callback=_version_callback, is_eager=True, help="Show versions of air-restore and its plugins."
    ),
) -> None:
    """Restore photos without saying what is wrong with them.

    Start with:  air restore photo.jpg   (writes photo_restored.jpg beside it)
    """


@app.command()
def restore(
    inputs: list[Path] = typer.Argument(..., help="Image files and/or folders of images.", show_default=False),
    output: Optional[Path] = typer.Option(
        None, "-o", "--output",
        help="Output file (one input) or folder. Default: NAME_restored.EXT beside each input.",
    ),
    overwrite: bool = _flag("--overwrite", help="Replace existing outputs (and the input, if -o names it)."),
    device: str = typer.Option("auto", help="auto (GPU if there is one), cpu or cuda."),
    tile: int = typer.Option(512, help="Tile side in pixels; smaller uses less memory. Multiple of 8."),
    overlap: int = typer.Option(128, help="Overlap between tiles in pixels (128 keeps tiles seamless). Multiple of 8."),
    explain: bool = _flag(
        "--explain", help="Also write NAME_map.png (what the model sees where) and print each class's share."
    ),
    weights: Optional[Path] = typer.Option(None, help="Base weights file (default: the bundled model)."),
    adapters: Optional[str] = typer.Option(
        None, "--adapters",
        help="Set the adapter weights yourself instead of the estimator, e.g. noise=1,rain=0.5 (others 0). "
             "See `air list` for the installed adapters.",
    ),
    no_adapters: bool = _flag("--no-adapters", help="Use the base model alone (no adapters, no estimator)."),
    adapter: Optional[list[str]] = typer.Option(
        None, "--adapter",
        help="Also apply an adapter folder that is not installed, as PATH or PATH=WEIGHT (default 1). Repeatable.",
    ),
    max_pixels: int = typer.Option(
        64_000_000, "--max-pixels",
        help="Refuse images with more pixels than this (64 MP needs about 4 GB of memory; 60 bytes per pixel)."),
    tta: bool = _flag(
        "--tta", help="Then run the UDAIR refiner, adapted to each image (5 steps); --explain prints its CORAL loss."
    ),
) -> None:
    """Restore photos: removes noise, blur, haze, rain and low light without being told which.

    Examples:

      air restore photo.jpg                  # writes photo_restored.jpg beside it

      air restore shots/ -o clean/           # every image of a folder, into clean/

      air restore photo.jpg --explain        # also photo_restored_map.png and the adapter weights

      air restore photo.jpg --adapters rain=1,lowlight=0.5   # choose the adapters yourself

    By default the estimator looks at each photo and weights every installed adapter (`air list`);
    the weights are blended into one pass of the base model. The output keeps the input's format, bit depth, gray/colour mode and alpha channel. Nothing is
    overwritten unless you pass --overwrite. Exit code 1 if any image failed.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from air_restore.core.explain import degradation_map
    from air_restore.core.io.images import (
        IMAGE_SUFFIXES, ImageReadError, check_writable, iter_image_paths, output_path_for, read_image, save_png,
        write_image,
    )

    _check_tiles(tile, overlap)
    try:
        paths = iter_image_paths(inputs)
    except (ValueError, FileNotFoundError) as e:
        _fail(str(e))
    # Files found in folders that are our own earlier outputs are not restored again.
    explicit = {p.resolve() for p in inputs if not p.is_dir()}
    previous = [p for p in paths if p.resolve() not in explicit and p.stem.endswith(("_restored", "_restored_map"))]
    if previous:
        paths = [p for p in paths if p not in previous]
        console.print(escape(f"skipping {len(previous)} earlier output(s) (*_restored*); name them to restore them"),
                      highlight=False, soft_wrap=True)
    if not paths:
        _fail("no images found in " + ", ".join(map(str, inputs)))
    is_batch = len(paths) > 1 or any(p.is_dir() for p in inputs)
    if is_batch and output is not None and output.exists() and not output.is_dir():
        _fail(f"{output}: is a file; with several inputs, -o must be a folder")
    if is_batch and output is not None and not output.exists() and output.suffix.lower() in IMAGE_SUFFIXES:
        _fail(f"{output}: looks like a file name, but there are {len(paths)} inputs; give -o a folder")
    if no_adapters and (adapters or adapter):
        _fail("--no-adapters cannot be combined with --adapters or --adapter")
    pipe, fixed = _open_pipeline(weights, device, no_adapters, tta, adapters, adapter or [])
    try:  # a read-only or impossible output folder is refused now, not after every image was computed
        for folder in sorted({output_path_for(p, output, is_batch=is_batch).parent for p in paths}):
            check_writable(folder)
    except OSError as e:
        _fail(str(e))

    failed = 0
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, disable=not console.is_terminal, transient=True,
    ) as bar:
        task = bar.add_task("restoring", total=len(paths), visible=is_batch)
        tiles = bar.add_task("  tiles", total=None)
        for path in paths:
            bar.update(task, description=f"restoring {path.name}")
            dest = output_path_for(path, output, is_batch=is_batch)
            map_path = dest.with_name(dest.stem + "_map.png")
            try:
                if dest.exists() and not overwrite:
                    raise FileExistsError(f"{dest}: already exists (pass --overwrite to replace it)")
                if explain and map_path.exists() and not overwrite:
                    raise FileExistsError(f"{map_path}: already exists (pass --overwrite to replace it)")
                img = read_image(path, max_pixels=max_pixels)
                bar.reset(tiles, total=None)
                result = pipe.run(img.rgb, adapters=fixed, tile=tile, overlap=overlap, explain=explain,
                                  progress=lambda done, total: bar.update(tiles, completed=done, total=total))
                write_image(img, result.image, dest, overwrite=overwrite)
            except (ImageReadError, FileExistsError, ValueError, OSError) as e:
                failed += 1
                bar.console.print(f"[red]error[/red]: {escape(str(e))}", highlight=False, soft_wrap=True)
                bar.advance(task)
                continue
            stdout.print(escape(f"{path} → {dest}"), highlight=False, soft_wrap=True)
            if explain and result.tta is not None:
                stdout.print(escape(f"{path.name}: {result.tta}"), highlight=False, soft_wrap=True)
            if explain and result.seg_probs is not None:
                try:
                    save_png(degradation_map(img.rgb, result.seg_probs, pipe.classes), map_path, overwrite=overwrite)
                except OSError as e:
                    failed += 1
                    bar.console.print(f"[red]error[/red]: {escape(f'{map_path}: {e}')}", highlight=False, soft_wrap=True)
                _print_explain(stdout, path.name, result)
                stdout.print(escape(f"degradation map → {map_path}"), highlight=False, soft_wrap=True)
            bar.advance(task)
    if is_batch or failed:
        stdout.print(f"{len(paths) - failed} restored, {failed} failed")
    if failed:
        raise typer.Exit(1)


@app.command("serve")
def serve_cmd(
    host: str = typer.Option("127.0.0.1", help="Address to listen on. The default is this machine only; "
                             "0.0.0.0 lets anyone on your network use it."),
    port: int = typer.Option(7860, help="Port to listen on."),
    device: str = typer.Option("auto", help="auto (GPU if there is one), cpu or cuda."),
    max_pixels: int = typer.Option(64_000_000, "--max-pixels", help="Refuse uploads with more pixels than this."),
) -> None:
    """Open the web page: drop photos, compare before and after, see the degradation map, move the
    adapter weights, download the result (same pipeline as `air restore`).

    Examples:

      air serve                      # then open http://127.0.0.1:7860

      air serve --port 8000 --device cpu

    Needs the web extra: pip install "air-restore[web]".
    """
    try:
        import gradio  # noqa: F401
    except ImportError:
        _fail('air serve needs the web extra (Gradio): pip install "air-restore[web]"')
    from air_restore.core.restore import resolve_device
    from air_restore.registry.adapters import AdapterFileError
    from air_restore.registry.pipeline import PipelineError
    from air_restore.registry.store import ModelFileError
    from air_restore.web import build_app

    try:
        resolve_device(device)
        web = build_app(device=device, max_pixels=max_pixels)
    except (ModelFileError, AdapterFileError, PipelineError, ValueError) as e:
        _fail(str(e).strip("'\""))
    if host not in ("127.0.0.1", "localhost", "::1"):
        console.print(f"[yellow]warning[/yellow]: listening on {escape(host)}: anyone who can reach this machine "
                      "can use the page", highlight=False, soft_wrap=True)
    console.print(escape(f"air-restore page on http://{host}:{port}  (Ctrl-C to stop)"), highlight=False)
    try:
        web.launch(server_name=host, server_port=port, show_error=True, quiet=True, max_file_size="200mb")
    except OSError as e:  # the port is taken, or the address is not this machine's
        _fail(f"cannot listen on {host}:{port}: {e}")


@app.command("batch")
def batch_cmd(
    input: str = typer.Argument(..., help="Folder of images (searched recursively), or a URI: s3://..., gs://..."),
    output: str = typer.Argument(..., help="Folder or URI for the results: same relative paths and names."),
    address: str = typer.Option("local", help="local (start Ray on this machine), auto (join `ray start --head`) "
                                "or ray://HOST:PORT."),
    workers: int = typer.Option(1, help="Model workers (Ray actors), each holding the pipeline once."),
    gpus_per_worker: float = typer.Option(0.0, "--gpus-per-worker", help="GPUs per worker, e.g. 0.5 (0: CPU)."),
    batch_size: int = typer.Option(4, "--batch-size", help="Images per call of a worker."),
    tile: int = typer.Option(512, help="Tile side in pixels, as in `air restore`."),
    overlap: int = typer.Option(128, help="Tile overlap in pixels, as in `air restore`."),
    adapters: Optional[str] = typer.Option(None, "--adapters", help="Your adapter weights instead of the "
                                           "estimator's, e.g. noise=1,rain=0.5 (others 0)."),
    no_adapters: bool = _flag("--no-adapters", help="The base model alone."),
    tta: bool = _flag("--tta", help="Then run the UDAIR refiner on each image."),
    weights: Optional[Path] = typer.Option(None, help="Base weights file (default: the bundled model)."),
    max_pixels: int = typer.Option(64_000_000, "--max-pixels", help="Refuse (and record) bigger images."),
    overwrite: bool = _flag("--overwrite", help="Restore every image again, replacing outputs."),
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
        _fail('air batch needs the scale extra (Ray Data): pip install "air-restore[scale]"')
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from air_restore.registry.batch import BatchError, run_batch

    _check_tiles(tile, overlap)
    if workers < 1 or batch_size < 1 or gpus_per_worker < 0:
        _fail("--workers and --batch-size must be at least 1, --gpus-per-worker at least 0")
    if no_adapters and adapters:
        _fail("--no-adapters cannot be combined with --adapters")
    # Opened here once, so that a bad name or file is one line rather than a failure in every worker.
    _, fixed = _open_pipeline(weights, "cpu", no_adapters, tta, adapters, [])

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[rate]}"), console=console, disable=not console.is_terminal) as bar:
        task = bar.add_task("restoring", total=None, rate="")

        def show(s) -> None:
            bar.update(task, total=s.total - s.skipped, completed=s.restored + s.failed,
                       rate=f"{(s.restored + s.failed) / max(s.seconds, 1e-9):.2f} images/s")
        try:
            s = run_batch(input, output, address=address, workers=workers, gpus_per_worker=gpus_per_worker,
                          batch_size=batch_size, tile=tile, overlap=overlap, adapters=fixed,
                          use_adapters=not no_adapters, tta=tta, weights=str(weights) if weights else None,
                          max_pixels=max_pixels, overwrite=overwrite, progress=show)
        except BatchError as e:
            _fail(str(e))
    line = f"{s.restored} restored, {s.skipped} already done, {s.failed} failed (of {s.total})"
    if s.seconds:
        line += (f" in {s.seconds:.1f} s: {(s.restored + s.failed) / s.seconds:.2f} images/s, "
                 f"{s.megapixels / s.seconds:.3f} MP/s (first result after {s.first_result_s:.1f} s: "
                 "Ray and the workers starting)")
    stdout.print(escape(line), highlight=False, soft_wrap=True)
    for e in s.errors[:10]:
        console.print(f"[red]error[/red]: {escape(e['path'] + ': ' + e['reason'])}", highlight=False, soft_wrap=True)
    if s.failed:
        console.print(escape(f"every failure: {s.errors_file}"), highlight=False, soft_wrap=True)
        raise typer.Exit(1)


@app.command("eval")
def eval_cmd(
    pairs: Optional[Path] = typer.Option(None, "--pairs", help="Folder with degraded/ and clean/ images matched by name."),
    clean: Optional[Path] = typer.Option(None, "--clean", help="Folder of clean photos to degrade with --degrade."),
    degrade: Optional[str] = typer.Option(None, "--degrade", help="PLUGIN[:SEVERITY] for --clean, e.g. noise:0.5."),
    seed: int = typer.Option(0, help="With --clean: image i is degraded with seed + i."),
    csv_path: Optional[Path] = typer.Option(None, "--csv", help="Write per-image PSNR/SSIM (or NIQE) here."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    tile: int = typer.Option(512, help="Tile side in pixels."),
    overlap: int = typer.Option(128, help="Tile overlap in pixels."),
    weights: Optional[Path] = typer.Option(None, help="Base weights file (default: the bundled model)."),
    no_reference: Optional[Path] = typer.Option(
        None, "--no-reference", help="Folder of real photos without a clean reference: NIQE of input and restored.",
    ),
    no_adapters: bool = _flag("--no-adapters", help="Evaluate the base model alone (no adapters, no estimator)."),
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
    from rich.table import Table

    from air_restore.cli.evaluate import (
        evaluate, evaluate_no_reference, paired_samples, parse_degrade, synthetic_samples,
    )
    from air_restore.core.io.images import ImageReadError, iter_image_paths
    from air_restore.core.restore import resolve_device
    from air_restore.registry.discovery import PluginLoadError, get_degradation
    from air_restore.registry.pipeline import load_restorer
    from air_restore.registry.store import ModelFileError

    if sum(x is not None for x in (pairs, clean, no_reference)) != 1:
        _fail("give exactly one of --pairs DIR, --clean DIR (with --degrade PLUGIN[:SEVERITY]) or --no-reference DIR")
    if clean is not None and degrade is None:
        _fail("--clean needs --degrade PLUGIN[:SEVERITY], e.g. --degrade noise:0.5")
    folder = pairs or clean or no_reference
    if not folder.is_dir():
        _fail(f"{folder}: no such folder")
    try:
        dev = resolve_device(device)
        restorer = load_restorer(weights, device=dev, use_adapters=not no_adapters)
        info = restorer.info
        for w in restorer.warnings:
            console.print(f"[yellow]warning[/yellow]: {escape(w)}", highlight=False, soft_wrap=True)
        what = f"base {info.fingerprint}" + (f" + {', '.join(restorer.adapters)}" if restorer.adapters else "")
        if no_reference is not None:
            paths = iter_image_paths([no_reference])
            if not paths:
                _fail(f"{no_reference}: no images")
            total = len(paths)
        elif pairs is not None:
            samples = paired_samples(pairs)
            total = len(iter_image_paths([pairs / "degraded"])) if (pairs / "degraded").is_dir() else None
            title = f"{pairs.name} (paired)"
        else:
            name, severity = parse_degrade(degrade)
            synth = get_degradation(name).synthesize
            if synth is None:
                _fail(f"plugin {name!r} has no synthesizer; use --pairs with real pairs instead")
            samples = synthetic_samples(clean, synth, severity, seed)
            total = len(iter_image_paths([clean]))
            title = f"{clean.name} + {name} (severity {severity}, seed {seed})"
        with Progress(TextColumn("evaluating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console) as bar:
            task = bar.add_task("eval", total=total)
            restore_fn = lambda x: restorer.restore(x, tile=tile, overlap=overlap).image  # noqa: E731
            if no_reference is not None:
                result = evaluate_no_reference(
                    paths, restore_fn, csv_path=csv_path, on_image=lambda row: bar.advance(task),
                    on_skip=lambda p, why: (bar.console.print(escape(f"skipped {p.name}: {why}"), highlight=False),
                                            bar.advance(task)),
                )
            else:
                result = evaluate(samples, restore_fn, csv_path=csv_path, on_image=lambda row: bar.advance(task))
    except (ValueError, KeyError, ImageReadError, ModelFileError, PluginLoadError) as e:
        _fail(str(e).strip("'\""))
    if no_reference is not None:
        if not result["images"]:
            _fail(f"{no_reference}: no image large enough for NIQE")
        table = Table(title=escape(f"{no_reference.name}: NIQE (lower is more natural), {result['images']} images, "
                                   f"{what}"), show_edge=False)
        for col in ("", "median", "mean"):
            table.add_column(col, justify="right" if col else "left")
        for key, label in (("input_niqe", "input"), ("restored_niqe", "restored")):
            table.add_row(label, f"{result[key + '_median']:.2f}", f"{result[key]:.2f}")
        table.add_row("restored lower", f"{result['restored_better']} of {result['images']}", "")
        stdout.print(table)
        if csv_path:
            stdout.print(escape(f"per-image results → {csv_path}"), highlight=False, soft_wrap=True)
        return
    table = Table(title=escape(f"{title}: {result['images']} images, {what}"), show_edge=False)
    for col in ("", "PSNR (dB)", "SSIM"):
        table.add_column(col, justify="right" if col else "left")
    table.add_row("input", f"{result['input_psnr']:.2f}", f"{result['input_ssim']:.4f}")
    table.add_row("restored", f"{result['restored_psnr']:.2f}", f"{result['restored_ssim']:.4f}")
    table.add_row("gain", f"{result['restored_psnr'] - result['input_psnr']:+.2f}",
                  f"{result['restored_ssim'] - result['input_ssim']:+.4f}")
    stdout.print(table)
    if csv_path:
        stdout.print(escape(f"per-image results → {csv_path}"), highlight=False, soft_wrap=True)


@app.command("list")
def list_cmd() -> None:
    """List the adapters `air restore` blends and the plugins (built-in and installed), with their status."""
    from rich.table import Table

    from air_restore.registry.discovery import discover
    from air_restore.registry.local import air_home, all_adapters
    from air_restore.registry.pipeline import pick_estimator
    from air_restore.registry.store import ModelFileError, read_base_info, bundled_base_path

    try:
        fingerprint = read_base_info(bundled_base_path()).fingerprint
    except ModelFileError as e:
        fingerprint = None
        console.print(f"[red]error[/red]: {escape(str(e))}", highlight=False, soft_wrap=True)
    items = all_adapters(fingerprint)
    table = Table(title="adapters", show_edge=False)
    for col in ("name", "origin", "rank", "held-out PSNR base → adapter", "status"):
        table.add_column(col)
    for a in items:
        status = "active" if a.error is None else f"[red]inactive[/red]: {escape(a.error)}"
        table.add_row(escape(a.name), a.origin, str(a.manifest.get("rank", "?")), a.heldout_gain, status)
    out = Console()
    out.print(table)
    active = [a.name for a in items if a.error is None]
    _, est_path, warnings = pick_estimator(active)
    out.print(escape(f"estimator: {est_path or 'none'}"), highlight=False, soft_wrap=True)
    for w in warnings:
        out.print(f"[yellow]warning[/yellow]: {escape(w)}", highlight=False, soft_wrap=True)
    out.print(escape(f"local store: {air_home()} (set AIR_HOME to move it)"), highlight=False, soft_wrap=True)
    table = Table(title="plugins", show_edge=False)
    for col in ("name", "kind", "source", "version", "status"):
        table.add_column(col)
    for r in discover():
        if r.plugin:
            m = r.plugin.manifest
            table.add_row(escape(m.name), m.kind, escape(r.display), escape(m.version), "ok")
        else:
            table.add_row(escape(r.entry_point.name), "?", escape(r.display), "?", f"[red]broken[/red]: {escape(r.error)}")
    out.print(table)


def _base_fingerprint(weights: Optional[Path]) -> str:
    from air_restore.registry.store import ModelFileError, bundled_base_path, read_base_info

    try:
        return read_base_info(weights or bundled_base_path()).fingerprint
    except ModelFileError as e:
        _fail(str(e))


@app.command("doctor")
def doctor_cmd() -> None:
    """Check everything `air restore` would load: the base, every adapter (readable, made for this base,
    unchanged since install, finite values), the estimators, the --tta refiner, the plugins and the
    store's leftovers. Each problem comes with its fix; exit code 1 if there is any.
    """
    from rich.table import Table

    from air_restore.registry.doctor import check_everything

    findings = check_everything()
    table = Table(show_edge=False)
    for col in ("checked", "", "found"):
        table.add_column(col)
    for f in findings:
        table.add_row(escape(f.what), "[green]ok[/green]" if f.ok else "[red]problem[/red]", escape(f.detail))
    stdout.print(table)
    problems = sum(not f.ok for f in findings)
    stdout.print("all good" if not problems else f"{problems} problem(s)", highlight=False)
    if problems:
        raise typer.Exit(1)


@app.command("push")
def push_cmd(
    name: str = typer.Argument(..., help="An installed adapter (see `air list`)."),
    repo: str = typer.Option(..., "--repo", help="Hub repo ORG/NAME; created if it does not exist."),
    private: bool = _flag("--private", help="Create the repo as private (an existing repo keeps its visibility)."),
    revision: Optional[str] = typer.Option(None, "--revision", help="Branch to push to (created from main if new). Default: main."),
    sample: Optional[Path] = typer.Option(
        None, "--sample", help="Clean photo for the card's before/after images (default: scikit-image's astronaut).",
    ),
    weights: Optional[Path] = typer.Option(None, help="Base weights (default: the bundled model)."),
) -> None:
    """Publish an installed adapter on the Hugging Face Hub, with a model card and before/after samples.

    Uses the token from `hf auth login` or HF_TOKEN. Prints the commit sha to pin with `air pull`.

      air push snow --repo alice/air-snow
    """
    from air_restore.registry import hub

    try:
        hub.push_repo_id(repo)
        hub.check_pushable(name)
        token = hub.write_token()
    except (ValueError, hub.HubError) as e:
        _fail(str(e))
    from air_restore.core.lora import attach
    from air_restore.registry.adapters import AdapterFileError, load_for_base
    from air_restore.registry.local import find_adapter
    from air_restore.registry.store import ModelFileError, load_base

    fingerprint = _base_fingerprint(weights)
    try:
        a = find_adapter(name, fingerprint)
    except KeyError as e:
        _fail(str(e).strip("'\""))
    if a.error:
        _fail(f"adapter {name!r} cannot be pushed: {a.error}")
    samples, note, clean = None, None, None
    try:
        hub.configure_http()
        hub.ensure_repo(repo, private=private, branch=revision, token=token)  # token, rights, network: before work
        if sample is not None:
            from air_restore.core.io.images import ImageReadError, read_image

            try:
                clean = hub.square_crop(read_image(sample).rgb)
            except (ImageReadError, OSError) as e:
                _fail(str(e))
            photo = sample.name
        else:
            clean, photo = hub.sample_photo(), "scikit-image's astronaut"
        if clean is None:
            console.print("note: no before/after samples (install scikit-image, or give --sample PHOTO)", highlight=False)
        else:
            model, _ = load_base(weights)
            manifest, factors = load_for_base(a.path, fingerprint)
            attach(model, manifest["name"], factors)
            found = hub.synthesizer_for(manifest)
            samples = hub.before_after(model, manifest["name"], clean, found[1] if found else None)
            side = clean.shape[-1]
            how = (f"degraded by the `{found[0]}` plugin at severity {hub.SAMPLE_SEVERITY} (seed 0)" if found
                   else "as is (no plugin synthesizes this degradation)")
            note = (f"{side}×{side} centre crop of {photo}, {how}; restored by the base alone and by the base "
                    f"with `{name}` at weight 1. Made by `air push`.")
        result = hub.push_adapter(a.path, repo, private=private, branch=revision, samples=samples, samples_note=note,
                                  token=token)
    except (hub.HubError, AdapterFileError, ModelFileError, ValueError) as e:
        _fail(str(e))
    stdout.print(escape(f"pushed {name} to {result.repo_id}@{result.branch}: commit {result.commit}"),
                  highlight=False, soft_wrap=True)
    stdout.print(escape(f"pull this exact version with:  air pull {result.repo_id}@{result.commit}"),
                  highlight=False, soft_wrap=True)


@app.command("pull")
def pull_cmd(
    spec: str = typer.Argument(..., metavar="ORG/NAME[@REVISION]", help="Hub repo, optionally @branch, tag or commit sha."),
    overwrite: bool = _flag("--overwrite", help="Replace an installed adapter of the same name from elsewhere."),
    weights: Optional[Path] = typer.Option(None, help="Base weights the adapter must fit (default: the bundled model)."),
) -> None:
    """Download an adapter from the Hugging Face Hub, verify it and install it in the local store.

    The revision is pinned to its commit sha; files are checked against the hashes recorded by
    `air push`; adapters for another base and repos with pickle files are refused.

      air pull alice/air-snow            air pull alice/air-snow@<commit sha>
    """
    from air_restore.registry import hub

    try:
        hub.configure_http()
        r = hub.pull_adapter(spec, weights=weights, overwrite=overwrite)
    except (hub.HubError, ValueError) as e:
        _fail(str(e))
    at = f"{r.repo_id}@{r.commit[:12]}"
    if r.status == "already installed":
        offline = " (HF_HUB_OFFLINE=1: from the local store, not checked against the Hub)" if r.offline else ""
        stdout.print(escape(f"{r.name} is already installed from {at} at {r.path}{offline}"),
                      highlight=False, soft_wrap=True)
        return
    what = {"installed": "installed", "updated": f"updated (was {str(r.previous)[:12]})",
            "replaced": f"replaced the one {r.previous}"}[r.status]
    stdout.print(escape(f"{r.name} from {at}: {what} → {r.path}"), highlight=False, soft_wrap=True)
    stdout.print(escape(f"use it:  air restore photo.jpg --adapters {r.name}=1\n"
                         "blend it automatically:  air train estimator --install"), highlight=False, soft_wrap=True)


@app.command("search")
def search_cmd(query: Optional[str] = typer.Argument(None, help="Words to look for in repo names.")) -> None:
    """List adapters published on the Hugging Face Hub (repos tagged air-restore)."""
    from rich.table import Table

    from air_restore.registry import hub

    try:
        hub.configure_http()
        found = hub.search_adapters(query)
    except hub.HubError as e:
        _fail(str(e))
    table = Table(show_edge=False)
    for col in ("repo", "last change"):
        table.add_column(col)
    for m in found:
        table.add_row(escape(m["repo"]), f"{m['modified']:%Y-%m-%d}" if m["modified"] else "")
    stdout.print(table)
    stdout.print(f"{len(found)} found; install one with: air pull ORG/NAME", highlight=False)


#: Adapter weights a user may set: 0 (off) to a little over 1 (full strength); beyond, outputs saturate.
MAX_ADAPTER_WEIGHT = 1.5


def _weight(text: str, option: str, spec: str, name: str) -> float:
    """One adapter weight from the command line: a finite number in [0, MAX_ADAPTER_WEIGHT]."""
    try:
        w = float(text) if text else 1.0
    except ValueError:
        raise ValueError(f"{option} {spec!r}: the weight after '=' must be a number, e.g. {name}=0.5") from None
    if not 0 <= w <= MAX_ADAPTER_WEIGHT:  # also refuses nan and inf
        raise ValueError(f"{option} {spec!r}: weight {text} is out of range; use 0 (off) to "
                         f"{MAX_ADAPTER_WEIGHT:g} (1 = full strength)")
    return w


def _parse_weights(spec: str) -> dict[str, float]:
    """``noise=1,rain=0.5`` → {"noise": 1.0, "rain": 0.5}; a bare name means weight 1."""
    out = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, w = part.partition("=")
        out[name.strip()] = _weight(w.strip(), "--adapters", spec, name.strip())
    return out


def _parse_folder_spec(spec: str) -> tuple[str, float]:
    path, _, w = spec.partition("=")
    return path, _weight(w.strip(), "--adapter", spec, path)


def _check_tiles(tile: int, overlap: int) -> None:
    for name, v in (("--tile", tile), ("--overlap", overlap)):
        if v % 8:
            _fail(f"{name} must be a multiple of 8, got {v}")
    if tile <= overlap:
        _fail(f"--tile ({tile}) must be larger than --overlap ({overlap})")


def _open_pipeline(weights, device: str, no_adapters: bool, tta: bool, spec: str | None, folders: list[str]):
    """The pipeline `air restore` and `air batch` run, with --adapter folders attached, and the --adapters
    weights parsed and their names checked before any image is read; problems are one line (exit 2),
    warnings printed. Returns (pipeline, weights given or None)."""
    from air_restore.registry.adapters import AdapterFileError
    from air_restore.registry.pipeline import PipelineError, load_pipeline
    from air_restore.registry.store import ModelFileError

    try:
        fixed = _parse_weights(spec) if spec is not None else None
        pipe = load_pipeline(weights, device=device, use_adapters=not no_adapters, tta=tta)
        for folder, w in map(_parse_folder_spec, folders):
            pipe.attach(Path(folder), w)
        if fixed is not None:
            pipe.restorer.weights_from(fixed)  # unknown names are refused here
    except (ModelFileError, AdapterFileError, PipelineError, KeyError, ValueError) as e:
        _fail(str(e).strip("'\""))
    for w in pipe.warnings:
        console.print(f"[yellow]warning[/yellow]: {escape(w)}", highlight=False, soft_wrap=True)
    return pipe, fixed


def _print_explain(out: Console, name: str, result) -> None:
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
        how = "given by --adapters" if result.weights_source == "given" else "chosen by the estimator"
        out.print(escape(f"{name}: adapter weights ({how})"), highlight=False, soft_wrap=True)
        wt = Table(show_edge=False)
        wt.add_column("adapter")
        wt.add_column("weight", justify="right")
        for adapter, w in result.weights.items():
            wt.add_row(escape(adapter), f"{w:.2f}")
        out.print(wt)


def _fail(message: str) -> None:
    console.print(f"[red]error[/red]: {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@app.command("add-degradation")
def add_degradation_cmd(
    name: str = typer.Argument(..., help="Name of the new degradation, e.g. snow (lowercase letters, digits, _)."),
    data: Path = typer.Option(..., "--data", help="Paired folder (degraded/ + clean/, same file names), or with "
                              "--synthetic a folder of clean photos."),
    synthetic: Optional[str] = typer.Option(None, "--synthetic", help="Degrade --data's clean photos with this "
                                            "plugin's synthesizer (see `air list`)."),
    steps: int = typer.Option(400, help="Adapter training steps."),
    rank: int = typer.Option(4, help="LoRA rank."),
    batch_size: int = typer.Option(8, help="Crops per adapter step."),
    crop: int = typer.Option(96, help="Crop side in pixels."),
    holdout: float = typer.Option(0.1, help="Share of the images held out for the before/after table."),
    estimator_steps: int = typer.Option(800, help="Estimator retraining steps (warm-started from the current one)."),
    eval_images: int = typer.Option(8, help="Held-out images per task in the before/after table."),
    seed: int = typer.Option(0),
    overwrite: bool = _flag("--overwrite", help="Replace an installed adapter of the same name."),
    report: Optional[Path] = typer.Option(None, "--report", help="Also write the before/after table as JSON here."),
) -> None:
    """Teach air-restore a new degradation: train its adapter, retrain the estimator, install both.

    Examples:

      air add-degradation snow --synthetic snow --data ../shared/data/train/clean

      air add-degradation underwater --data ../shared/data/pairs/underwater_EUVP

    A share of the images is held out; the table at the end compares the held-out PSNR of the whole
    pipeline before and after, on the new task and on every old one. Nothing is installed until
    everything succeeded (Ctrl-C leaves your adapters as they were). Then `air restore` uses it.
    """
    import time

    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table

    from air_restore.cli import add_degradation as AD
    from air_restore.core.io.images import ImageReadError, iter_image_paths, read_image
    from air_restore.cli.train_adapter import (
        TrainAdapterConfig, build_manifest, heldout_psnr, paired_sampler, save_adapter, synthetic_sampler,
        train_adapter,
    )
    from air_restore.cli.train_estimator import Source, save_views, train_estimator
    from air_restore.registry.discovery import PluginLoadError, get_degradation
    from air_restore.registry.local import BUNDLED_ORDER, active_adapters, adapters_dir
    from air_restore.plugins.api import NAME_RE
    from air_restore.registry.pipeline import load_restorer
    from air_restore.registry.store import ModelFileError, save_estimator

    if not NAME_RE.match(name):
        _fail(f"name {name!r} must be lowercase letters, digits or '_', starting with a letter")
    if name in BUNDLED_ORDER:
        _fail(f"{name!r} is a bundled adapter; give the new degradation another name")
    if (adapters_dir() / name).exists() and not overwrite:
        _fail(f"adapter {name!r} is already installed ({adapters_dir() / name}); pass --overwrite to retrain it")
    if not 0 < holdout < 1:
        _fail(f"--holdout must lie between 0 and 1, got {holdout}")
    started = time.time()
    cfg = TrainAdapterConfig(rank=rank, alpha=float(rank), steps=steps, batch_size=batch_size, crop=crop, seed=seed)
    try:
        before = load_restorer()
        info = before.info
        if synthetic is not None:
            synth = get_degradation(synthetic).synthesize
            if synth is None:
                _fail(f"plugin {synthetic!r} has no synthesizer; give real pairs with --data instead")
            paths = iter_image_paths([data])
            if not paths:
                _fail(f"{data}: no images")
            clean = [read_image(p).rgb for p in paths]
            tr, ho = AD.split(len(clean), holdout, seed)
            train_clean, held_clean = [clean[i] for i in tr], [clean[i] for i in ho]
            sampler = synthetic_sampler(train_clean, synth)
            new_task = AD.synthetic_task(name, synth, held_clean[:eval_images], seed=10_000 + seed)
            new_source = Source(synth=synth)
            source = {"kind": "synthetic", "plugin": synthetic, "folder": data.name, "images": len(clean)}
        else:
            pairs = AD.load_pairs(data)
            tr, ho = AD.split(len(pairs), holdout, seed)
            train_pairs, held_pairs = [pairs[i] for i in tr], [pairs[i] for i in ho]
            train_clean, held_clean = [c for _, _, c in train_pairs], [c for _, _, c in held_pairs]
            sampler = paired_sampler([d for _, d, _ in train_pairs], train_clean)
            new_task = AD.Task(name, [(d, c) for _, d, c in held_pairs[:eval_images]], note="real pairs")
            new_source = Source(degraded=[d for _, d, _ in train_pairs])
            source = {"kind": "pairs", "folder": data.name, "images": len(pairs)}
    except (ValueError, KeyError, FileNotFoundError, ImageReadError, ModelFileError, PluginLoadError) as e:
        _fail(str(e).strip("'\""))
    small = sum(min(c.shape[1:]) < crop for c in train_clean)
    if small:
        _fail(f"{small} training image(s) are smaller than --crop {crop}; lower --crop")
    old = [a for a in active_adapters(info.fingerprint) if a.name != name]
    sources, missing = AD.estimator_sources(old)
    sources[name] = new_source
    if missing:
        _fail(f"no training examples for adapter(s) {missing} (no plugin synthesizer, no stored views); "
              "remove them with `air remove` or reinstall them")
    names = [a.name for a in old if a.origin == "bundled"] + sorted([a.name for a in old if a.origin != "bundled"] + [name])
    old_tasks = [AD.synthetic_task(a.name, sources[a.name].synth, held_clean[:eval_images], seed=20_000 + seed)
                 for a in old if sources[a.name].synth is not None]
    try:
        with AD.Staging(name) as stage, Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            console=console,
        ) as bar:
            t1 = bar.add_task(f"1/3 adapter {name}", total=cfg.steps)
            after = load_restorer(use_adapters=False)  # the pipeline after; for now the bare base
            bare = after.model
            model = train_adapter(bare, sampler, config=cfg,
                                  progress=lambda s, t, loss: bar.update(t1, completed=s))
            held = new_task.pairs
            metrics = {"heldout_images": len(held), "heldout_psnr_input": heldout_psnr(lambda x: x, held),
                       "heldout_psnr_base": heldout_psnr(lambda x: bare(x).image, held),
                       "heldout_psnr_adapter": heldout_psnr(lambda x: model(x).image, held)}
            manifest = build_manifest(name, info.fingerprint, cfg, bare.config.lora_targets,
                                      data={**source, "train_images": len(tr), "heldout_images": len(ho),
                                            "heldout_seed": seed},
                                      metrics=metrics, wall_s=time.time() - started)
            save_adapter(model, stage.adapter, manifest)
            if new_source.degraded is not None:
                save_views(stage.adapter, new_source.degraded, torch.Generator().manual_seed(seed))
            # The pipeline after: every old adapter and the new one, in the estimator's order; it judges
            # the estimator's targets by restoration (`air train estimator --targets restored`).
            folders = {**{a.name: a.path for a in old}, name: stage.adapter}
            for n in names:
                after.attach_folder(folders[n])
            pool = max(10, estimator_steps // 4)
            t2v = bar.add_task("2/3 estimator: synthesizing and judging views", total=pool)
            t2 = bar.add_task("2/3 estimator: training", total=estimator_steps)
            est, est_info = train_estimator(
                names, [sources[n] for n in names], train_clean, init=before.estimator, steps=estimator_steps,
                batches=pool, seed=seed, p_clean=0.15, judge=after.best_subsets,
                progress=lambda s, t: bar.update(t2, completed=s),
                pool_progress=lambda d, t: bar.update(t2v, completed=d))
            after.estimator = est
            tasks = [new_task] + old_tasks
            t3 = bar.add_task("3/3 before/after", total=len(tasks))
            rows = []
            for task in tasks:
                b, a = AD.pipeline_psnr(before, task), AD.pipeline_psnr(after, task)
                rows.append((task, heldout_psnr(lambda x: x, task.pairs), b, a))
                bar.advance(t3)
            top1 = sum(int(est.weights(d[None]).argmax()) == names.index(t.name) for t in tasks for d, _ in t.pairs)
            n_eval = sum(len(t.pairs) for t in tasks)
            save_estimator(est, stage.estimator, training={**est_info, "data": {"folder": data.name}},
                           metrics={"heldout_top1": top1 / n_eval, "heldout_images": n_eval})
            dest = stage.commit(name, overwrite)
    except KeyboardInterrupt:
        console.print("interrupted: nothing was installed; your adapters are as they were")
        raise typer.Exit(130)
    except (FileExistsError, OSError) as e:
        _fail(str(e))
    table = Table(title=escape(f"held-out PSNR (dB) of the whole pipeline, before and after adding {name}"),
                  show_edge=False)
    for col in ("task", "images", "input", "before", "after", "change"):
        table.add_column(col, justify="left" if col == "task" else "right")
    for task, inp, b, a in rows:
        label = f"{task.name} (new)" if task.name == name else task.name
        table.add_row(escape(label), str(len(task.pairs)), f"{inp:.2f}", f"{b:.2f}", f"{a:.2f}", f"{a - b:+.2f}")
    stdout.print(table)
    stdout.print(escape(f"estimator top-1 on these held-out images: {top1}/{n_eval}"), highlight=False)
    if report is not None:
        import json

        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps({
            "name": name, "source": source, "adapter": manifest, "estimator": est_info,
            "estimator_heldout_top1": top1 / n_eval, "wall_s": round(time.time() - started, 1),
            "threads": torch.get_num_threads(),
            "tasks": [{"task": t.name, "new": t.name == name, "images": len(t.pairs), "note": t.note, "input": inp,
                       "before": b, "after": a} for t, inp, b, a in rows],
        }, indent=1))
    stdout.print(escape(f"installed {name} → {dest} ({time.time() - started:.0f} s). `air restore photo.jpg` "
                         f"now uses it; `air remove {name}` undoes it."), highlight=False, soft_wrap=True)


@app.command("remove")
def remove_cmd(name: str = typer.Argument(..., help="Name of an adapter in the local store (see `air list`).")) -> None:
    """Remove an adapter from the local store (bundled adapters cannot be removed).

    The estimator then no longer matches the adapter set: `air restore` warns and gives the adapters it
    does not know weight 0 until you run `air train estimator --install`.
    """
    from air_restore.registry.local import remove_adapter

    try:
        path = remove_adapter(name)
    except (KeyError, ValueError, PermissionError, OSError) as e:
        _fail(str(e).strip("'\""))
    stdout.print(escape(f"removed {name} ({path})"), highlight=False, soft_wrap=True)
    from air_restore.registry.local import active_adapters
    from air_restore.registry.pipeline import pick_estimator
    from air_restore.registry.store import bundled_base_path, read_base_info

    _, _, warnings = pick_estimator([a.name for a in active_adapters(read_base_info(bundled_base_path()).fingerprint)])
    for w in warnings:
        console.print(f"[yellow]warning[/yellow]: {escape(w)}", highlight=False, soft_wrap=True)


plugins_app = typer.Typer(help="Check degradation and refiner plugins.", no_args_is_help=True)
app.add_typer(plugins_app, name="plugins")


@plugins_app.command("validate")
def plugins_validate_cmd(name: str = typer.Argument(..., help="Plugin name (see `air list`).")) -> None:
    """Load one plugin and check it: entry point, manifest, synthesizer output, base fingerprint.

    Exit code 0 if it is usable, 1 with the reasons if not.
    """
    import torch

    from air_restore.registry.discovery import discover
    from air_restore.registry.store import ModelFileError, bundled_base_path, read_base_info

    records = [r for r in discover() if r.entry_point.name == name]
    if not records:
        _fail(f"no plugin named {name!r}; installed: {', '.join(r.entry_point.name for r in discover()) or 'none'}")
    problems = []
    for r in records:
        if r.plugin is None:
            problems.append(f"{r.display}: {r.error}")
            continue
        m = r.plugin.manifest
        typer.echo(f"{r.display}: {m.kind} plugin {m.name} {m.version} — {m.description}")
        try:
            base_fp = read_base_info(bundled_base_path()).fingerprint
        except ModelFileError:
            base_fp = None
        if m.base_fingerprint and base_fp and m.base_fingerprint != base_fp:
            problems.append(f"{r.display}: made for base {m.base_fingerprint}, the installed base is {base_fp}")
        synth = getattr(r.plugin, "synthesize", None)
        if synth is not None:
            x = torch.rand(2, 3, 64, 48, generator=torch.Generator().manual_seed(0))
            try:
                outs = [synth(x, torch.Generator().manual_seed(1), s) for s in (0.0, 1.0)]
                again = synth(x, torch.Generator().manual_seed(1), 1.0)
            except Exception as e:  # third-party code
                problems.append(f"{r.display}: synthesizer failed: {type(e).__name__}: {e}")
                continue
            for s, y in zip((0.0, 1.0), outs):
                if not isinstance(y, torch.Tensor) or y.shape != x.shape:
                    problems.append(f"{r.display}: synthesizer returned {getattr(y, 'shape', type(y))} for input "
                                    f"{tuple(x.shape)} at severity {s}")
                elif not bool(torch.isfinite(y).all()) or float(y.min()) < 0 or float(y.max()) > 1:
                    problems.append(f"{r.display}: synthesizer output at severity {s} is not finite in [0, 1]")
            if not problems and not torch.equal(outs[1], again):
                problems.append(f"{r.display}: synthesizer is not reproducible from the generator (uses global RNG?)")
            if not problems:
                typer.echo(f"  synthesizer: ok (shape, range [0, 1], reproducible from its generator; "
                           f"change at severity 1: {float((outs[1] - x).abs().mean()):.3f})")
    if len(records) > 1:
        problems.append(f"name conflict: {len(records)} plugins are named {name!r}: "
                        + ", ".join(r.display for r in records))
    for p in problems:
        console.print(f"[red]problem[/red]: {escape(p)}", highlight=False, soft_wrap=True)
    if problems:
        raise typer.Exit(1)
    typer.echo("ok")


@train_app.command("base")
def train_base_cmd(
    data: Path = typer.Option(..., "--data", help="Folder of clean photos (any size ≥ the crop)."),
    out: Path = typer.Option(Path("runs/base"), "--out", help="Run folder: checkpoints, log.jsonl, base.safetensors."),
    steps: int = typer.Option(20000, help="Optimizer steps (an upper bound with --time-budget)."),
    batch_size: int = typer.Option(64, help="Crops per step."),
    crop: int = typer.Option(128, help="Crop side in pixels."),
    lr: float = typer.Option(1e-3, help="Peak learning rate."),
    time_budget: Optional[float] = typer.Option(None, help="Seconds: fit the step count to the measured speed."),
    compile: bool = _flag("--compile", help="torch.compile the model (GPU)."),
    mixed_precision: str = typer.Option("no", help="no, bf16 or fp16 (GPU)."),
    val_every: int = typer.Option(1000, help="Validate every N steps."),
    seed: int = typer.Option(0, help="Seed of all randomness."),
    resume: bool = typer.Option(True, help="Resume from the run folder's checkpoint if there is one.", metavar=""),
    init: Optional[Path] = typer.Option(None, help="Start from these base weights (fine-tuning) instead of random."),
    warmup: int = typer.Option(200, help="Learning-rate warm-up steps."),
    recipe: Optional[str] = typer.Option(
        None, help="v1 (default): the built-in synthesizers; widened / widened2 / widened3: degradation families "
        "and camera-pipeline stacks (base v2; widened2 also keeps dim photos dim, widened3 also brightens only "
        "clearly dark ones). With --chunked, the run's "
        "recorded recipe unless given."),
    chunked: bool = _flag(
        "--chunked", help="Resumable chunks: train for --time-budget seconds, then write --out/base.safetensors "
        "(EMA, fp16) and --out/training-state.json; the same command again goes on from there. --steps is the "
        "whole run's schedule."),
) -> None:
    """Phase I: train the base restorer with Degradation CutMix on clean photos.

    Each crop is split into regions, each degraded by a different built-in plugin at a random
    severity; the loss is L1(restored, clean) + λ·CE(segmentation, labels). Runs through accelerate,
    so `accelerate launch -m air_restore.cli.main train base ...` uses several GPUs.

    With --chunked, a long run is made of short GPU spans: CONTRIBUTING.md has the recipe of base v2.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from air_restore.cli.train import TrainBaseConfig, train_base
    from air_restore.registry.discovery import get_degradation

    if not data.is_dir():
        _fail(f"{data}: no such folder (give a folder of clean photos)")
    from air_restore.core.families import CUTMIX, RECIPES

    if recipe not in (None, "v1", *RECIPES):
        _fail(f"unknown recipe {recipe!r}; use v1, {', '.join(RECIPES)}")
    if recipe in RECIPES and not chunked:
        _fail(f"--recipe {recipe} is for chunked runs; add --chunked --time-budget SECONDS")
    if chunked and not time_budget:
        _fail("--chunked needs --time-budget (seconds for this chunk)")
    cfg = TrainBaseConfig(
        steps=steps, batch_size=batch_size, crop=crop, lr=lr, time_budget=time_budget, compile=compile,
        mixed_precision=mixed_precision, val_every=val_every, seed=seed, warmup=warmup,
        checkpoint_every=max(val_every, 500), recipe=recipe or "v1",
        **(CUTMIX if recipe in RECIPES else {}),
    )
    if chunked:
        from air_restore.cli.train import train_base_chunk

        try:
            state = train_base_chunk(data, out, config=cfg, time_budget=time_budget, init=init,
                                     change_recipe=recipe is not None, log=console.print)
        except ValueError as e:
            _fail(str(e))
        typer.echo(f"{out}: step {state['step']} of {state['config']['steps']} after chunk {state['chunks']}, "
                   f"held-out {state['metrics'].get('val_psnr', float('nan')):.2f} dB")
        return
    synths = [get_degradation(name).synthesize for name in cfg.model.classes[1:]]
    noise = get_degradation("noise").synthesize
    with Progress(
        TextColumn("training"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        TextColumn("{task.fields[loss]}"), console=console,
    ) as bar:
        task = bar.add_task("train", total=cfg.steps, loss="")

        def progress(step: int, total: int, info: dict) -> None:
            fields = {"loss": f"loss {info['loss']:.4f}"} if "loss" in info else {}
            bar.update(task, completed=step, total=total, **fields)

        path = train_base(data, out, synths, config=cfg, stack_with=noise, resume=resume, init=init,
                          progress=progress, log=bar.console.print)
    typer.echo(str(path))


@train_app.command("adapter")
def train_adapter_cmd(
    name: str = typer.Argument(..., help="Degradation name, e.g. snow (lowercase)."),
    pairs: Optional[Path] = typer.Option(None, "--pairs", help="Folder with degraded/ and clean/ images matched by name."),
    synthetic: Optional[str] = typer.Option(None, "--synthetic", help="Plugin whose synthesizer degrades --clean photos."),
    clean: Optional[Path] = typer.Option(None, "--clean", help="Clean photos for --synthetic."),
    out: Path = typer.Option(..., "--out", help="Adapter folder to write (PEFT layout + manifest)."),
    over: Optional[str] = typer.Option(
        None, "--over", help="With --synthetic: comma-separated plugins this degradation often comes on top of "
        "(e.g. haze,rain for noise). A share of the crops gets one of them first, with the base's output on that "
        "crop as the target, so the adapter removes only its own degradation and blends better on stacked "
        "degradations. Measured for noise over haze,rain (BENCHMARKS.md): haze+noise +5.3 dB, rain+noise "
        "+1.2 dB, but noise alone -1.0 dB against the bundled adapter."),
    over_share: float = typer.Option(0.3, "--over-share", min=0.0, max=1.0,
                                     help="Share of the crops that get an --over degradation first."),
    steps: int = typer.Option(500, help="Optimizer steps."),
    rank: int = typer.Option(4, help="LoRA rank."),
    batch_size: int = typer.Option(8, help="Crops per step."),
    crop: int = typer.Option(96, help="Crop side in pixels."),
    lr: float = typer.Option(5e-4, help="Learning rate (cosine decay)."),
    holdout: float = typer.Option(0.1, help="Share of the images held out for the before/after metrics."),
    weights: Optional[Path] = typer.Option(None, help="Base weights (default: the bundled model)."),
    seed: int = typer.Option(0),
    overwrite: bool = _flag("--overwrite", help="Replace an existing adapter folder."),
) -> None:
    """Phase II: train one LoRA adapter on the frozen base, from real pairs or a plugin's synthesizer.

    Examples:

      air train adapter rain --pairs ../shared/data/pairs/rain_Rain100H --out adapters/rain

      air train adapter haze --synthetic haze --clean ../shared/data/train/clean --out adapters/haze

      air train adapter noise --synthetic noise --over haze,rain --clean DIR --out adapters/noise
    """
    import time

    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table

    from air_restore.cli.evaluate import paired_samples
    from air_restore.core.io.images import ImageReadError, iter_image_paths, read_image
    from air_restore.cli.train_adapter import (
        Over, TrainAdapterConfig, build_manifest, heldout_psnr, paired_sampler, save_adapter, synthetic_sampler,
        train_adapter,
    )
    from air_restore.registry.discovery import PluginLoadError, get_degradation
    from air_restore.plugins.api import NAME_RE
    from air_restore.registry.store import ModelFileError, load_base

    over_names = [n.strip() for n in over.split(",") if n.strip()] if over else []
    if over_names and synthetic is None:
        _fail("--over needs --synthetic: real pairs cannot be put on top of other degradations")
    if synthetic in over_names:
        _fail(f"--over {over}: list the other degradations, not {synthetic!r} itself")
    if not NAME_RE.match(name):
        _fail(f"adapter name {name!r} must be lowercase letters, digits or '_', starting with a letter")
    if (pairs is None) == (synthetic is None):
        _fail("give exactly one of --pairs DIR or --synthetic PLUGIN --clean DIR")
    if synthetic is not None and clean is None:
        _fail("--synthetic needs --clean DIR (clean photos to degrade)")
    if out.exists() and not overwrite:
        _fail(f"{out}: already exists (pass --overwrite to replace it)")
    cfg = TrainAdapterConfig(rank=rank, steps=steps, batch_size=batch_size, crop=crop, lr=lr, seed=seed,
                             alpha=float(rank))
    try:
        base, info = load_base(weights)
        if pairs is not None:
            data = [(s.degraded, s.clean) for s in paired_samples(pairs)]
            source = {"kind": "pairs", "folder": pairs.name}
        else:
            synth = get_degradation(synthetic).synthesize
            photos = iter_image_paths([clean])
            if not photos:
                _fail(f"{clean}: no images")
            cl = [read_image(p).rgb for p in photos]
            g = torch.Generator().manual_seed(seed + 1)
            data = [(synth(c[None], g, 0.5)[0].clamp(0, 1), c) for c in cl]
            source = {"kind": "synthetic", "plugin": synthetic, "folder": clean.name, "heldout_severity": 0.5}
            under = [get_degradation(n).synthesize for n in over_names]
            if over_names:
                source.update(over=over_names, over_share=over_share)
    except (ValueError, KeyError, FileNotFoundError, ImageReadError, ModelFileError, PluginLoadError) as e:
        _fail(str(e).strip("'\""))
    small = [i for i, (d, _) in enumerate(data) if min(d.shape[1:]) < crop]
    if small:
        _fail(f"{len(small)} image(s) are smaller than --crop {crop}; lower --crop")
    n_hold = max(1, round(holdout * len(data))) if len(data) > 1 else 0
    held, train = data[len(data) - n_hold:], data[: len(data) - n_hold]
    if not train:
        _fail("need at least 2 images (one to train on, one held out)")
    if pairs is not None:
        sampler = paired_sampler([d for d, _ in train], [c for _, c in train])
    else:
        sampler = synthetic_sampler([c for _, c in train], synth,
                                    over=Over(under, over_share, base) if over_names else None)
    started = time.time()
    with Progress(TextColumn(f"training {name}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  TextColumn("{task.fields[loss]}"), console=console) as bar:
        task = bar.add_task("adapter", total=cfg.steps, loss="")
        model = train_adapter(base, sampler, config=cfg,
                              progress=lambda s, t, loss: bar.update(task, completed=s, loss=f"L1 {loss:.4f}"))
    inputs = heldout_psnr(lambda x: x, held)
    before = heldout_psnr(lambda x: base(x).image, held)
    after = heldout_psnr(lambda x: model(x).image, held)
    metrics = {"heldout_images": len(held), "heldout_psnr_input": inputs, "heldout_psnr_base": before,
               "heldout_psnr_adapter": after}
    manifest = build_manifest(name, info.fingerprint, cfg, base.config.lora_targets,
                              data={**source, "train_images": len(train), "heldout_images": len(held)},
                              metrics=metrics, wall_s=time.time() - started)
    save_adapter(model, out, manifest, overwrite=overwrite)
    table = Table(title=f"{name}: held-out PSNR ({len(held)} images)", show_edge=False)
    for col in ("input", "base", "base + adapter", "gain over base"):
        table.add_column(col, justify="right")
    table.add_row(f"{inputs:.2f}", f"{before:.2f}", f"{after:.2f}", f"{after - before:+.2f}")
    stdout.print(table)
    stdout.print(escape(f"adapter → {out}  ({time.time() - started:.0f} s)"), highlight=False, soft_wrap=True)


@train_app.command("estimator")
def train_estimator_cmd(
    clean: Path = typer.Option(..., "--clean", help="Clean photos to degrade (e.g. ../shared/data/train/clean)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Estimator file to write (.safetensors)."),
    install: bool = _flag("--install", help="Train for the installed adapters (`air list`) and "
                                 "install it in the local store, where `air restore` finds it."),
    adapters: str = typer.Option("noise,blur,haze,rain,lowlight",
                                 help="Comma-separated adapter names, in order; each needs a plugin with a synthesizer "
                                 "(ignored with --install)."),
    steps: int = typer.Option(5000, help="Optimizer steps."),
    batches: int = typer.Option(600, help="Training pool size, in batches of 16 degraded crops."),
    seed: int = typer.Option(0),
    clean_share: float = typer.Option(
        0.15, "--clean-share", min=0.0, max=0.9,
        help="Share of training crops left clean, with every weight 0 (so a good photo is left alone)."),
    targets: str = typer.Option(
        "restored", "--targets",
        help="restored: each training crop's targets are the installed adapters that actually restore it best "
        "(the base alone included), so an adapter that would make a stacked or mild degradation worse is "
        "switched off; needs the adapters installed. present: every degradation present, on."),
    overwrite: bool = _flag("--overwrite", help="Replace an existing file."),
) -> None:
    """Phase III: train the tiny estimator that gives each image one weight per adapter.

    The file records the ordered adapter names; it is refused for any other adapter set. By default its
    targets are judged by restoration through the installed adapters (BENCHMARKS.md, "Adapters").

    Examples:

      air train estimator --clean ../shared/data/train/clean --install     # after air pull / air remove

      air train estimator --clean DIR --adapters noise,haze --out est.safetensors
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from air_restore.cli.add_degradation import estimator_sources, synthesizers
    from air_restore.core.io.images import ImageReadError, iter_image_paths, read_image
    from air_restore.cli.train_estimator import Source, train_estimator
    from air_restore.registry.local import active_adapters, local_estimator_path
    from air_restore.registry.store import ModelFileError, bundled_base_path, read_base_info, save_estimator

    if (out is None) == (not install):
        _fail("give exactly one of --out FILE or --install")
    if targets not in ("restored", "present"):
        _fail(f"--targets {targets!r}: use restored or present")
    if out is not None and out.exists() and not overwrite:
        _fail(f"{out}: already exists (pass --overwrite to replace it)")
    if not clean.is_dir():
        _fail(f"{clean}: no such folder")
    synths = synthesizers()
    if install:
        try:
            found = active_adapters(read_base_info(bundled_base_path()).fingerprint)
        except ModelFileError as e:
            _fail(str(e))
        names = [a.name for a in found]
        if not names:
            _fail("no adapters are installed (see `air list`)")
        by_name, missing = estimator_sources(found)
        if missing:
            _fail(f"adapter(s) {missing} have no plugin synthesizer and no stored examples; remove them with "
                  "`air remove NAME` or install their plugins")
        sources = [by_name[n] for n in names]
        out = local_estimator_path()
    else:
        names = [n.strip() for n in adapters.split(",") if n.strip()]
        if len(set(names)) != len(names) or not names:
            _fail(f"--adapters {adapters!r}: give unique, comma-separated names")
        missing = [n for n in names if n not in synths]
        if missing:
            _fail(f"no plugin with a synthesizer for {missing}; available: {', '.join(sorted(synths))}")
        sources = [Source(synth=synths[n]) for n in names]
    try:
        photos = [read_image(p).rgb for p in iter_image_paths([clean])]
    except (ImageReadError, FileNotFoundError) as e:
        _fail(str(e).strip("'\""))
    if not photos:
        _fail(f"{clean}: no images")
    judge = None
    if targets == "restored":
        from air_restore.registry.pipeline import PipelineError, restorer_for

        try:
            judge = restorer_for(names).best_subsets
        except (PipelineError, ModelFileError) as e:
            _fail(str(e))
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console) as bar:
        views = bar.add_task("synthesizing views" + (" and judging them by restoration" if judge else ""),
                             total=batches)
        task = bar.add_task("training estimator", total=steps)
        est, info = train_estimator(names, sources, photos, batches=batches, steps=steps, seed=seed,
                                    p_clean=clean_share, judge=judge,
                                    progress=lambda s, t: bar.update(task, completed=s),
                                    pool_progress=lambda d, t: bar.update(views, completed=d))
    save_estimator(est, out, training={**info, "data": {"folder": clean.name, "images": len(photos)}})
    stdout.print(escape(f"estimator for {names} → {out}"), highlight=False, soft_wrap=True)


@train_app.command("udair")
def train_udair_cmd(
    clean: Path = typer.Option(..., "--clean", help="Clean photos to degrade (e.g. ../shared/data/train/clean)."),
    out: Path = typer.Option(..., "--out", help="Refiner weights file to write (.safetensors)."),
    steps: int = typer.Option(1500, help="Optimizer steps (an upper bound with --time-budget)."),
    time_budget: Optional[float] = typer.Option(None, help="Seconds for the training loop: steps fitted to the speed."),
    max_severity: float = typer.Option(0.7, help="Highest training severity (benchmarks test above it)."),
    codebook: int = typer.Option(512, help="Codes in the degradation codebook."),
    seed: int = typer.Option(0),
    weights: Optional[Path] = typer.Option(None, help="Base weights (default: the bundled model)."),
    threads: int = typer.Option(0, help="CPU threads for torch (0: torch's default; 1 is fastest on a busy 2-core CPU)."),
    overwrite: bool = _flag("--overwrite", help="Replace an existing file."),
) -> None:
    """Train the UDAIR refiner (codebook, CSCL, anchors) on the frozen base and adapters.

    Crops of the clean photos are degraded by the built-in plugins and restored once by the frozen
    restorer; the refiner learns a residual correction with L1 + λ·CSCL + VQ losses. Its DAM is trained
    only at test time (`air restore --tta`).
    """
    from air_restore.cli.train_udair import run_cli

    if out.exists() and not overwrite:
        _fail(f"{out}: already exists (pass --overwrite to replace it)")
    if not clean.is_dir():
        _fail(f"{clean}: no such folder")
    try:
        run_cli(clean, out, steps=steps, time_budget=time_budget, max_severity=max_severity, codebook=codebook,
                seed=seed, weights=weights, threads=threads, console=console)
    except ValueError as e:
        _fail(str(e))


if __name__ == "__main__":
    app()
