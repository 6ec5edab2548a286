"""Defaults that ``air --help`` shows, in a module that does not import torch (so ``--help`` stays fast).

Tiles: ``TILE`` px with ``OVERLAP`` px between neighbours (``core.tiling``). The overlap covers the
network's receptive field where it matters: 99.9% of an output pixel's input gradient lies within 67 px
(``benchmarks/speed_paths.py``). Measured side by side with the earlier 512/128 (``benchmarks/speed_cpu.py``,
2 threads, BENCHMARKS.md): a 4000×3000 photo in 36.9 s instead of 55.1 s (peak memory 1384 MB instead of
1012 MB), with an output 51 dB from 512/128's; a 2048² one in 12.1 s instead of 15.7 s, 58 dB from it.
"""

TILE = 768
OVERLAP = 64
