"""Dead zones: an estimated weight too faint to mean the degradation is there counts as none.

The estimator retrained with a snow output (``air add-degradation snow``, distilled from the one before) gives
clean photos a faint snow weight (CBSD68 #0–11: median 0.04, mean 0.12), and rainy or JPEG photos without a flake
up to 0.19. The segmentation head has no snow class, so that weight lifts as much of the clean-pixel
gate (``registry.restorer.Restorer.released``): clean photos came back at 71 dB against themselves where the bundle
before gave 96. Below ``below`` the weight is set to 0 after every other rule, for blending and for the gate alike.

Where to draw it, measured on the shipped pipeline (``benchmarks/blending.py``'s routing, NOTES.md):

- photos without snow: clean CBSD68 photos, median 0.03 (10 of #0–11 and 27 of #36–67 under 0.15; the rest 0.19
  to 0.79); 40 clean training crops all 0.11 or less; light rain and JPEG q75 (written apart from the repo) 0.19
  at most;
- photos with snow: the 11 real snow photos 0.17–0.53; the independent synthesizer's discs 0.83–1.0 on 11 of 12;
  ours at 0.5 0.69–0.97 on 9 of 12.

So 0.15: every real snow photo keeps its weight. Full battery, side by side without it (29b1722): clean photos
71.22 → 86.53 dB, grey clean 66.22 → 80.72, every snow row within 0.07 (haze+snow, rain+snow −0.07), every other
row within 0.1, mild noise (σ 5) the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DeadZone:
    """The estimator's weight of ``adapter`` set to 0 where it is under ``below``."""

    adapter: str = "snow"
    below: float = 0.15
    why: str = ("a snow weight under 0.15 is what the estimator gives most photos without snow, clean ones too; "
                "the head has no snow class, so it would lift the clean-pixel gate by as much")

    def apply(self, weights: torch.Tensor, adapters: list[str],
              yielded: dict[str, tuple[float, str]] | None = None) -> None:
        """Zeroes the adapter's weight in ``weights`` [K] (``adapters`` order) in place where it is under ``below``,
        noting it in ``yielded`` (as a factor of 0) where it was 0.01 or more."""
        if self.adapter not in adapters:
            return
        k = adapters.index(self.adapter)
        before = float(weights[k])
        if before < self.below:
            weights[k] = 0.0
            if yielded is not None and before >= 0.01:
                yielded[self.adapter] = (0.0, self.why)


#: The dead zones of the pipeline (``registry.restorer.Restorer.dead_zones``), applied after every other rule.
DEAD_ZONES: tuple[DeadZone, ...] = (DeadZone(),)
