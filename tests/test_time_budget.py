"""`--time-budget` (#13 item 8): training loops run the steps that fit in a time budget, never more."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from PIL import Image

from air_restore.core.training.adapter import TrainAdapterConfig, synthetic_sampler, train_adapter
from air_restore.core.training.budget import StepBudget
from air_restore.core.training.engine import cosine_lr
from air_restore.core.training.estimator import train_estimator
from air_restore.registry.discovery import get_degradation
from air_restore.registry.store import load_base


def test_the_budget_shrinks_the_steps_to_what_fits_and_the_schedule_follows():
    b = StepBudget(1000, 0.25)
    step = 0
    while step < b.total:
        step += 1
        time.sleep(0.01)
        b.step_done(step)
    # ~0.01 s a step in 0.25 s: about 25 steps, not 1000 (a loaded machine runs fewer, never more)
    assert 3 <= step <= 30 and step == b.total
    factor = lambda s: cosine_lr(s, b.total, lr=1.0, floor=0.05)  # noqa: E731  (the engine's schedule)
    assert factor(0) == 1.0 and factor(step) == pytest.approx(0.05) and factor(step // 2) < factor(1)
    free = StepBudget(7, None)
    assert [free.step_done(i) for i in range(1, 8)] == [7] * 7
    with pytest.raises(ValueError, match="positive"):
        StepBudget(5, 0)


@pytest.fixture()
def photos():
    from skimage import data

    return [torch.from_numpy(np.asarray(Image.fromarray(getattr(data, k)()).resize((72, 64)), dtype=np.float32)
                             / 255).permute(2, 0, 1) for k in ("astronaut", "coffee", "chelsea")]


def test_an_adapter_trains_within_its_budget(photos):
    base, _ = load_base()
    sampler = synthetic_sampler(photos, get_degradation("noise").synthesize)
    cfg = TrainAdapterConfig(steps=10_000, batch_size=2, crop=32)
    started = time.monotonic()
    full = train_adapter(base, sampler, config=cfg.model_copy(update={"steps": 3}))
    three = time.monotonic() - started  # setting up and three steps, on this machine as loaded now
    assert full.steps_run == 3
    seen = []
    started = time.monotonic()
    model = train_adapter(base, sampler, config=cfg, time_budget=1.5, progress=lambda s, t, loss: seen.append(t))
    took = time.monotonic() - started
    assert 2 <= model.steps_run < 10_000 and seen[-1] == model.steps_run  # the bar's total ends at what ran
    assert took < 1.5 + three  # at most the budget and a step or two of overshoot


def test_an_estimator_trains_within_its_budget(photos):
    synths = [get_degradation(n).synthesize for n in ("noise", "haze")]
    started = time.monotonic()
    train_estimator(["noise", "haze"], synths, photos, batches=5, steps=5)
    five = time.monotonic() - started  # five batches of views and five steps, as loaded now
    started = time.monotonic()
    est, info = train_estimator(["noise", "haze"], synths, photos, batches=10_000, steps=100_000, time_budget=2.0)
    took = time.monotonic() - started
    assert 4 <= info["train_samples"] / 16 < 10_000 and 1 <= info["steps"] < 100_000
    assert took < 2.0 + five
