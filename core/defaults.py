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
#: network itself runs fast: on a CPU with native bf16 a 4000×3000 photo took 15.3 s in restore() at 1024/128
#: against 16.3 s at 768/128 (BENCHMARKS.md, "A tile size per precision"); in fp32 the same CPU took 26.8
#: against 26.4 s, so fp32 keeps 768. The whole `air restore` command on a 12 MP JPEG, alternated 3 times,
#: since inference overwrites its features (core.arch): 17.8–18.8 s and 1.42–1.72 GB peak at 1024 against
#: 19.2–20.2 s and 1.09–1.16 GB at 768 (before that change 1024 peaked at 2.1–2.2 GB, over the 2 GB the speed
#: issue allows, and was reverted). Tiles of 1280 were slower again.
TILE_HALF = 1024
OVERLAP = 128


def default_tile(half: bool) -> int:
    """The tile side when none is given: :data:`TILE_HALF` for tiles computed in bf16 or fp16, else :data:`TILE`."""
    return TILE_HALF if half else TILE
