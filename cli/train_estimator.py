"""Phase III: train the tiny estimator on plugin-degraded crops of clean photos (``air train estimator``)."""

from __future__ import annotations

import time
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from air_restore.core.estimator import Estimator, EstimatorConfig, estimator_batch


def build_pool(photos: Sequence[torch.Tensor], synths: Sequence[Callable], g: torch.Generator, *, batches: int,
               batch_size: int = 16, sizes: tuple[int, int] = (96, 224)) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of random crops (side drawn from ``sizes``; one side per batch) degraded with multi-hot targets."""
    pool = []
    for _ in range(batches):
        size = int(torch.randint(sizes[0], sizes[1] + 1, (1,), generator=g))
        crops = []
        for _ in range(batch_size):
            im = photos[int(torch.randint(0, len(photos), (1,), generator=g))]
            _, h, w = im.shape
            s = min(size, h, w)
            y0 = int(torch.randint(0, h - s + 1, (1,), generator=g))
            x0 = int(torch.randint(0, w - s + 1, (1,), generator=g))
            crop = im[:, y0 : y0 + s, x0 : x0 + s]
            crops.append(F.interpolate(crop[None], size=(size, size))[0] if s != size else crop)
        pool.append(estimator_batch(torch.stack(crops), synths, g))
    return pool


def train_estimator(
    names: Sequence[str], synths: Sequence[Callable], photos: Sequence[torch.Tensor], *, batches: int = 600,
    steps: int = 5000, lr: float = 2e-3, seed: int = 0, progress: Callable[[int, int], None] | None = None,
) -> tuple[Estimator, dict]:
    """Returns the trained estimator (eval mode) and a summary of its training."""
    g = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    pool = build_pool(photos, synths, g, batches=batches)
    synth_s = time.perf_counter() - started
    with torch.random.fork_rng(devices=[]):  # seeded initial weights, global RNG state left as it was
        torch.manual_seed(seed)
        est = Estimator(config=EstimatorConfig(adapters=tuple(names)))
    opt = torch.optim.AdamW(est.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for step in range(steps):
        x, y = pool[int(torch.randint(0, len(pool), (1,), generator=g))]
        if step % 2:
            x = x.flip(-1)
        loss = F.binary_cross_entropy_with_logits(est(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if progress:
            progress(step + 1, steps)
    info = {"train_samples": sum(len(x) for x, _ in pool), "steps": steps, "seed": seed,
            "synth_s": synth_s, "train_s": time.perf_counter() - started - synth_s}
    return est.eval(), info
