"""Process-level settings that decide CPU inference speed: the allocator and the number format.

Both were measured on the project's 2-core AMD EPYC (AVX2 + FMA, no AVX-512), torch 2.13.0+cpu, 2 threads
(benchmarks/results/NOTES.md, "CPU inference"; BENCHMARKS.md):

- **The allocator.** glibc hands every block over 32 MB (most activations of a 512² tile) back to the
  kernel when it is freed and page-faults fresh zeroed pages for the next one, so a forward pass spent
  more time in page faults than in convolutions, and more the larger the image (ms per megapixel at
  256² → 1024²: 3565 → 5687). :func:`keep_freed_memory` tells glibc to keep freed memory for reuse
  instead: 1857 → 2200 ms/MP over the same sizes, i.e. 2.6× faster at 1024².
- **bf16.** Autocast to bfloat16 runs the base 21× *slower* than fp32 on a CPU without native bf16
  (AVX512_BF16 or AMX); :func:`resolve_precision` picks it only where the CPU has it, and on CUDA GPUs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
from functools import lru_cache
from pathlib import Path

import torch

from .errors import InvalidValueError

__all__ = ["PRECISIONS", "cpu_flags", "keep_freed_memory", "resolve_precision"]

#: ``AIR_SYSTEM_MALLOC=1`` leaves glibc's allocator as it is (memory handed back to the system as soon as
#: it is freed), for a long-running host process that shares the machine and cares more about that.
SYSTEM_MALLOC_ENV = "AIR_SYSTEM_MALLOC"

# mallopt parameters (glibc malloc.h).
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4


@lru_cache(maxsize=1)
def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for the next allocation instead of returning it to the kernel (no
    ``mmap`` for big blocks, no trimming below 1 GiB free at the heap's top). True where it took effect;
    False elsewhere (not Linux/glibc, or ``AIR_SYSTEM_MALLOC=1``), which changes speed only.

    Once per process: it changes how the whole process allocates. The cost is that the process keeps
    its peak heap (up to 1 GiB of it free) until it exits; peak memory itself does not grow (a 4000×3000
    photo through ``air restore``: BENCHMARKS.md)."""
    if os.environ.get(SYSTEM_MALLOC_ENV, "") not in ("", "0") or platform.system() != "Linux":
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in (
        (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 1 << 30), (_M_TOP_PAD, 64 << 20)))


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux ``/proc/cpuinfo``); empty where they cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return frozenset(line.partition(":")[2].split())


#: What ``--precision`` accepts. ``auto``: bf16 on a CPU with native bf16 (AVX512_BF16 or AMX) and on a
#: CUDA GPU that has it, fp16 on an older GPU, fp32 everywhere else.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(name: str, device: torch.device) -> torch.dtype:
    """The compute dtype for ``name`` (one of :data:`PRECISIONS`) on ``device``; fp32 means no autocast."""
    if name not in PRECISIONS:
        raise InvalidValueError(f"unknown precision {name!r}; use one of {', '.join(PRECISIONS)}")
    if name != "auto":
        return _DTYPES[name]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_flags() & {"avx512_bf16", "amx_bf16"}:
        return torch.bfloat16
    return torch.float32
