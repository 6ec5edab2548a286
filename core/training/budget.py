"""Fit a training loop into a time budget (``--time-budget``): run fewer steps, never more than asked.

The number of steps that fit is re-estimated from the measured time per step as the loop runs (the first
step, which warms up the allocator and the kernels, is left out of the estimate) and only ever shrinks,
so a progress bar's total can follow it and the learning-rate schedule anneals over the steps that are
actually run (``engine.cosine_lr`` of :attr:`StepBudget.total`).
"""

from __future__ import annotations

import time


class StepBudget:
    """``steps`` to run in ``seconds`` (None: no limit); :attr:`total` is the count that fits so far."""

    def __init__(self, steps: int, seconds: float | None) -> None:
        if seconds is not None and seconds <= 0:
            raise ValueError(f"a time budget must be positive, got {seconds} s")
        self.steps, self.seconds, self.total = steps, seconds, steps
        self.started = time.monotonic()
        self._first_done: float | None = None

    def step_done(self, done: int) -> int:
        """Record that ``done`` steps have run; returns the (possibly lower) total."""
        now = time.monotonic()
        if self.seconds is None:
            return self.total
        if done == 1:
            self._first_done = now
        elif done > 1 and self._first_done is not None:
            per_step = (now - self._first_done) / (done - 1)
            left = self.seconds - (now - self.started)
            fit = done + int(max(0.0, left) / max(per_step, 1e-9))
            self.total = max(done, min(self.total, fit))
        if now - self.started >= self.seconds:
            self.total = done
        return self.total
