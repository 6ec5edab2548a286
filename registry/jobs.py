"""``air restore`` over files: which files, where each result goes, and one file restored end to end.

:func:`plan` turns the command line's inputs and ``-o`` into a list of :class:`FileJob` (refusing, before
any work, an output that cannot be what the user meant); :func:`restore_file` runs one job through a
:class:`~air_restore.registry.pipeline.Pipeline`. The CLI only prints; ``air batch`` (Ray) has its own
scheduling in :mod:`.batch` and restores through the same ``Pipeline.run``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..core.errors import UserError
from ..core.defaults import OVERLAP
from ..core.io.images import (
    IMAGE_SUFFIXES, MAX_PIXELS, check_writable, image_size, iter_image_paths, output_path_for, read_image, save_png, write_image,
)

#: Stems of air-restore's own outputs: found inside an input folder they are not restored again.
OUTPUT_STEMS = ("_restored", "_restored_map")


@dataclass
class FileJob:
    src: Path
    dest: Path

    @property
    def map_path(self) -> Path:
        """Where ``--explain`` writes the degradation map."""
        return self.dest.with_name(self.dest.stem + "_map.png")


@dataclass
class Plan:
    jobs: list[FileJob]
    is_batch: bool  # several inputs or a folder: -o is a folder
    skipped: list[Path] = field(default_factory=list)  # earlier outputs found in input folders


def plan(inputs: list[Path], output: Path | None) -> Plan:
    """The files to restore and their outputs; a problem (no images, ``-o`` a file for several inputs, an
    output folder that cannot be written) is a UserError before any image is read."""
    try:
        paths = iter_image_paths(inputs)
    except (ValueError, FileNotFoundError) as e:
        raise UserError(str(e)) from None
    explicit = {p.resolve() for p in inputs if not p.is_dir()}
    skipped = [p for p in paths if p.resolve() not in explicit and p.stem.endswith(OUTPUT_STEMS)]
    paths = [p for p in paths if p not in skipped]
    if not paths:
        raise UserError("no images found in " + ", ".join(map(str, inputs)))
    is_batch = len(paths) > 1 or any(p.is_dir() for p in inputs)
    if is_batch and output is not None and output.exists() and not output.is_dir():
        raise UserError(f"{output}: is a file; with several inputs, -o must be a folder")
    if is_batch and output is not None and not output.exists() and output.suffix.lower() in IMAGE_SUFFIXES:
        raise UserError(f"{output}: looks like a file name, but there are {len(paths)} inputs; give -o a folder")
    jobs = [FileJob(p, output_path_for(p, output, is_batch=is_batch)) for p in paths]
    try:  # a read-only or impossible output folder is refused now, not after every image was computed
        for folder in sorted({j.dest.parent for j in jobs}):
            check_writable(folder)
    except OSError as e:
        raise UserError(str(e)) from None
    return Plan(jobs, is_batch, skipped)


@dataclass
class FileResult:
    job: FileJob
    restored: object  # the pipeline's Restored
    map_error: str | None = None  # the image was written but its --explain map could not be


def restore_file(pipe, job: FileJob, *, adapters: dict[str, float] | None = None, tile: int | None = None,
                 overlap: int = OVERLAP, explain: bool = False, overwrite: bool = False, max_pixels: int = MAX_PIXELS,
                 strength: float | None = None, progress: Callable[[int, int], None] | None = None) -> FileResult:
    """Read, restore and write one file (and its map with ``explain``). Nothing is overwritten unless
    ``overwrite``; an existing output is refused before the work. Raises ImageReadError,
    FileExistsError, OSError or ValueError for this file only."""
    if job.dest.exists() and not overwrite:
        raise FileExistsError(f"{job.dest}: already exists (pass --overwrite to replace it)")
    if explain and job.map_path.exists() and not overwrite:
        raise FileExistsError(f"{job.map_path}: already exists (pass --overwrite to replace it)")
    if (size := image_size(job.src)) is not None:  # too large for the memory there is: refused before decoding
        pipe.memory_plan(size[1], size[0], tile=tile, overlap=overlap, explain=explain, name=str(job.src))
    img = read_image(job.src, max_pixels=max_pixels)
    result = pipe.run(img.rgb, adapters=adapters, tile=tile, overlap=overlap, explain=explain, strength=strength,
                      progress=progress)
    write_image(img, result.image, job.dest, overwrite=overwrite)
    out = FileResult(job, result)
    if explain and result.seg_probs is not None:
        try:
            save_png(result.degradation_map(img.rgb, pipe.classes), job.map_path, overwrite=overwrite)
        except OSError as e:
            out.map_error = f"{job.map_path}: {e}"
    return out
