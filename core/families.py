"""Widened degradation families: the training recipe of base v2.

Base v1 learned from one synthesizer per class and came to rely on its quirks (it darkens every
photo it thinks is rainy, leaves camera noise and JPEG blocks alone). Here each segmentation class is
a *family*: the built-in synthesizer plus other ways the same degradation shows up in real photos,
drawn per image, and any region may get a second, milder degradation stacked on top (noise, camera
noise or JPEG, as a camera pipeline adds them). Labels stay the class of the first degradation.

Recipes: ``widened`` (chunks 1–2 of base v2) and ``widened2``, which also darkens a quarter of the
clean targets (:func:`vary_exposure`) and keeps ``dim`` clearly dark. ``widened`` taught the base to
brighten dim, noisy real photos (PolyU −11 dB against v1), because near-identity ``dim`` crops with
camera noise looked exactly like them. ``widened2`` did not cure it (PolyU −10.3 dB after chunk 4):
its low-light family still reached a mean brightness of 0.16–0.29 (75th–95th percentile on
CBSD432 crops), the band of its own dim clean targets (5th–25th: 0.15–0.23) and of PolyU's noisy
indoor shots (0.20–0.27). ``widened3`` draws every low-light variant at severity ≥ 0.5, which ends
the family at 0.16–0.21 (95th percentile) while still covering LOL (all < 0.1) and the darker half
of DICM (0.02–0.18). It still refused PolyU after chunk 6 (−8.88 dB): the net brightened noisy photos up
to a mean of 0.27, because every variant dims *relative* to its crop and a bright crop stays near
0.15–0.17 whatever the floor. ``widened4`` therefore exposes every low-light crop down to an absolute
mean brightness of 0.02–0.12 (:data:`DARK_MEANS`; LOL is all < 0.1), in linear light after its variant,
so nothing the base learns to brighten is as bright as a dim photo it must leave alone.
``widened5`` adds what real fog showed: base v1 and the widened4 candidate paint blotches or dark blots over
featureless fog (real/hazy's fishers, foggyHouse; NOTES.md), JPEG's 8×8 steps amplified by dehazing plus texture
invented where nothing is left. Its haze family is JPEG-compressed after the haze on half the crops, and a
quarter of the clean targets get a flat, bright sky (:func:`with_sky`), so a featureless bright region must come
back featureless. A haze adapter trained on such skies on base v1 kept them flat, though not real fog (NOTES.md).
``widened6`` keeps low light to whole crops: Degradation CutMix pasted it as boxes and blobs among lit pixels (and
lit boxes over it), so the base learned to brighten any patch it reads as dark and noisy. The widened4 candidate's
gain on real photos follows its head's per-pixel low-light probability (correlation 0.94–0.96 on PolyU's dim door
and classroom) and turns a dim wall or a row of dark benches into yellow blotches (9–10 dB against v1's 38; NOTES.md).
An exposure covers the whole frame, so a low-light crop is dark all over, with no region pasted in or over it
(:data:`WHOLE_CROP`); a dark patch beside lit pixels is then always a shadow, whose noise is the noise class's.
It also reorders the colour channels of half the clean crops (:data:`COLOUR_SHUFFLE`): the training photos' green
shadows taught the low-light adapter to paint dark regions green, and its retraining on shuffled crops halved that
(NOTES.md); the base adds the rest.
``widened7`` adds luminance noise (:func:`~air_restore.core.degradations.mono_noise`, the same in every channel) to the
noise family and turns 15% of the clean crops grey (:data:`GREY`). Base v1 finds noise by its colour: its head reads
a noisy grey photo as clean and its output leaves the noise (grey CBSD68 photos at σ 25: 20.32 dB in, 21.15 out
without the gate; RNI6, real noisy photos, are all grey). A noise adapter trained on both gained +6 dB there on v1
(NOTES.md), but the head it reads through must learn it too.
"""

from __future__ import annotations

from functools import partial
from typing import Sequence

import torch

from . import degradations as D
from .cutmix import Synthesizer


def _rain_over_haze(x: torch.Tensor, g: torch.Generator, s: torch.Tensor) -> torch.Tensor:
    return D.rain(D.haze(x, g, 0.5 * s), g, s)


def _haze_over_noise(x: torch.Tensor, g: torch.Generator, s: torch.Tensor) -> torch.Tensor:
    return D.noise(D.haze(x, g, s), g, 0.5 * s)


def _blur_then_noise(x: torch.Tensor, g: torch.Generator, s: torch.Tensor) -> torch.Tensor:
    """Blur, then the sensor's noise on top (σ 1–5 levels): a shaken photo is noisy too, and deblurring that
    has only seen noise-free blur sharpens the noise."""
    return D.noise(D.blur(x, g, s), g, D.uniform(0.02, 0.1, (x.shape[0],), g, x.device))


def _dark_and_noisy(x: torch.Tensor, g: torch.Generator, s: torch.Tensor) -> torch.Tensor:
    return D.camera_noise(D.dim(x, g, s), g, 0.6 * s)


def _at_least(x: torch.Tensor, g: torch.Generator, s: torch.Tensor, *, fn: Synthesizer, floor: float) -> torch.Tensor:
    """``fn`` with its severity mapped from [0, 1] onto [floor, 1]."""
    return fn(x, g, floor + (1 - floor) * s)


#: class → (variants, probabilities); the built-in synthesizer comes first in each family.
FAMILIES: dict[str, tuple[tuple[Synthesizer, ...], tuple[float, ...]]] = {
    "noise": ((D.noise, D.camera_noise, D.jpeg), (0.45, 0.35, 0.20)),
    "blur": ((D.blur, D.gaussian_blur), (0.75, 0.25)),
    "haze": ((D.haze, D.flat_haze, _haze_over_noise), (0.55, 0.25, 0.20)),
    "rain": ((D.rain, D.drizzle, _rain_over_haze), (0.50, 0.30, 0.20)),
    "lowlight": ((D.lowlight, D.dim, _dark_and_noisy), (0.55, 0.25, 0.20)),
}

#: Recipe widened3: the low-light family only clearly dark (severity ≥ LOWLIGHT_FLOOR; see above).
LOWLIGHT_FLOOR = 0.5
FAMILIES_3 = {
    **FAMILIES,
    "lowlight": (tuple(partial(_at_least, fn=fn, floor=LOWLIGHT_FLOOR) for fn in FAMILIES["lowlight"][0]),
                 FAMILIES["lowlight"][1]),
}

#: Recipe widened4: widened3's low-light variants, then exposed down to an absolute mean brightness
#: between these bounds (severity 0 → the brighter one, 1 → the darker), never brightened.
DARK_MEANS = (0.12, 0.02)


def _to_dark_mean(y: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Each image of ``y`` exposed down in linear light until its mean sRGB brightness is at most the
    target of its severity ``s`` (:data:`DARK_MEANS`); an image already that dark is left as it is."""
    bright, dark = DARK_MEANS
    target = (bright + (dark - bright) * s.clamp(0, 1)).view(-1)
    lin = D.srgb_to_linear(y.clamp(0, 1))
    gain = torch.ones_like(target)
    for _ in range(3):  # sRGB is close to a 2.2 power: three fixed-point steps land within 1% of the target
        mean = D.linear_to_srgb(lin * gain.view(-1, 1, 1, 1)).mean((1, 2, 3)).clamp_min(1e-4)
        gain = (gain * (target / mean).pow(2.2)).clamp(max=1.0)
    return D.linear_to_srgb(lin * gain.view(-1, 1, 1, 1)).clamp(0, 1)


def _absolutely_dark(x: torch.Tensor, g: torch.Generator, s: torch.Tensor, *, fn: Synthesizer) -> torch.Tensor:
    return _to_dark_mean(fn(x, g, s), D.severity_tensor(s, x.shape[0], x.device))


FAMILIES_4 = {
    **FAMILIES_3,
    "lowlight": (tuple(partial(_absolutely_dark, fn=fn) for fn in FAMILIES_3["lowlight"][0]),
                 FAMILIES_3["lowlight"][1]),
}


def then_jpeg(fn: Synthesizer, p: float = 0.5, max_severity: float = 0.6, codec: Synthesizer = D.jpeg) -> Synthesizer:
    """``fn``, then JPEG compression by ``codec`` on a random share ``p`` of the images (severity 0 →
    ``max_severity``: quality 95 → about 43), as a phone or camera saves a photo."""

    def synth(x: torch.Tensor, g: torch.Generator, s: torch.Tensor) -> torch.Tensor:
        y = fn(x, g, s).clamp(0, 1)
        b = y.shape[0]
        pick = torch.rand((b,), generator=g, device=y.device) < p
        q = max_severity * torch.rand((b,), generator=g, device=y.device)
        return torch.where(pick.view(-1, 1, 1, 1), codec(y, g, q), y)

    return synth


#: Recipe widened5: widened4, with its haze family JPEG-compressed afterwards on half the crops (the torch codec,
#: which runs where the batch is), and flat skies among the clean targets (:data:`SKY_TARGET_RECIPES`).
FAMILIES_5 = {
    **FAMILIES_4,
    "haze": ((then_jpeg(partial(D.pick_per_image, variants=FAMILIES_4["haze"][0], probs=FAMILIES_4["haze"][1])),),
             (1.0,)),
}

#: Recipe widened7: widened5's families (as widened6) with luminance noise in the noise family, a fifth of it.
FAMILIES_7 = {
    **FAMILIES_5,
    "noise": ((D.noise, D.camera_noise, D.jpeg, D.mono_noise), (0.35, 0.30, 0.15, 0.20)),
}

#: The recipes built on these families, and the CutMix shares they train with (15% of backgrounds and
#: regions clean, 30% of regions with a second degradation stacked).
RECIPE_FAMILIES = {"widened": FAMILIES, "widened2": FAMILIES, "widened3": FAMILIES_3, "widened4": FAMILIES_4,
                   "widened5": FAMILIES_5, "widened6": FAMILIES_5, "widened7": FAMILIES_7}
RECIPES = tuple(RECIPE_FAMILIES)
#: Recipes that darken a share of the clean targets (:func:`vary_exposure`).
DIM_TARGET_RECIPES = ("widened2", "widened3", "widened4", "widened5", "widened6", "widened7")
#: Recipes that give a share of the clean targets a flat sky (:func:`with_sky`).
SKY_TARGET_RECIPES = ("widened5", "widened6", "widened7")
#: Classes a recipe draws over whole crops only (:func:`core.cutmix.cutmix_batch`'s ``whole_crop``).
WHOLE_CROP: dict[str, tuple[str, ...]] = {"widened6": ("lowlight",), "widened7": ("lowlight",)}
#: Share of a recipe's clean crops whose colour channels are reordered before anything else (:func:`channel_orders`):
#: half, so the base loses its green shadows (it adds +2 to +4 levels of green to LOL's) but keeps seeing real colour.
COLOUR_SHUFFLE: dict[str, float] = {"widened6": 0.5, "widened7": 0.5}
#: Share of a recipe's clean crops turned grey after that (:func:`luma`): black-and-white photos and scans, whose
#: noise has no colour to be found by.
GREY: dict[str, float] = {"widened7": 0.15}
CUTMIX = {"p_clean": 0.15, "p_stack": 0.3}

#: Share of training crops whose clean target itself is darker (linear exposure × 0.25–1): a dim
#: photo that is otherwise fine must come back as it is, noise removed but not brightened.
DIM_TARGETS = 0.25


def expose(x: torch.Tensor, gain: float | torch.Tensor) -> torch.Tensor:
    """sRGB ``x`` with its light scaled by ``gain`` in linear light (a longer or shorter exposure)."""
    return D.linear_to_srgb(D.srgb_to_linear(x) * gain)


def vary_exposure(clean: torch.Tensor, g: torch.Generator, p: float = DIM_TARGETS, *, lowest: float = 0.25,
                  with_pick: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``clean`` [B, 3, H, W] with a random share ``p`` of the crops exposed down in linear light, by a gain
    drawn uniformly from [``lowest``, 1]; with ``with_pick`` also bool [B]: which crops were."""
    b = clean.shape[0]
    pick = torch.rand((b,), generator=g, device=clean.device) < p
    gain = lowest + (1 - lowest) * torch.rand((b,), generator=g, device=clean.device)
    darker = expose(clean, gain.view(-1, 1, 1, 1))
    out = torch.where(pick.view(-1, 1, 1, 1), darker, clean)
    return (out, pick) if with_pick else out


#: Share of training crops whose clean target gets a flat sky (recipe widened5).
SKY_TARGETS = 0.25


def with_sky(clean: torch.Tensor, g: torch.Generator, p: float = SKY_TARGETS) -> torch.Tensor:
    """``clean`` [B, 3, H, W] with a random share ``p`` of the crops given a flat, bright sky above a soft, wavy
    horizon (at 20–70% of the height from the top): a grey of 0.7–1 with a slight tint and a gentle vertical
    gradient. The degradations come after, so under haze or noise the right answer there is flat: a featureless
    bright region must come back featureless, not blotched (real fog, NOTES.md)."""
    b, _, h, w = clean.shape
    dev = clean.device

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=g, device=dev)

    pick = rand(b) < p
    y = torch.linspace(0, 1, h, device=dev).view(1, 1, h, 1)
    x = torch.linspace(0, 1, w, device=dev).view(1, 1, 1, w)
    cycles, phase = 1 + 3 * rand(b, 1, 1, 1), 2 * torch.pi * rand(b, 1, 1, 1)
    wave = 0.08 * rand(b, 1, 1, 1) * torch.sin(2 * torch.pi * cycles * x + phase)
    sky_mask = torch.sigmoid((0.2 + 0.5 * rand(b, 1, 1, 1) + wave - y) / 0.02)  # 1 above the horizon
    tint = 1 + 0.05 * torch.randn((b, 3, 1, 1), generator=g, device=dev)
    sky = ((0.7 + 0.3 * rand(b, 1, 1, 1)) * tint * (1 + 0.12 * (rand(b, 1, 1, 1) - 0.5) * (2 * y - 1))).clamp(0, 1)
    out = clean * (1 - sky_mask) + sky * sky_mask
    return torch.where(pick.view(-1, 1, 1, 1), out, clean)


#: The six orders of three colour channels (the first keeps them as they are).
CHANNEL_ORDERS = ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))


def channel_orders(b: int, g: torch.Generator, share: float, device=None) -> torch.Tensor:
    """Colour channel orders [B, 3] (long): one of :data:`CHANNEL_ORDERS` for a random ``share`` of ``b`` images,
    the channels as they are for the rest. Apply with ``x[torch.arange(b)[:, None], order]``. Training on shuffled
    channels leaves no colour prior to learn: the training photos' dark regions are green (CBSD432: G − (R + B)/2
    +5.9 levels under luma 25, +8.2 from 25 to 60; Urban100 −0.9 and −1.7), and where darkness and noise destroy a
    region's colour, a network trained on them paints it green (NOTES.md)."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share {share} is not in [0, 1]")
    orders = torch.tensor(CHANNEL_ORDERS, device=device)
    order = orders[torch.randint(0, len(CHANNEL_ORDERS), (b,), generator=g, device=device)]
    keep = torch.rand((b,), generator=g, device=device) >= share
    order[keep] = orders[0]
    return order


def luma(x: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] → the same photos grey: their luma in all three channels."""
    return D.luma_plane(x).expand_as(x)


def grey_picks(b: int, g: torch.Generator, share: float, device=None) -> torch.Tensor:
    """bool [B]: which of ``b`` images to turn grey, a random ``share`` of them."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share {share} is not in [0, 1]")
    return torch.rand((b,), generator=g, device=device) < share


#: What a camera stacks on top of any degradation (severity is drawn by CutMix, at most 0.5).
STACK: tuple[tuple[Synthesizer, ...], tuple[float, ...]] = ((D.noise, D.camera_noise, D.jpeg), (0.4, 0.3, 0.3))


#: JPEG by the plugin's torch codec or by libjpeg (Pillow), drawn per image.
JPEG_EITHER: Synthesizer = partial(D.pick_per_image, probs=(0.5, 0.5), variants=(D.jpeg, D.jpeg_codec))

#: The noise adapter's family: the plugin's noise (per channel) on two crops in three, luminance noise (the same in
#: every channel: grey photos and scans, film grain, a phone's luma noise) on the third. Base v1 and the first noise
#: adapter left luminance noise in place (grey CBSD68 photos at σ 25: 20.49 dB in, 20.50 out of the pipeline; 26.5
#: with this family; NOTES.md).
NOISE_FAMILY: Synthesizer = partial(D.pick_per_image, variants=(D.noise, D.mono_noise), probs=(2 / 3, 1 / 3))

#: Severity range of the noise under :func:`noisy_jpeg` (σ = severity·50 levels of 255: 7.5 to 30).
NOISY_JPEG_NOISE = (0.15, 0.6)


def noisy_jpeg(x: torch.Tensor, g: torch.Generator, severity: torch.Tensor) -> torch.Tensor:
    """:data:`NOISE_FAMILY` at a severity drawn from :data:`NOISY_JPEG_NOISE`, then JPEG at ``severity`` by either
    codec: a phone's or camera's noisy JPEG."""
    lo, hi = NOISY_JPEG_NOISE
    s = lo + (hi - lo) * torch.rand((x.shape[0],), generator=g, device=x.device)
    return JPEG_EITHER(NOISE_FAMILY(x, g, s).clamp(0, 1), g, severity)


#: The low-light adapter's family (``air train adapter lowlight --family``): the plugin's synthesizer at
#: every severity most of the time (what the bundled adapter first learned), dim and dark-and-noisy photos
#: only clearly dark (LOWLIGHT_FLOOR, as in widened3), and half of all crops JPEG-compressed afterwards.
#: Base v1 leaves a dark photo dark once it is JPEG-compressed, even at quality 90 (CBSD68, 8 photos:
#: 9.7 dB in, 9.7 out, against 23.4 without the JPEG step), so the adapter must brighten it itself.
ADAPTER_FAMILIES: dict[str, Synthesizer] = {
    "lowlight": then_jpeg(partial(D.pick_per_image, probs=(0.6, 0.2, 0.2), variants=(
        D.lowlight, partial(_at_least, fn=D.dim, floor=LOWLIGHT_FLOOR),
        partial(_at_least, fn=_dark_and_noisy, floor=LOWLIGHT_FLOOR)))),
    #: The JPEG adapter's family: the plugin's torch codec and libjpeg (Pillow) in equal shares, so the
    #: adapter learns JPEG's artefacts and not one implementation's rounding and chroma filters; and on a fifth of
    #: the crops noise first (:func:`noisy_jpeg`), as a camera saves its sensor noise. Under the codec the noise
    #: adapter and the estimator cannot tell noise from texture, and the pipeline left noisy JPEGs at 25.3 dB
    #: (CBSD68 #12–23, the noise plugin then the JPEG plugin, both 0.5); continued 2,000 steps with these, 27.9,
    #: clean JPEGs within 0.11 dB (NOTES.md). 800 steps cost clean JPEGs at q75 0.44 dB: give it the steps.
    "jpeg": partial(D.pick_per_image, probs=(0.8, 0.2), variants=(JPEG_EITHER, noisy_jpeg)),
    #: The rain adapter's family: the plugin's streaks, then half of all crops JPEG-compressed by either
    #: codec, as a phone saves a rainy photo. Base v1 and the first rain adapter left most compressed streaks
    #: in place (CBSD68, rain 0.5 then JPEG: 22.9 dB from the base against 28.6 uncompressed). A wider family
    #: that also drew drizzle and rain over haze cost rain alone 2.8 dB at weight 1 (NOTES.md).
    "rain": then_jpeg(D.rain, codec=JPEG_EITHER),
    "noise": NOISE_FAMILY,
    #: The blur adapter's family: the widened one (the plugin's camera motion, half of it hand shake since
    #: 2026-12-07, and defocus; Gaussian blur), and on a quarter of the crops faint noise after the blur.
    "blur": partial(D.pick_per_image, probs=(0.55, 0.2, 0.25), variants=(D.blur, D.gaussian_blur, _blur_then_noise)),
}


def adapter_family(name: str) -> tuple[Synthesizer, str]:
    """The synthesizer ``air train adapter NAME --family`` draws from, and its name for the manifest: the
    adapter family of ``name`` where it has one, else its widened family."""
    if name in ADAPTER_FAMILIES:
        return ADAPTER_FAMILIES[name], "adapter"
    return family(name), "widened"


def family(name: str, recipe: str = "widened") -> Synthesizer:
    """The widened synthesizer of one class under ``recipe`` (each image draws one variant)."""
    if recipe not in RECIPE_FAMILIES:
        raise ValueError(f"unknown recipe {recipe!r}; known: {', '.join(RECIPES)}")
    families = RECIPE_FAMILIES[recipe]
    if name not in families:
        raise ValueError(f"no widened family for class {name!r}; known: {', '.join(families)}")
    variants, probs = families[name]
    return partial(D.pick_per_image, variants=variants, probs=probs)


def whole_crop(classes: Sequence[str], recipe: str) -> tuple[int, ...]:
    """The CutMix labels (indices into ``classes``, 0 clean) that ``recipe`` draws over whole crops only."""
    return tuple(classes.index(c) for c in WHOLE_CROP.get(recipe, ()) if c in classes)


def widened(classes: Sequence[str], recipe: str = "widened") -> tuple[list[Synthesizer], Synthesizer]:
    """Synthesizers for ``classes[1:]`` (class 0 is clean) and the stack synthesizer of ``recipe``."""
    return ([family(c, recipe) for c in classes[1:]],
            partial(D.pick_per_image, variants=STACK[0], probs=STACK[1]))
