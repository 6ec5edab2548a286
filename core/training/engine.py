"""The one optimisation loop behind every model air-restore trains: base, adapters, estimator, UDAIR refiner.

A trainer builds its model and its batches and leaves the rest to :class:`Engine`: AdamW, the learning
rate (linear warm-up, then cosine down to a floor over the steps that are actually run), the time budget
(:class:`~.budget.StepBudget`: fewer steps, never more), gradient clipping, autocast precision, channels_last,
an EMA of the weights, progress callbacks and checkpoint + resume (safetensors: model, EMA, optimizer state).
With an ``accelerate.Accelerator`` (the base's multi-GPU path) model and optimizer go through it; without one
the loop is plain torch, so that trainers of different precisions can share a process (accelerate keeps
one precision per process).

    engine = Engine(model, lr=5e-4, steps=500, floor=0.05, time_budget=600, progress=bar)
    for step in engine:
        x, y = sample(g)
        with engine.autocast():
            loss = F.l1_loss(engine.forward(engine.input(x)).image.float(), y)
        engine.update(loss, {"loss": loss.item()})

Precision: ``fp32``, ``bf16`` (autocast) or ``auto``, which is bf16 only where it is fast
(:func:`air_restore.core.runtime.resolve_precision`: CUDA, or a CPU with native bf16) and fp32 otherwise;
fp16 without an accelerator (it needs a gradient scaler) falls back to fp32.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Callable, Iterator, Literal, Sequence

import torch

from ..errors import InvalidValueError
from .budget import StepBudget

Precision = Literal["auto", "fp32", "bf16"]
Progress = Callable[[int, int, dict], None]


def cosine_lr(step: int, total: int, *, lr: float, warmup: int = 0, floor: float = 0.0) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine from ``lr`` to ``floor``·``lr`` at ``total``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t)))


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a plain-torch loop (None: fp32)."""
    from ..runtime import resolve_precision

    if precision not in ("auto", "fp32", "bf16"):
        raise InvalidValueError(f"unknown training precision {precision!r}; use auto, fp32 or bf16")
    dtype = resolve_precision(precision, device)
    return dtype if dtype == torch.bfloat16 else None


class Engine:
    """One training run of ``model`` (see the module's docstring).

    ``params``: what the optimizer trains (default: the model's parameters that require grad). ``lr_at``
    replaces the schedule: ``lr_at(step, total)`` gives the learning rate of a step (the chunked base's
    re-warm). ``ema``: decay of the averaged weights (0: none); ``ema_ramp`` shortens the average's horizon
    over the first steps of the run, as after a resume. ``progress(step, total, info)`` after every step;
    ``total`` shrinks when the time budget says fewer steps fit.
    """

    def __init__(self, model: torch.nn.Module, *, lr: float, steps: int, params: Sequence[torch.nn.Parameter] | None = None,
                 time_budget: float | None = None, weight_decay: float = 0.0,
                 betas: tuple[float, float] = (0.9, 0.999), warmup: int = 0, floor: float = 0.0,
                 lr_at: Callable[[int, int], float] | None = None, clip: float | None = None,
                 precision: str = "fp32", channels_last: bool = False, compile: bool = False, ema: float = 0.0,
                 ema_ramp: bool = False, accelerator=None, progress: Progress | None = None) -> None:
        self.budget = StepBudget(steps, time_budget)  # its clock starts here: what follows counts too
        self.steps, self.start, self.step = steps, 0, 0
        self.acc = accelerator
        self.device = accelerator.device if accelerator is not None else _device_of(model)
        self.dtype = None if accelerator is not None else autocast_dtype(precision, self.device)
        self.channels_last = channels_last
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.params = [p for p in (model.parameters() if params is None else params) if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=lr, weight_decay=weight_decay, betas=betas)
        if accelerator is not None:
            model, self.opt = accelerator.prepare(model, self.opt)
            self.model = accelerator.unwrap_model(model)
        else:
            self.model = model
        self.forward = torch.compile(model) if compile else model
        self._lr_at = lr_at or (lambda step, total: cosine_lr(step, total, lr=lr, warmup=warmup, floor=floor))
        self.clip, self.progress = clip, progress
        self.ema_decay, self.ema_ramp = ema, ema_ramp
        self.ema: dict[str, torch.Tensor] | None = None
        if ema:
            self.ema = {k: v.detach().clone().float() for k, v in self.model.state_dict().items()}
            live = self.model.state_dict(keep_vars=True)
            keys = [k for k, v in self.ema.items() if v.dtype.is_floating_point]
            self._ema_pairs = ([self.ema[k] for k in keys], [live[k] for k in keys])

    @property
    def total(self) -> int:
        """The step this run stops at (the time budget may lower it as the run goes)."""
        return self.start + self.budget.total

    @property
    def lr(self) -> float:
        return self.opt.param_groups[0]["lr"]

    def __iter__(self) -> Iterator[int]:
        while self.step < self.total:
            yield self.step

    def autocast(self):
        """The forward pass's precision context."""
        if self.acc is not None:
            return self.acc.autocast()
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def input(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in the model's memory format."""
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def update(self, loss: torch.Tensor, info: dict | None = None) -> None:
        """One optimizer step on ``loss``, then the EMA, the budget and the progress callback."""
        lr = self._lr_at(self.step, self.total)
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.opt.zero_grad(set_to_none=True)
        if self.acc is not None:
            self.acc.backward(loss)
            if self.clip:
                self.acc.clip_grad_norm_(self.params, self.clip)
        else:
            loss.backward()
            if self.clip:
                torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        self.opt.step()
        self.step += 1
        if self.ema is not None:
            decay = self.ema_decay
            if self.ema_ramp:  # the average restarts from the loaded weights: a short horizon at first
                n = self.step - self.start
                decay = min(decay, (1 + n) / (10 + n))
            with torch.no_grad():
                averaged, live = self._ema_pairs
                torch._foreach_lerp_(averaged, [p.detach().float() for p in live], 1 - decay)
        self.budget.step_done(self.step - self.start)
        if self.progress:
            self.progress(self.step, self.total, info or {})

    # ---------------------------------------------------------------------------------- checkpoints
    def checkpoint_tensors(self) -> dict[str, torch.Tensor]:
        """Model, EMA and optimizer state as flat CPU tensors (for ``io.weights.save_tensors``)."""
        out = {f"model.{k}": v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        out.update({f"ema.{k}": v.detach().cpu().contiguous() for k, v in (self.ema or {}).items()})
        for i, state in self.opt.state_dict()["state"].items():
            for k, v in state.items():
                out[f"opt.{i}.{k}"] = torch.as_tensor(v).detach().cpu().contiguous()
        return out

    def save_checkpoint(self, path: Path, metadata: dict[str, str] | None = None) -> None:
        """Write :meth:`checkpoint_tensors` atomically, with the step in the metadata."""
        from ..io.weights import save_tensors

        save_tensors(self.checkpoint_tensors(), Path(path), {"kind": "checkpoint", "step": str(self.step),
                                                             **(metadata or {})})

    def load_checkpoint(self, path: Path) -> int:
        """Resume from a :meth:`save_checkpoint` file: weights, EMA, optimizer state and step (returned)."""
        from safetensors import safe_open
        from safetensors.torch import load_file

        t = load_file(str(path), device=str(self.device))
        self.model.load_state_dict({k[6:]: v for k, v in t.items() if k.startswith("model.")})
        for k in self.ema or {}:
            self.ema[k].copy_(t[f"ema.{k}"])
        sd = self.opt.state_dict()
        for key, v in t.items():
            if key.startswith("opt."):
                _, i, name = key.split(".", 2)
                sd["state"].setdefault(int(i), {})[name] = v
        self.opt.load_state_dict(sd)
        with safe_open(str(path), framework="pt") as f:
            self.resume_at(int(f.metadata()["step"]))
        return self.step

    def resume_at(self, step: int) -> None:
        """Go on from ``step`` of a longer run: the schedule continues, the budget counts this run's steps."""
        self.start = self.step = step
        self.budget.steps = self.budget.total = max(0, self.steps - step)


def _device_of(model: torch.nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")
