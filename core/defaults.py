"""Defaults that ``air --help`` shows, in a module that does not import torch (so ``--help`` stays fast).

Tiles: ``TILE`` px with ``OVERLAP`` px between neighbours (``core.tiling``). The overlap covers the
network's receptive field where it matters: 99.9% of an output pixel's input gradient lies within 67 px
(``benchmarks/speed_paths.py``).
"""

TILE = 512
OVERLAP = 128
