"""Defaults that ``air --help`` shows, in a module that does not import torch (so ``--help`` stays fast).

Tiles: up to ``TILE`` px, ``OVERLAP`` px between neighbours (``core.tiling``). A pixel in the middle of an
overlap sees OVERLAP / 2 px of context past each tile's edge, and 99.9% of an output pixel's input gradient
lies within 67 px (``benchmarks/speed_paths.py``): on a noisy 1024² photo against the whole-image output,
768/64 left a seam (max difference 0.24 of full scale), 768/96 agrees to 70.9 dB (max 0.02), 768/128 to
74.0 dB (benchmarks/results/NOTES.md). Speed of each: ``benchmarks/speed_cpu.py`` (BENCHMARKS.md).
"""

TILE = 768
OVERLAP = 96
