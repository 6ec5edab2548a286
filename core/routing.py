"""The fallback adapter: who gets the blend weight the estimator leaves unassigned.

The estimator's weights rarely sum to 1 on a photo it is unsure about (mild noise, light rain, a photo
that is nearly clean), and what they leave goes to the base alone. On this base that is the worse
choice: the base alone shifts tone and leaves mild noise (CBSD68, noise σ≈5: 29.3 dB against the input's
34.4), and the bundled noise adapter, trained to correct the base on noisy crops, gives those photos
back better than the base does. So the unassigned weight goes to a *fallback* adapter (noise), except on
dark photos, where the noise adapter undoes the base's brightening (a low-light photo: 22.95 → 20.36 dB
when it gets the rest). Two signals say "dark", and either one stops the fallback:

- the estimator's own weight for the low-light adapter (≥ ``est_limit``);
- the segmentation head's mean low-light probability on a few native-resolution crops, with the
  adapters off (a ramp over ``head_ramp``). The head needs native pixels: on a downscaled photo it reads
  sensor noise no longer and misses mild low light.

The rest counts in proportion to the estimator's doubt, ``1 − max w_other``: a hazy photo whose haze weight is
0.7–0.9 leaves 0.1–0.3 unassigned, and giving that to the noise adapter cost 0.17 dB on average (up to 0.8);
scaled by the doubt, 0.04, while mild noise (other weights near 0) keeps nearly all of its gain.

Nor does it act on a photo the same crops say is clean as a whole: the gate gives such a photo back as it
came, and the noise adapter would only move the head's judgement of it (a clean cat photo: kept 100% → 47%).
Nor on one whose darkest parts a veil lifts (:func:`veil`) where the head sees haze: light haze, which the estimator
gives little weight, and whose dehazing the noise adapter would undo; dense fog excepted (:func:`fallback_share`).

Measured by ``benchmarks/gate.py`` and ``benchmarks/blending.py`` (BENCHMARKS.md, NOTES.md).

A *detected* adapter (:class:`Detected`) gets its weight from a measurement of the photo instead of the
estimator: the JPEG adapter from :func:`core.blockiness.compression`. Where the estimator was trained with
a JPEG output it mistook rain for JPEG and cost rain photos 0.7 dB (NOTES.md); an 8×8 grid in the pixels is
a fact a rule reads without learning it. The rule applies only where the estimator does not know the
adapter (an estimator trained with it, by ``air train estimator``, decides as for any other).

A *floor* (:class:`core.floors.Floor`, in its own module) raises the estimator's weight of an adapter it does know
to a measured minimum: the noise adapter's by the photo's fine, white noise (:func:`core.floors.fine_noise`).

A *yield* (:class:`Yield`) scales one estimated adapter's weight down by another's: the noise adapter makes way for
the haze adapter (× (1 − the haze weight)), which restores a hazy, noisy photo better on its own.

A *temper* (:class:`Temper`) scales an estimated adapter's weight down by how much the base alone already corrects:
the low-light adapter's where the base alone brightens the photo 2–4 fold.

A *keep* rule (:class:`KeepDark`, :class:`KeepHaze`) has the clean-pixel gate keep the pixels the head reads as
low light or haze where the estimator, judging the photo as a whole, finds none (and, for haze, no veil lifts the
photo's darkest parts): the base alone corrects whatever the head marks, and there its correction is a guess (a
night sky lifted to grey, a bright cloud darkened to slate, fog painted with blotches).

A *sequel* (:class:`Sequel`) restores a photo twice where a scene-wide correction (haze, low light) led the first
pass: the second pass is routed on the first one's output, where the veil or the dark no longer hides the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .arch import AirUNet
from .blockiness import compression
from .lora import adapter_names, blend
from .restore import clean_share, linear_ramp, restore


@dataclass(frozen=True)
class Fallback:
    """The rule: ``adapter`` takes ``(1 − Σ w) · (1 − max w_other) · share`` on top of its own weight, where
    ``max w_other`` is the estimator's largest weight for another adapter (see the module docstring)."""

    adapter: str = "noise"
    unless: str = "lowlight"  # an adapter name and a segmentation class
    est_limit: float = 0.1  # the estimator's weight for ``unless`` at which the fallback is fully off
    head_ramp: tuple[float, float] = (0.2, 0.5)  # head's mean p_unless: fallback full below, off above
    crop: int = 128  # side of the four native-resolution crops the head looks at
    # The photo's :func:`veil`: fallback full below, off above (None: not measured), where the head's mean haze
    # probability is over ``haze_ramp`` (as for the haze floor, ``core.floors.HAZE``: blur lifts the veil too), unless
    # the photo's :func:`fog_density` is over ``dense_ramp`` (full from its end). See :func:`fallback_share`.
    veil_ramp: tuple[float, float] | None = (0.18, 0.3)
    haze_ramp: tuple[float, float] = (0.02, 0.1)
    dense_ramp: tuple[float, float] = (0.45, 0.6)

    def applies(self, model: AirUNet, adapters: list[str]) -> bool:
        return {self.adapter, self.unless} <= set(adapters) and self.unless in model.config.classes


def crop_pass(model: AirUNet, rgb: torch.Tensor, crop: int = 128) -> tuple[torch.Tensor, float]:
    """One pass of the base alone (adapters off) over four native-resolution crops of ``rgb`` [3, H, W] (centred
    at 30%/70% of each side; the whole photo when it is smaller): the segmentation head's mean probability of each
    class [C], and how much the base brightens the crops (the mean of its output over the mean of theirs)."""
    _, h, w = rgb.shape
    c = min(crop, h, w)
    ys = sorted({min(max(0, round(h * f) - c // 2), h - c) for f in (0.3, 0.7)})
    xs = sorted({min(max(0, round(w * f) - c // 2), w - c) for f in (0.3, 0.7)})
    zero = torch.zeros(1, len(adapter_names(model)))
    probs, light_in, light_out = [], 0.0, 0.0
    with torch.no_grad(), blend(model, zero.to(next(model.parameters()).device)):
        for y in ys:
            for x in xs:
                tile = rgb[:, y : y + c, x : x + c]
                out = restore(model, tile, explain=True)
                probs.append(out.seg_probs.mean((1, 2)))
                light_in, light_out = light_in + float(tile.mean()), light_out + float(out.image.mean())
    return torch.stack(probs).mean(0), light_out / max(light_in, 1e-4)


def head_means(model: AirUNet, rgb: torch.Tensor, crop: int = 128) -> torch.Tensor:
    """Mean probability of each class [C] from the segmentation head over four native-resolution crops of
    ``rgb`` [3, H, W] (:func:`crop_pass`), adapters off."""
    return crop_pass(model, rgb, crop)[0]


def fallback_share(w_unless: float, p_unless: float, p_clean: float, rule: Fallback, veiled: float = 0.0,
                   p_haze: float = 1.0, dense: float = 0.0) -> float:
    """How much of the unassigned weight the fallback adapter takes, 0–1: none on a photo that looks dark
    (``w_unless``, ``p_unless``), and none on one that looks clean as a whole to the head with the adapters
    off (``p_clean``, :func:`core.restore.clean_share`), which the gate then gives back as it came: the
    fallback would only move the head's judgement of it.

    Nor on a photo whose darkest parts a veil lifts (``veiled``, the photo's :func:`veil`, over ``rule.veil_ramp``)
    where the head sees haze (``p_haze``, its mean haze probability, over ``rule.haze_ramp``; blur lifts a bright
    photo's veil too, ``core.floors.HAZE``): light haze, to which the estimator gives little weight (plugin haze at
    0.15: 0.01–0.86), so that most of the weight was unassigned and went to the noise adapter, which undoes the base's
    dehazing as it does on a hazy, noisy photo (:class:`Yield`). 12 held-out CBSD68 photos (#12–23) a row, before →
    after: plugin haze at 0.15 24.42 → 25.13 dB, 0.3 24.67 → 25.29, 0.5 +0.09, 0.8 −0.02; a thin, even veil
    (``flat_haze``) at 0.5 +0.33, 0.8 +0.72; haze+JPEG +0.36, haze+blur +0.34, haze+rain +0.07; no change on
    haze+noise, snow, blur, rain (one photo in a row loses up to 1.6 dB where the noise adapter happened to help;
    NOTES.md). Except under dense fog (``dense``, the photo's :func:`fog_density`, over ``rule.dense_ramp``), where
    nothing is left to recover and the base paints blotches over the featureless fog: there the noise adapter's
    pull towards the input keeps them fainter (fishers.jpg, looked at)."""
    by_estimator = max(0.0, 1.0 - w_unless / rule.est_limit)
    by_head = 1.0 - linear_ramp(p_unless, *rule.head_ramp)
    by_veil = 1.0
    if rule.veil_ramp is not None:
        by_veil -= (linear_ramp(veiled, *rule.veil_ramp) * linear_ramp(p_haze, *rule.haze_ramp)
                    * (1.0 - linear_ramp(dense, *rule.dense_ramp)))
    return by_estimator * by_head * by_veil * (1.0 - clean_share(p_clean))


def apply_fallback(model: AirUNet, rgb: torch.Tensor, weights: torch.Tensor, adapters: list[str],
                   rule: Fallback, head: Callable[[], torch.Tensor] | None = None) -> tuple[torch.Tensor, float]:
    """``weights`` [K] (in ``adapters`` order) with the fallback's part added, and that part (0 when the
    estimator assigned everything, or the photo looks dark). ``head``: returns :func:`head_means` of ``rgb``
    (computed here with ``rule.crop`` when not given), for a caller that needs them too."""
    rest = max(0.0, 1.0 - float(weights.clamp(min=0).sum()))
    w_unless = float(weights[adapters.index(rule.unless)])
    if rest == 0.0 or w_unless >= rule.est_limit:  # nothing to give, or dark: skip the head's crops
        return weights, 0.0
    p = head() if head is not None else head_means(model, rgb, rule.crop)
    classes = model.config.classes
    # What the estimator is sure of is not left to chance: the rest counts in proportion to its doubt.
    sure = max((float(v) for k, v in enumerate(weights) if adapters[k] != rule.adapter), default=0.0)
    p_haze = float(p[classes.index("haze")]) if "haze" in classes else 0.0
    # The veil counts only where the head sees haze: measured only there (one dark channel for both, ~0.1 s at 3 MP).
    dark = dark_channel(rgb) if rule.veil_ramp is not None and p_haze > rule.haze_ramp[0] else None
    veiled, dense = (veil(rgb, dark=dark), fog_density(rgb, dark=dark)) if dark is not None else (0.0, 0.0)
    extra = rest * (1.0 - min(1.0, max(0.0, sure))) * fallback_share(
        w_unless, float(p[classes.index(rule.unless)]), float(p[classes.index("clean")]), rule, veiled, p_haze, dense)
    out = weights.clone()
    out[adapters.index(rule.adapter)] += extra
    return out, extra


@dataclass(frozen=True)
class Detected:
    """``adapter`` weighted by ``measure(rgb)`` [3, H, W] → a number, mapped onto 0–1 by a linear ``ramp``
    (0 at or below the first value, 1 at or above the second). The default: the JPEG adapter by the 8×8
    grid's blockiness (:func:`core.blockiness.blockiness`), 0 up to 1.3, 1 from 1.9. Photos that never went
    through JPEG measure 1.0–1.1, CBSD68's (JPEG-born, high quality) 1.06–1.37 (median 1.18); libjpeg at
    quality 90 1.06–1.5, 70 1.4–2.5, 50 1.9–3.6, 20 from 4.2; PolyU's camera JPEGs 1.9–2.8. Noise saved as a
    JPEG hides the grid (noise 0.5 then JPEG 0.5: 1.36–1.76), so the measure is :func:`core.blockiness.compression`,
    which also reads the DCT's quantization on the grid: ``benchmarks/blending.py``, noise then JPEG 24.50 →
    25.09 dB, every other row (clean photos and PolyU included) within 0.005 dB (NOTES.md).

    Not on a photo with a scene-wide degradation: trained on JPEGs of clean photos, the adapter undoes the
    base's correction of haze, rain and low light when blended with their adapters (12 CBSD68 photos, haze
    0.5 then libjpeg q60: 16.2 → 11.5 dB; rain: 24.1 → 21.8; low light then q85: 21.7 → 21.1). So the weight
    falls to 0 over ``head_ramp`` of the segmentation head's largest mean probability of a class in
    ``unless_head`` (:func:`head_means`, adapters off; 12 CBSD68 photos at libjpeg q30 read ≤ 0.13 there,
    rain then q60 ≥ 0.24 but for one photo whose rain the adapter left alone, haze then q60 ≥ 0.65), and
    where the estimator's weight of an adapter in ``unless_estimated`` reaches ``est_limit`` (the head reads
    dark JPEGs as clean, p_clean 0.97; the estimator does not). An adapter trained over those degradations
    instead (``--over haze,rain,lowlight``, 35% of crops, 500 more steps) lost 2.6 dB on JPEG alone.

    And it makes way for four adapters (``yields_to``: each with a ramp over the estimator's weight ``w`` of that
    adapter; the measured weight is scaled by ``1 − ramp(w)``). realnoise (ramp 0 → 1, so ``1 − w``) undoes
    compression already: the bundled realnoise was learnt from PolyU's camera JPEGs (blockiness 1.9–2.8). On 21
    held-out PolyU photos (unseen scenes) realnoise alone gives 37.79 dB, and with the jpeg adapter on top at the
    measured weight (0.82 on average) 37.01: the two clean the same blocks twice. Scaled, the pipeline went 37.30
    → 37.52 (input 36.32), against 36.90 with no jpeg adapter at all: where the estimator doubts realnoise
    (weight 0.41 on average) the jpeg adapter still earns its share. Blur (ramp 0.35 → 0.6): trained on JPEGs
    of sharp photos, the jpeg adapter undoes the deblurring on a blurred JPEG (12 CBSD68 photos, blur then JPEG:
    the blur adapter at weight 1 alone 23.38 dB, the pipeline with the jpeg adapter at its measured weight 23.00,
    input 22.97). A heavy JPEG reads a little blurred to the estimator, so the ramp starts above what JPEGs of
    sharp photos get (40 CBSD68 photos at libjpeg q15, q25, q40 and the plugin's codec at 0.5 and 0.9: blur ≤
    0.35, nine in ten ≤ 0.17; the test's q20 cat 0.23), while blurred JPEGs get 0.43 at the median and a
    quarter of them ≥ 0.65 (NOTES.md). Rain and snow (ramp 0.3 → 0.5): the head's rain test misses some rainy
    JPEGs and has no snow class; with these yields, rain+jpeg 26.13 → 26.66, snow+jpeg 24.72 →
    25.10, rain or snow then libjpeg q60 +0.97 / +0.71, libjpeg q20–q75 alone −0.03 to 0 (a JPEG reads rain
    ≤ 0.37, CBSD68 #0–11 and #24–35; NOTES.md)."""

    adapter: str = "jpeg"
    measure: Callable[[torch.Tensor], float] = compression
    ramp: tuple[float, float] = (1.3, 1.9)
    unless_head: tuple[str, ...] = ("haze", "rain", "lowlight")
    head_ramp: tuple[float, float] = (0.1, 0.2)
    unless_estimated: tuple[str, ...] = ("lowlight",)
    est_limit: float = 0.1
    # (adapter, lo, hi): the measured weight is scaled by 1 − ramp(w, lo, hi) of that adapter's estimated weight w
    yields_to: tuple[tuple[str, float, float], ...] = (("realnoise", 0.0, 1.0), ("blur", 0.35, 0.6), ("rain", 0.3, 0.5),
                                                       ("snow", 0.3, 0.5))
    # The segmentation head has no class for it and reads it as clean (JPEG at quality 50: mean p_clean
    # 0.7), so the clean-pixel gate would keep most of the input: the weight lifts that share of the gate.
    releases_gate: bool = True
    why: str = ("how far the 8×8 JPEG grid stands out, or the codec's zeroed frequencies on it; 0 on a photo with "
                "haze, rain or low light, whose correction that adapter would undo; less the realnoise weight, whose "
                "adapter cleans camera JPEGs; 0 on a photo the estimator finds blurred, rainy or snowy, whose "
                "correction it would undo")

    def measured(self, rgb: torch.Tensor) -> float:
        """The weight from the measurement alone, 0–1."""
        return linear_ramp(self.measure(rgb), *self.ramp)

    def share(self, estimated: dict[str, float], head: dict[str, float]) -> float:
        """How much of the measured weight stands, 0–1, from the estimator's weights and the head's mean class
        probabilities (:func:`head_means`) by name."""
        if any(estimated.get(n, 0.0) >= self.est_limit for n in self.unless_estimated):
            return 0.0
        p = max((head.get(c, 0.0) for c in self.unless_head), default=0.0)
        share = 1.0 - linear_ramp(p, *self.head_ramp)
        for n, lo, hi in self.yields_to:
            share *= 1.0 - linear_ramp(estimated.get(n, 0.0), lo, hi)
        return share


def dark_channel(rgb: torch.Tensor, patch: int = 15, side: int = 640) -> torch.Tensor:
    """The dark channel of a photo [3, H, W] (He, Sun and Tang 2009: the minimum over colours and a ``patch`` px
    square), the photo first reduced to ``side`` px on its long side; flattened."""
    x = rgb.float()
    if max(x.shape[-2:]) > side:
        x = torch.nn.functional.interpolate(x[None], scale_factor=side / max(x.shape[-2:]), mode="area")[0]
    d = x.amin(0)[None, None]
    return (-torch.nn.functional.max_pool2d(-d, patch, 1, patch // 2)).flatten()


def veil(rgb: torch.Tensor, patch: int = 15, q: float = 0.1, side: int = 640, *, dark=None) -> float:
    """How far a veil lifts the darkest parts of a photo [3, H, W]: the ``q`` quantile of its :func:`dark_channel`.
    A clear photo has shadows or saturated colours somewhere, so its dark channel is near 0 over a tenth of it;
    haze adds airlight everywhere. First 24 photos of each set: real/hazy 0–0.44 (10 above 0.18), CBSD68 ≤ 0.17,
    PolyU ≤ 0.12, RNI6 ≤ 0.14, DICM 0, real/snow ≤ 0.18. Fog over dark foreground silhouettes reads 0: this finds
    part of real fog, never a clear photo. ``dark``: the photo's dark channel, where the caller has it already."""
    return float((dark_channel(rgb, patch, side) if dark is None else dark).quantile(q))


def fog_density(rgb: torch.Tensor, level: float = 0.7, patch: int = 15, side: int = 640, *, dark=None) -> float:
    """The share of a photo [3, H, W] whose :func:`dark_channel` is above ``level``: how much of it a dense fog
    (or a bright, colourless scene) covers. real/hazy's fishers.jpg 0.62, its other 23 photos ≤ 0.26; plugin haze
    on 24 CBSD68 photos at 0.15 ≤ 0.35, 0.3 ≤ 0.42, 0.5 ≤ 0.49, 0.8 up to 0.79. ``dark``: as for :func:`veil`."""
    return float(((dark_channel(rgb, patch, side) if dark is None else dark) > level).float().mean())


@dataclass(frozen=True)
class Yield:
    """An estimated adapter that makes way for another: ``adapter``'s weight (the fallback's part included) times
    ``1 − ramp(w)``, with ``w`` the weight of ``to`` and ``ramp`` linear (0 at or below the first value, 1 at or
    above the second).

    The default: noise makes way for haze. The haze adapter, blended with the haze weight the estimator gives a
    hazy, noisy photo (0.90 on average), restores it better on its own; the noise weight beside it (0.31) costs
    it 1.5 dB (12 CBSD68 photos, haze+noise: noise weight as estimated 17.06, ×0.6 17.92, ×0.3 18.33,
    0 18.53). With the noise weight at 0, hazy photos with rain, blur or JPEG gain 0.1–0.25 dB too (NOTES.md).
    The estimator gives 21 of 24 real foggy photos a haze weight of 0.00–0.17, so the rule leaves them nearly
    alone.

    A yield to an adapter a detection rule weights (:class:`Detected`: jpeg) runs once that weight is measured, after
    the estimator's and the floors' (``registry.restorer.Restorer.route``), and scales a floor's raise with the rest
    of the weight (``core.floors.Floor.makes_way_for``). The second rule in force: noise makes way for jpeg. The jpeg
    adapter learnt noise under the codec (``core.families.noisy_jpeg``); the noise adapter beside it, at the weight
    the estimator gives JPEGs (0.3–0.5 on clean ones, mostly what it leaves unassigned, :class:`Fallback`), smooths
    twice. 24 CBSD68 photos (#0–11, #24–35), PIL's libjpeg, side by side: clean q20 +0.06 dB, q40 +0.11, q75 +0.15,
    q50 4:4:4 +0.07; luma noise σ 20 then q75 +0.19, Poisson–Gaussian camera noise then q60 +0.17, q85 +0.05 (one
    photo −0.63); Gaussian σ 10 then q75 −0.004; the jpeg plugin +0.16; held-out PolyU +0.02; q90, where the jpeg
    weight is low (0.1), and clean photos about the same (NOTES.md). Not on a grey photo (``colour_only``): there the
    noise weight goes to the lumanoise adapter, learnt on grey photos (``core.floors.Floor.moves_colourless``), while
    the jpeg adapter learnt colour ones; making way for it there was mixed (RNI6's Chupa_Chups, jpeg 0.92, would
    keep 0.06 of its 0.74). On a ramp of the jpeg weight, from none at 0.5 to all of it at 1: under a light codec
    (q90, jpeg weight 0.1–0.4) most of the noise is still there, and it is the noise adapter's to take. Beside the plain
    1 − jpeg, 24 photos: luma noise σ 10 then q90 31.03 → 31.31 dB, σ 20 then q75 −0.02, camera noise then q85 +0.05,
    clean JPEGs q20–q75 the same to 0.001 dB (NOTES.md)."""

    adapter: str = "noise"
    to: str = "haze"
    ramp: tuple[float, float] = (0.0, 1.0)
    why: str = "1 − the haze weight; the haze adapter restores a hazy, noisy photo better without it"
    colour_only: bool = False  # not on a photo without colour (core.floors.colourless)

    def applies(self, adapters: list[str]) -> bool:
        return {self.adapter, self.to} <= set(adapters)

    def factor(self, weights: torch.Tensor, adapters: list[str]) -> float:
        """What the adapter's weight is multiplied by, 0–1, for ``weights`` [K] in ``adapters`` order."""
        return 1.0 - linear_ramp(float(weights[adapters.index(self.to)]), *self.ramp)

    def apply(self, weights: torch.Tensor, adapters: list[str]) -> torch.Tensor:
        """``weights`` [K] (in ``adapters`` order) with the adapter's weight scaled down."""
        out = weights.clone()
        out[adapters.index(self.adapter)] *= self.factor(weights, adapters)
        return out


#: The yield rules of the pipeline (``registry.restorer.Restorer.yields``), applied after the fallback and floors
#: (``core.floors``); one to a detected adapter (jpeg) once its weight is measured.
YIELDS: tuple[Yield, ...] = (
    Yield(),
    Yield(to="jpeg", ramp=(0.5, 1.0), colour_only=True,
          why="2 × (1 − the jpeg weight), the jpeg weight being over 0.5; the jpeg adapter learnt noise under the "
              "codec, and the noise adapter on top smooths twice"),
)


@dataclass(frozen=True)
class Temper:
    """An estimated adapter's weight times ``1 − cut · ramp(gain)``, where ``gain`` is how much the base alone
    brightens the photo (:func:`crop_pass`: its output's mean over the input's, adapters off) and ``ramp`` is
    linear (0 at or below the first value, 1 at or above the second).

    The default: the low-light weight, cut by up to a fifth where the base alone brightens the photo 2–4 fold.
    The estimator gives a dark photo a low-light weight of about 0.75 whether the base already corrects it or not.
    Where the base brightens it threefold or more, the adapter at that weight on top of it does worse than at
    0.8 of it (CBSD68, 12 photos a row, held out from the choice of ramp: lowlight +0.31 dB, blur+lowlight +0.16,
    rain+lowlight +0.19, snow+lowlight +0.12, no row lower; NOTES.md). It is not the exposure: the output's mean
    brightness moves by at most 0.01. Where the base leaves a dark photo as it is (a JPEG-compressed one: gain
    0.97–1.08), the adapter does all the brightening and keeps its whole weight."""

    adapter: str = "lowlight"
    ramp: tuple[float, float] = (2.0, 4.0)
    cut: float = 0.2
    why: str = ("the base alone already brightens this photo, and less of the low-light adapter on top restores "
                "such photos better")

    def factor(self, gain: float) -> float:
        """What the adapter's weight is multiplied by, 0–1, for a photo the base alone brightens ``gain``-fold."""
        return 1.0 - self.cut * linear_ramp(gain, *self.ramp)


#: The temper rules of the pipeline (``registry.restorer.Restorer.tempers``), applied after the yields.
TEMPERS: tuple[Temper, ...] = (Temper(),)


@dataclass(frozen=True)
class Sequel:
    """A second pass, in the physical order of a stack: where the estimator gives one of ``after`` a weight of at
    least ``at``, the restored photo is routed once more (estimator, fallback and every rule, on the first pass's
    output) and restored again. Never a third pass.

    Haze and low light cover a whole photo and hide what lies under them: the estimator gives a hazy, rainy photo
    haze 0.71 and rain 0.17, a dark, rainy one low light 0.71 and rain 0.05, and one pass with those weights removes
    the veil or the dark and leaves most of the rain. On the first pass's output the estimator sees the rain (0.26
    and 0.47). ``benchmarks/blending.py`` (12 CBSD68 photos per stack at severity 0.5), one pass → two: haze+rain
    12.83 → 16.99 dB, haze+lowlight 14.08 → 15.74, rain+lowlight 19.77 → 21.46, haze+lowlight+noise 11.55 → 12.51;
    no row of the single, stacked, real or clean tables lower by 0.001 dB; haze or low light alone unchanged: the
    first pass's output looks clean and the gate keeps it. A second pass on every photo would cost clean photos
    0.45 dB, blur 0.10 and JPEG 0.15 (a probe, NOTES.md), hence ``after``. Such photos take twice as long."""

    after: tuple[str, ...] = ("haze", "lowlight")
    at: float = 0.3

    def applies(self, weights: torch.Tensor, adapters: list[str]) -> bool:
        """Whether weights [K] (in ``adapters`` order), routed by the estimator, call for a second pass."""
        return any(name in adapters and float(weights[adapters.index(name)]) >= self.at for name in self.after)


#: The pipeline's second-pass rule (``registry.restorer.Restorer.sequel``); None would restore once.
SEQUEL: Sequel | None = Sequel()


#: The detection rules of the pipeline (``registry.pipeline.Restorer.detected``). Their adapters are left out
#: of the estimator's outputs when one is trained (``air train estimator``, ``air add-degradation``), so the
#: rule keeps deciding for them.
DETECTED: tuple[Detected, ...] = (Detected(),)


def ruled(rules: tuple[Detected, ...] = DETECTED, floors: tuple | None = None) -> set[str]:
    """The adapters a rule weights rather than the estimator: a detection rule's, and a floor's own
    (``core.floors.Floor.moves_to``; ``floors`` default to the pipeline's, ``core.floors.FLOORS``)."""
    from .floors import FLOORS, own_adapters  # floors reads the veil from here

    return {d.adapter for d in rules} | own_adapters(FLOORS if floors is None else floors)


def estimated(names: list[str], rules: tuple[Detected, ...] = DETECTED) -> list[str]:
    """``names`` without the adapters a rule weights (:func:`ruled`): those an estimator is trained for."""
    detected = ruled(rules)
    return [n for n in names if n not in detected]


@dataclass(frozen=True)
class KeepDark:
    """Where the estimator finds a photo exposed as meant, the clean-pixel gate keeps the pixels the head reads as
    low light too: ``also_clean = {cls: share}`` for ``core.restore.restore``, with ``share`` falling from 1 to 0
    over ``ramp`` of the estimator's weight for ``adapter``.

    The head judges low light pixel by pixel, and the base brightens what it marks: a night sky, a black
    background. The estimator judges the photo as a whole and was taught dark scenes as not under-exposed
    (``air train estimator --dark-share``). Where the two disagree the photo was dark on purpose, and the base's
    brightening is a tone shift: DICM's night photo of the Paris Las Vegas tower (estimator 0.002, the head's
    mean low light 0.47) came back with its black sky a textured dark green, NIQE 3.36 → 3.66. No photo
    with low light in it gets a weight under 0.27 (12 CBSD68 photos under each of the ten synthetic stacks with
    low light; LOL15's real dark photos 0.46–0.86), and the ramp ends at 0.1 (NOTES.md)."""

    adapter: str = "lowlight"  # an adapter name and a segmentation class
    ramp: tuple[float, float] = (0.02, 0.1)
    # With it, the share also falls from 1 to 0 over this ramp of the photo's :func:`veil` (:class:`KeepHaze`).
    veil_ramp: tuple[float, float] | None = None

    def applies(self, model: AirUNet, adapters: list[str]) -> bool:
        return self.adapter in adapters and self.adapter in model.config.classes

    def also_clean(self, weight: float, rgb: torch.Tensor | None = None) -> dict[str, float]:
        """The gate's ``also_clean`` for the estimator's ``weight`` of the adapter on the photo ``rgb`` [3, H, W]
        (needed with a ``veil_ramp``): {} from the ramp's end."""
        share = 1.0 - linear_ramp(weight, *self.ramp)
        if share > 0 and self.veil_ramp is not None:
            if rgb is None:
                raise ValueError(f"{type(self).__name__} measures the photo's veil: pass the photo")
            share *= 1.0 - linear_ramp(veil(rgb), *self.veil_ramp)
        return {self.adapter: share} if share > 0 else {}


@dataclass(frozen=True)
class KeepHaze(KeepDark):
    """:class:`KeepDark`'s rule for haze: where neither the estimator nor the photo's darkest parts show haze, the
    clean-pixel gate keeps the pixels the head reads as haze too, ``share`` falling from 1 to 0 over ``ramp`` of the
    estimator's haze weight and over ``veil_ramp`` of :func:`veil` (the photo's darkest parts lifted, as haze lifts
    them; the ramp of the haze floor, ``core.floors.HAZE``: 0.18 is the highest veil measured on a clear photo).

    The base alone dehazes whatever the head marks, and on such photos that is a guess, mostly a bad one: it darkens
    a bright cloud, snowfield or defocused background to slate grey (DICM/04's clouds, real/snow's JSTASR_testImg_3,
    CBSD68's penguin under light rain: 33.0 dB in, 31.0 out), and paints blotches and blocks over real fog seen
    behind dark foreground (real/hazy foggy_oaks, marin-headlands-bridge: veil 0 and 0.09). Looked at, every one.
    Light synthetic haze, which the estimator also gives little weight (plugin haze at 0.15: 0.03–0.9), lifts the
    veil (0.25 and up on CBSD68) and is dehazed nearly as before (−0.15 dB on 12 held-out photos); with the
    estimator's weight alone the rule cost it 3.4 dB (NOTES.md)."""

    adapter: str = "haze"
    ramp: tuple[float, float] = (0.05, 0.2)
    veil_ramp: tuple[float, float] | None = (0.18, 0.3)
