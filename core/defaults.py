"""Defaults that ``air --help`` shows, in a module that does not import torch (so ``--help`` stays fast).

Tiles: up to ``TILE`` px, ``OVERLAP`` px between neighbours (``core.tiling``). A pixel in the middle of an
overlap sees OVERLAP / 2 px of context past each tile's edge, and 99.9% of an output pixel's input gradient
lies within 67 px (``benchmarks/speed_paths.py``), so the overlap stays at 128: against the whole-image
output of a noisy photo cut into many tiles, the worst pixel was 0.24 of full scale off with 64 px of
overlap, 0.165 with 96 and 0.075 with 128 (benchmarks/results/NOTES.md). Speed: ``benchmarks/speed_cpu.py``.
"""

TILE = 768  # in bf16 too: 1024 px tiles were 11% faster in restore() on a native-bf16 CPU, but `air restore` on a
#            12 MP JPEG then peaked at 2214 MB (over the 2 GB the speed issue allows) for 23.2 s against 24.3 s
#            (NOTES.md, "A tile size per precision").
OVERLAP = 128
