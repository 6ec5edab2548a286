"""Floors: an estimated adapter's weight raised to a minimum measured on the photo's pixels.

The estimator learned each degradation from its synthesizer and misjudges what it did not see there. A floor
(:class:`Floor`) reads a fact about the photo that a rule measures reliably and raises the adapter's weight to
at least that much; the estimator can still give more.

In force (:data:`FLOORS`): the noise adapter's weight by the photo's fine, white noise (:func:`fine_noise`).
The estimator and the segmentation head both find noise by its colour. On noise without colour (grey photos and
scans, and phone photos whose processing removed the chroma noise) the estimator gives little weight (CBSD68 turned
grey, σ 10: 0.26; RNI6's Vinegar 0.12), and the head reads the photo as clean (90%), so the clean-pixel gate
keeps it as it came. The noise floor raises the weight and lifts the gate by as much (``releases_gate``), as the JPEG
rule does for the blocks the head cannot see (``core.routing.Detected``); only where the head reads the photo as clean
(``head_class``). Where the head sees the noise (colour noise: mean p_clean ≤ 0.05 at σ 5 and up, against 0.68–0.99
with grey or luma noise at σ 5–10) the estimator sees it too, and the floor stays out of its way: lifting the gate
there cost one photo with colour noise at σ 5 2.8 dB, and raising the noise weight on a hazy, noisy photo (before the
noise weight makes way for haze, ``core.routing.Yield``) 1.6 dB. Nor where the head reads haze (``unless_head``): the
noise adapter undoes the base's dehazing (a hazy photo with luma noise lost 2.4 dB).

Not in force: the haze floor (:data:`HAZE`), which raises the haze adapter's weight by a veil over the photo's
darkest parts (``core.routing.veil``). With the head's haze it leaves blur, rain and clean photos alone and lifts
thin, even haze by about 3 dB, but on dense real fog it raises the haze weight to 1 and brings out the base's
blotches (real/hazy fishers.jpg; NOTES.md). Judge a floor with ``Restorer(floors=...)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from .degradations import LUMA
from .restore import linear_ramp
from .routing import veil

#: Immerkær's operator (1996): the difference of two Laplacians, 0 on any plane and on any quadratic surface;
#: on white noise of σ its mean |response| is σ·6·√(2/π).
_IMMERKAER = ((1.0, -2.0, 1.0), (-2.0, 4.0, -2.0), (1.0, -2.0, 1.0))


def _fine_energy(y: torch.Tensor, block: int, strip: int = 1024) -> torch.Tensor:
    """Immerkær's σ estimate of a luma plane [1, 1, H, W] (8-bit levels, H and W multiples of ``block``) in each
    ``block``×``block`` square, [H / block, W / block]. The operator's response is 3×3 and replicated at the edges; it
    is taken ``strip`` rows at a time (a multiple of ``block``), so a 64-megapixel photo needs no more than a few
    strips of memory beside its luma."""
    k = torch.tensor(_IMMERKAER, dtype=y.dtype, device=y.device).view(1, 1, 3, 3)
    h, out = y.shape[-2], []
    for r0 in range(0, h, strip):
        r1 = min(r0 + strip, h)
        response = F.conv2d(y[..., max(r0 - 1, 0):min(r1 + 1, h), :], k).abs_()  # rows max(r0, 1) .. min(r1, h-1)
        response = F.pad(response, (1, 1, 0, 0), mode="replicate")
        if r0 == 0:
            response = torch.cat([response[..., :1, :], response], dim=-2)
        if r1 == h:
            response = torch.cat([response, response[..., -1:, :]], dim=-2)
        out.append(F.avg_pool2d(response, block, block))
    return torch.cat(out, dim=-2)[0, 0] * math.sqrt(math.pi / 2) / 6


def fine_noise(rgb: torch.Tensor, block: int = 16, flat: float = 0.3) -> float:
    """The level of fine, white noise in the luma of a photo [3, H, W] in [0, 1], in 8-bit levels; 0 on a photo
    too small to measure (under two blocks a side).

    Immerkær's operator responds to noise and to fine texture alike, so on its own it reads a grassy or stony
    clean photo as noisy as one with σ 10 noise (CBSD68: 8.6). White noise differs from texture in scale: averaging
    2×2 pixels halves its σ, while a photo's own detail has about as much energy at half the scale as at full
    (natural images are nearly scale invariant). So in each ``block`` square the noise's part of the operator's
    energy is ``(e₁² − e₂²) · 4/3``, with e₁ the estimate at full scale and e₂ at half; its mean over the
    ``flat`` share of squares with the least energy at full scale, square-rooted, is the level.

    What it reads (median, range): clean CBSD68 0.05 (0–2.2, all 68 photos); JPEGs of them at quality 90 and 50 0.07
    and 0.02 (one photo 3.7 at 90); grey (luma) noise σ 5 4.0 (2.7–4.4), σ 10 8.0 (5.9–8.7); colour noise, whose
    luma has 0.67 of its σ, σ 8 4.2 (3.0–4.8), σ 15 8.0 (5.9–8.9); the noise plugin at 0.1 2.5, 0.2 5.0 (3.3–5.8).
    Blur, haze, rain, snow, the plugin's JPEG, ``camera_noise`` (demosaicked, so no longer white) ≤ 2.1. Real photos
    (every one in each set, Rain100H's first 40): PolyU's noisy camera photos ≤ 0.05, Rain100H ≤ 0.6, EUVP ≤ 0.2,
    DICM ≤ 0.6, hazy ≤ 0.4, snow ≤ 0.5, LOL15 ≤ 0.95; RNI6's grey scans Old_Tom_Morris 3.9, Vinegar 2.3, the other
    four ≤ 0.1 (Vinegar's and Building's grain is coarser than a pixel: it keeps its energy at half scale, as texture
    does). The low-light plugin, whose sensor noise is white, 1.5–3.5. Luma noise σ 10 saved as a JPEG at quality 90
    9.0, at 75 0.95 (the codec flattens the flattest squares; at σ 20 it still reads 15.7)."""
    if min(rgb.shape[-2:]) < 2 * block:
        return 0.0
    h, w = (rgb.shape[-2] // block) * block, (rgb.shape[-1] // block) * block
    y = sum(c * rgb[i, :h, :w].float() for i, c in enumerate(LUMA))[None, None] * 255
    full = _fine_energy(y, block).flatten()
    half = _fine_energy(F.avg_pool2d(y, 2), block // 2).flatten()
    noise = ((full**2 - half**2) * 4 / 3).clamp(min=0)
    flattest = full <= full.kthvalue(max(1, int(flat * full.numel()))).values
    return float(noise[flattest].mean().sqrt())


def colourless(rgb: torch.Tensor, levels: float = 1.0) -> bool:
    """Whether a photo [3, H, W] in [0, 1] has no colour: its channels differ by less than ``levels`` (8-bit) on
    average, every fourth pixel each way (a grey photo or scan, also one saved as RGB or as a JPEG)."""
    x = rgb[:, ::4, ::4].float()
    return float((x.amax(0) - x.amin(0)).mean()) * 255 < levels


@dataclass(frozen=True)
class Floor:
    """``adapter``'s weight raised to at least ``measure(rgb)`` mapped onto 0–1 by a linear ``ramp`` (0 at or
    below the first value, 1 at or above the second), for an adapter the estimator knows but misjudges; with
    ``head_ramp``, times the segmentation head's mean probability of ``head_class`` (default: the class ``adapter``
    names; the adapters off, ``core.routing.head_means``) on a second ramp, so the measurement counts only where the
    head reads the photo so; times 1 − ``unless_head_ramp`` of the head's largest mean probability of a class in
    ``unless_head``; 0 where the estimator's weight of an adapter in ``unless_estimated`` reaches ``est_limit``.
    ``releases_gate``: the floor lifts as much of the clean-pixel gate (for what the head cannot see).
    ``makes_way_for``: adapters whose weight a detection rule measures (``core.routing.Detected``: jpeg) and whose
    adapter already cleans what the floor measures; the raise above the estimator's weight is scaled by 1 − the
    largest of their weights, once they are known (``registry.restorer.Restorer.route``; where a yield rule to such an
    adapter scales ``adapter``'s whole weight, ``core.routing.Yield``, the raise is scaled with it instead, not
    twice). ``moves_to``: an adapter of the floor's own, weighted by it alone (``core.routing.ruled``): where the
    floor measures more than 0.01 (after making way), a share of ``adapter``'s weight, raised or not, goes to it, by
    a linear ``moves_ramp`` of what the floor measured (all of it at or above the second value, none at or below the
    first), and with ``moves_colourless`` all of it on any photo without colour (:func:`colourless`); elsewhere
    ``adapter`` keeps the estimator's weight.

    The defaults are the haze floor (:data:`HAZE`): haze by ``core.routing.veil`` (0 up to 0.18, the highest value
    on a clear photo measured, 1 from 0.3), where the head's haze is 0.02 → 0.1. The estimator learned haze from the
    plugin's synthesizer and gives a thin, even veil (``core.degradations.flat_haze``) 0.02–0.22; the veil alone
    raised blurred photos too (blur lifts a bright photo's dark channel: CBSD68 blur −0.15 dB), whose head haze is
    ≤ 0.01. Measured on 12 CBSD68 photos per row (NOTES.md): flat haze 0.5 +2.83 dB, blur, rain and clean photos
    untouched; not in force (:data:`FLOORS`): on dense real fog it brings out the base's blotches."""

    adapter: str = "haze"
    measure: Callable[[torch.Tensor], float] = veil
    ramp: tuple[float, float] = (0.18, 0.3)
    head_ramp: tuple[float, float] | None = (0.02, 0.1)
    head_class: str | None = None
    unless_head: tuple[str, ...] = ()
    unless_head_ramp: tuple[float, float] = (0.3, 0.5)
    unless_estimated: tuple[str, ...] = ()
    est_limit: float = 0.1
    releases_gate: bool = False
    makes_way_for: tuple[str, ...] = ()
    moves_to: str | None = None
    moves_ramp: tuple[float, float] = (0.0, 0.01)
    moves_colourless: bool = False
    why: str = "a veil lifting the photo's darkest parts (dark channel), as fog does, where the head sees haze"

    def measured(self, rgb: torch.Tensor, head: Callable[[], torch.Tensor] | None = None,
                 classes: tuple[str, ...] = (), estimated: dict[str, float] | None = None) -> float:
        """The floor of the adapter's weight, 0–1. ``head``: returns ``core.routing.head_means`` of ``rgb`` (asked
        only where the measurement's ramp is above 0), ``classes`` the head's class names; without them the
        ``head_ramp`` counts as met. ``estimated``: the weights by adapter name, for ``unless_estimated``."""
        if any((estimated or {}).get(n, 0.0) >= self.est_limit for n in self.unless_estimated):
            return 0.0
        m = linear_ramp(self.measure(rgb), *self.ramp)
        c = self.head_class or self.adapter
        if m > 0 and self.head_ramp is not None and head is not None and c in classes:
            m *= linear_ramp(float(head()[classes.index(c)]), *self.head_ramp)
        if m > 0 and head is not None and (unless := [classes.index(u) for u in self.unless_head if u in classes]):
            m *= 1.0 - linear_ramp(max(float(head()[i]) for i in unless), *self.unless_head_ramp)
        return m


#: The haze floor (the :class:`Floor` defaults): not in force, see the module docstring.
HAZE = Floor()

#: The noise floor: the noise adapter's weight by :func:`fine_noise`, 0 up to 2.5 (clean photos read ≤ 2.2), 1 from
#: 5 (grey noise σ 6, colour noise σ 9), times the head's mean p_clean from 0.1 to 0.4; not on a photo the estimator
#: finds dark (the low-light plugin's white sensor noise reads up to 3.5, and the noise adapter undoes the base's
#: brightening: ``core.routing.Fallback``), nor where the head reads haze (mean 0.3 → 0.5: the noise adapter undoes
#: the base's dehazing; a hazy photo with luma noise, head haze 0.59, lost 2.4 dB; grey noisy photos read ≤ 0.31).
#: On a hazy photo the second pass, routed on the dehazed output, still gets it (``core.routing.Sequel``). The raise
#: makes way for the jpeg weight (``makes_way_for``): the jpeg adapter learnt noise under the codec
#: (``core.families.noisy_jpeg``), and the noise adapter on top of it smoothed twice (``benchmarks/floors.py``, 12
#: CBSD68 photos, luma noise σ 20 then libjpeg q75: 27.62 dB without the floor, 26.67 with it, 27.56 making way; σ 10
#: then q90, where the jpeg weight is lower: 29.90, 31.07, 31.39). Wherever the floor finds such noise, the noise
#: weight (raised or not) goes to the lumanoise adapter (``moves_to``): the noise adapter retrained on grey photos and
#: luma noise (``core.degradations.mono_noise``), which removes them; the noise adapter, learnt on colour noise, keeps
#: the estimator's weight everywhere else; a grey photo's noise has no colour either, so there the noise weight
#: goes to lumanoise whatever the floor measures (``moves_colourless``: RNI6's grey scans, whose coarse grain the
#: floor does not read). On our own independent synthesizers (CBSD68 #24–35) the retrained adapter
#: in that place cost light rain 0.96 dB, Gaussian noise σ 10 0.55, camera noise 0.47 and JPEG q75 0.32 (NOTES.md).
#: The weight moves only where the floor finds 0.1 or more, all of it from 0.15 (``moves_ramp``): a colour photo
#: of fine texture (a rippled lake) saved as a JPEG at quality 90 reads as a trace of luma noise (the floor
#: measures 0.02), and the lumanoise adapter, handed the estimator's whole noise weight (0.86), made the
#: segmentation head read the photo as degraded, lifting the gate, and smoothed the ripples away: 35.40 → 29.30 dB,
#: where the noise adapter at that weight leaves the gate shut (CBSD68 #0–11 and #24–35: libjpeg q90 37.27 → 37.57,
#: input 37.47; rain then luma noise σ 10 −0.06, one photo −0.91 where the floor read 0.04; NOTES.md).
NOISE = Floor(adapter="noise", measure=fine_noise, ramp=(2.5, 5.0), head_ramp=(0.1, 0.4), head_class="clean",
              unless_head=("haze",), unless_estimated=("lowlight",), releases_gate=True, makes_way_for=("jpeg",),
              moves_to="lumanoise", moves_ramp=(0.1, 0.15), moves_colourless=True,
              why="fine, white noise in its luma, where the segmentation head reads the photo as clean: the estimator "
              "and the head find noise by its colour; the clean-pixel gate is lifted as much; less as far as the jpeg "
              "adapter is weighted, which cleans noise under the codec; the lumanoise adapter, learnt on noise without "
              "colour, takes the noise weight")

#: The floors of the pipeline (``registry.restorer.Restorer.floors``).
FLOORS: tuple[Floor, ...] = (NOISE,)


def own_adapters(floors: tuple[Floor, ...] = FLOORS) -> set[str]:
    """The adapters of the floors' own (``Floor.moves_to``), weighted by their floor alone, never by an estimator."""
    return {f.moves_to for f in floors if f.moves_to}
