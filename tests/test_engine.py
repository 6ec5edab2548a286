"""Tests for the one training loop (air_restore.core.training.engine) on a tiny conv net and real pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data as skdata

from air_restore.core.errors import InvalidValueError
from air_restore.core.training.engine import Engine, cosine_lr


def _net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.GELU(), torch.nn.Conv2d(8, 3, 3, padding=1))


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    return torch.from_numpy(np.asarray(skdata.astronaut()[:96, :96], dtype=np.float32) / 255).permute(2, 0, 1)


def _batch(photo: torch.Tensor, g: torch.Generator):
    """A denoising batch: 4 random 32² crops and their noisy copies."""
    ys = []
    for _ in range(4):
        y0, x0 = (int(v) for v in torch.randint(0, 64, (2,), generator=g))
        ys.append(photo[:, y0:y0 + 32, x0:x0 + 32])
    y = torch.stack(ys)
    return (y + 0.1 * torch.randn(y.shape, generator=g)).clamp(0, 1), y


def _run(engine: Engine, photo: torch.Tensor, g: torch.Generator) -> list[float]:
    losses = []
    for _ in engine:
        x, y = _batch(photo, g)
        with engine.autocast():
            loss = F.l1_loss(engine.forward(engine.input(x)).float(), y)
        engine.update(loss, {"loss": loss.item()})
        losses.append(loss.item())
    return losses


def test_the_schedule_warms_up_then_anneals_to_its_floor():
    assert cosine_lr(0, 100, lr=1.0, warmup=4) == pytest.approx(0.25)
    assert cosine_lr(3, 100, lr=1.0, warmup=4) == pytest.approx(1.0)
    assert cosine_lr(4, 100, lr=1.0, warmup=4) == pytest.approx(1.0)
    assert cosine_lr(52, 100, lr=1.0, warmup=4, floor=0.1) == pytest.approx(0.5 * (0.1 + 1.0))  # half-way: mean of ends
    assert cosine_lr(100, 100, lr=1.0, warmup=4, floor=0.1) == pytest.approx(0.1)
    assert cosine_lr(500, 100, lr=1.0, floor=0.1) == pytest.approx(0.1)  # past the end it stays at the floor


def test_the_loop_trains_reports_progress_and_follows_its_schedule(photo):
    seen, lrs = [], []
    engine = Engine(_net(), lr=3e-3, steps=40, floor=0.1, progress=lambda s, t, info: seen.append((s, t, info)))
    g = torch.Generator().manual_seed(0)
    for _ in engine:
        x, y = _batch(photo, g)
        loss = F.l1_loss(engine.forward(x), y)
        engine.update(loss, {"loss": loss.item()})
        lrs.append(engine.lr)
    assert [s for s, _, _ in seen] == list(range(1, 41)) and {t for _, t, _ in seen} == {40}
    assert lrs[0] == pytest.approx(3e-3) and lrs[-1] == pytest.approx(cosine_lr(39, 40, lr=3e-3, floor=0.1))
    first, last = np.mean([i["loss"] for _, _, i in seen[:5]]), np.mean([i["loss"] for _, _, i in seen[-5:]])
    assert last < 0.7 * first  # it learned to denoise


def test_a_checkpointed_run_resumes_exactly_where_it_stopped(photo, tmp_path):
    """Six steps in one go, or three, a checkpoint, and three more in a new engine: the same weights, EMA
    and optimizer state, bit for bit."""
    kw = dict(lr=2e-3, steps=6, warmup=2, clip=1.0, ema=0.9, betas=(0.9, 0.99))
    whole = Engine(_net(), **kw)
    _run(whole, photo, torch.Generator().manual_seed(1))

    g = torch.Generator().manual_seed(1)
    first = Engine(_net(), **kw)
    for _ in first:
        x, y = _batch(photo, g)
        first.update(F.l1_loss(first.forward(x), y))
        if first.step == 3:
            first.save_checkpoint(tmp_path / "ckpt.safetensors")
            break
    second = Engine(_net(seed=5), **kw)  # other initial weights: everything comes from the checkpoint
    assert second.load_checkpoint(tmp_path / "ckpt.safetensors") == 3 and second.total == 6
    assert len(_run(second, photo, g)) == 3
    for (k, a), b in zip(whole.model.state_dict().items(), second.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert all(torch.equal(whole.ema[k], second.ema[k]) for k in whole.ema)
    assert not torch.equal(whole.ema["0.weight"], whole.model.state_dict()["0.weight"])  # the EMA averages


def test_a_time_budget_runs_fewer_steps_and_the_total_follows(photo):
    seen = []
    engine = Engine(_net(), lr=1e-3, steps=100_000, time_budget=1.0, progress=lambda s, t, i: seen.append(t))
    _run(engine, photo, torch.Generator().manual_seed(0))
    assert 2 <= engine.step < 100_000 and seen[-1] == engine.step == engine.total
    assert seen[0] > seen[-1]  # the total shrank as the measured speed came in


def test_bf16_autocast_and_channels_last(photo):
    engine = Engine(_net(), lr=1e-3, steps=3, precision="bf16", channels_last=True)
    assert engine.model[0].weight.is_contiguous(memory_format=torch.channels_last)
    x, _ = _batch(photo, torch.Generator().manual_seed(0))
    assert engine.input(x).is_contiguous(memory_format=torch.channels_last)
    with engine.autocast():
        assert engine.forward(engine.input(x)).dtype == torch.bfloat16
    losses = _run(engine, photo, torch.Generator().manual_seed(0))
    assert len(losses) == 3 and all(np.isfinite(losses))
    assert engine.model[0].weight.dtype == torch.float32  # the weights stay fp32; only the compute is bf16
    with Engine(_net(), lr=1e-3, steps=1, precision="fp32").autocast():
        assert _net()(x).dtype == torch.float32


def test_an_unknown_precision_is_refused():
    with pytest.raises(InvalidValueError, match="bf16"):
        Engine(_net(), lr=1e-3, steps=1, precision="fp8")
