"""Peak memory of one restore, predicted from the image and tile sizes before any work.

``air restore`` holds a few whole-image buffers (the input, the stitched output and its weights, the
gate's clean probability; with ``--explain`` every class's probability) and the activations of one tile
at a time. So its peak is

    fixed + image_bytes_per_pixel · H·W + tile_bytes_per_pixel · (tile height · tile width)

where the tile is the largest one :func:`core.tiling.tile_spans` cuts (tiles shrink to share the image
evenly, so a 1024×768 photo at ``--tile 768`` runs in two tiles of 576×768, not 768×768). The constants
are measured, not derived: ``benchmarks/memory.py`` runs ``air restore`` in fresh processes over a grid
of image and tile sizes, reads each one's peak resident memory (``VmHWM``) and fits them
(BENCHMARKS.md, "Memory"). The activations scale with the model's width; the constants are for the
bundled base's width (:data:`WIDTH`).

:func:`plan` turns the prediction into a decision: the tile asked for when it fits in the memory
available, else the largest smaller tile that does (tiles bound the network's part of the peak
whatever the image size), else :class:`ImageTooLargeError`, naming ``--max-pixels`` and the memory the
whole-image buffers alone need.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import InvalidValueError
from .tiling import tile_spans

__all__ = ["ImageTooLargeError", "MemoryNeed", "MemoryPlan", "available_bytes", "plan", "predict", "tile_batch"]

# Measured by benchmarks/memory.py (BENCHMARKS.md, "Memory"): VmHWM of `air restore` on the CPU, 2 threads, over
# 64² to 3000×2250 images and tiles of 256 to 1024. The least-squares fit (229 MB, 64 B/px, 1151 B per tile pixel;
# before inference overwrote its features, core.arch, 1590–1720 B per tile pixel) rounded up, so that the
# prediction errs on the safe side: −1% (2 MB, on the smallest image) to +61% over the measured peak (the
# allocator's share makes the same run vary by up to ±300 MB).
FIXED_BYTES = 300e6  # Python, torch, the base with its adapters and the estimator
IMAGE_BYTES_PER_PIXEL = 64.0  # whole-image buffers (input, output, stitching weights, gate) per pixel
EXPLAIN_BYTES_PER_PIXEL = 24.0  # --explain: every class's probability and the map, on top
TTA_BYTES_PER_PIXEL = 64.0  # --tta: the refiner's copies of input and output, its stitched decode
# A second pass (core.routing.Sequel): the first pass's output, now the second's input, held beside the input
# (one float RGB image); derived, and checked against one measured run in NOTES.md.
AGAIN_BYTES_PER_PIXEL = 12.0
TILE_BYTES_PER_PIXEL = 1400.0  # activations of one tile, per pixel of the tile, at WIDTH channels
WIDTH = 24  # channels at full resolution of the model the constants were measured on

#: Tile sides :func:`plan` tries, largest first, when the one asked for does not fit.
SMALLER_TILES = (768, 640, 512, 384, 256)

GB = 1e9


class ImageTooLargeError(InvalidValueError):
    """Restoring the image needs more memory than there is, even with the smallest tile."""


@dataclass(frozen=True)
class MemoryNeed:
    """Predicted peak memory of one restore, in bytes, by part."""

    fixed: float
    image: float  # whole-image buffers
    tiles: float  # one tile's activations
    tile_shape: tuple[int, int]  # (height, width) of the largest tile

    @property
    def total(self) -> float:
        return self.fixed + self.image + self.tiles

    def describe(self) -> str:
        th, tw = self.tile_shape
        return (f"about {self.total / GB:.1f} GB ({self.image / GB:.1f} GB for the whole image, "
                f"{self.tiles / GB:.1f} GB for tiles of {tw}×{th}, {self.fixed / GB:.1f} GB for the model)")


def tile_shape(height: int, width: int, tile: int, overlap: int, align: int = 8) -> tuple[int, int]:
    """(height, width) of the largest tile :func:`core.tiling.tiled_forward` runs on this image."""
    ys, xs = tile_spans(height, tile, overlap, align=align), tile_spans(width, tile, overlap, align=align)
    return max(b - a for a, b in ys), max(b - a for a, b in xs)


def predict(height: int, width: int, *, tile: int, overlap: int, align: int = 8, model_width: int = WIDTH,
            explain: bool = False, tta: bool = False, again: bool = False, device: str = "cpu") -> MemoryNeed:
    """Peak host memory of restoring a ``height``×``width`` image (see the module docstring); ``again``: with
    room for a second pass. On a GPU (``device`` not ``cpu``) the tile's activations live in GPU memory and are
    not counted here."""
    pixels = height * width
    per_pixel = (IMAGE_BYTES_PER_PIXEL + EXPLAIN_BYTES_PER_PIXEL * explain + TTA_BYTES_PER_PIXEL * tta
                 + AGAIN_BYTES_PER_PIXEL * again)
    th, tw = tile_shape(height, width, tile, overlap, align)
    tiles = TILE_BYTES_PER_PIXEL * th * tw * model_width / WIDTH if device == "cpu" else 0.0
    return MemoryNeed(FIXED_BYTES, per_pixel * pixels, tiles, (th, tw))


@dataclass(frozen=True)
class MemoryPlan:
    tile: int  # the tile side to run with
    need: MemoryNeed  # predicted peak at that tile
    available: float | None  # bytes the process may reach (available_bytes; None: unknown, nothing checked)
    asked: int  # the tile side asked for

    @property
    def note(self) -> str | None:
        """One line for the user when the tile was made smaller than asked, else None."""
        if self.tile == self.asked:
            return None
        return (f"using --tile {self.tile} instead of {self.asked} to fit in the {self.available / GB:.1f} GB of "
                f"memory available (needs {self.need.describe()})")


def plan(height: int, width: int, *, tile: int, overlap: int, align: int = 8, model_width: int = WIDTH,
         explain: bool = False, tta: bool = False, again: bool = False, device: str = "cpu",
         available: float | None = None, name: str = "image") -> MemoryPlan:
    """The tile to restore a ``height``×``width`` image with: ``tile`` if the predicted peak fits in
    ``available`` bytes (default :func:`available_bytes`), else the largest of :data:`SMALLER_TILES` below
    it that fits. Raises :class:`ImageTooLargeError` (naming ``name``) when none does."""
    kw = dict(overlap=overlap, align=align, model_width=model_width, explain=explain, tta=tta, again=again,
              device=device)
    need = predict(height, width, tile=tile, **kw)
    if available is None:
        available = available_bytes()
    if available is None or need.total <= available:
        return MemoryPlan(tile, need, available, tile)
    for smaller in (t for t in SMALLER_TILES if t < tile and t > overlap and t % align == 0):
        shrunk = predict(height, width, tile=smaller, **kw)
        if shrunk.total <= available:
            return MemoryPlan(smaller, shrunk, available, tile)
    smallest = predict(height, width, tile=max(overlap + align, min(SMALLER_TILES)), **kw)
    raise ImageTooLargeError(
        f"{name}: restoring this {width}×{height} image needs {smallest.describe()} even with the smallest tile, "
        f"and {available / GB:.1f} GB is available; close other programs, restore a smaller copy of the image, "
        "or use a machine with more memory (--max-pixels sets the largest image `air restore` accepts)")


#: The most tiles :func:`tile_batch` puts in one batch on a GPU.
MAX_TILE_BATCH = 16


def tile_batch(tile_shape: tuple[int, int], device: torch.device | str, *, model_width: int = WIDTH,
               free: float | None = None) -> int:
    """How many tiles of ``tile_shape`` to run at once on ``device``: 1 on the CPU (one tile already keeps
    every core busy, and a batch multiplies the activations' memory); on a GPU as many as fit in half of
    its free memory (``free`` bytes, default ``torch.cuda.mem_get_info``) at the CPU's measured
    :data:`TILE_BYTES_PER_PIXEL` (autocast to 16 bits halves the real need), at most
    :data:`MAX_TILE_BATCH`."""
    device = torch.device(device)
    if device.type != "cuda":
        return 1
    if free is None:
        free = float(torch.cuda.mem_get_info(device)[0])
    per_tile = TILE_BYTES_PER_PIXEL * tile_shape[0] * tile_shape[1] * model_width / WIDTH
    return max(1, min(MAX_TILE_BATCH, int(0.5 * free // per_tile)))


def available_bytes() -> float | None:
    """Memory this process may still grow by, plus what it already holds (the prediction is of the whole
    process): the kernel's ``MemAvailable``, lowered to the cgroup's limit inside a container. None where
    it cannot be read (not Linux)."""
    meminfo = _read("/proc/meminfo")
    if meminfo is None:
        return None
    m = re.search(r"^MemAvailable:\s+(\d+) kB", meminfo, re.M)
    if m is None:
        return None
    free = int(m.group(1)) * 1024
    limit, used = _read("/sys/fs/cgroup/memory.max"), _read("/sys/fs/cgroup/memory.current")
    if limit and used and limit.strip().isdigit() and used.strip().isdigit():
        free = min(free, int(limit) - int(used))
    return float(max(free, 0) + _own_rss())


def _own_rss() -> int:
    status = _read(f"/proc/{os.getpid()}/status") or ""
    m = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    return int(m.group(1)) * 1024 if m else 0


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None
