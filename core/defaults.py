"""Defaults that ``air --help`` shows, in a module that does not import torch (so ``--help`` stays fast).

Tiles: up to ``TILE`` px (``TILE_HALF`` where they compute in bf16 or fp16), ``OVERLAP`` px between
neighbours (``core.tiling``). A pixel in the middle of an
overlap sees OVERLAP / 2 px of context past each tile's edge, and 99.9% of an output pixel's input gradient
lies within 67 px (``benchmarks/speed_paths.py``), so the overlap stays at 128: against the whole-image
output of a noisy photo cut into many tiles, the worst pixel was 0.24 of full scale off with 64 px of
overlap, 0.165 with 96 and 0.075 with 128 (benchmarks/results/NOTES.md). Speed: ``benchmarks/speed_cpu.py``.
"""

TILE = 768
#: Where the tiles compute in bf16 or fp16. Fewer, larger tiles repeat fewer overlaps, which pays where the
#: network itself runs fast: side by side on a CPU with native bf16 (BENCHMARKS.md, "A tile size per
#: precision"), a 4000×3000 photo took 15.9 s at 1024/128 against 17.9 s at 768/128, peak 1925 against 1434 MB;
#: in fp32 the same CPU took 26.8 against 26.4 s (and 1843 against 1390 MB), so fp32 keeps 768. Tiles of 1280
#: were slower again (and 3.2 GB).
TILE_HALF = 1024


def default_tile(half: bool) -> int:
    """The tile side when none is given: :data:`TILE_HALF` for tiles computed in bf16 or fp16, else :data:`TILE`."""
    return TILE_HALF if half else TILE
OVERLAP = 128
