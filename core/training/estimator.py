"""Phase III: train the tiny estimator (``air train estimator``, and inside ``air add-degradation``).

Every adapter needs examples of its degradation. A :class:`Source` gives them in one of three ways:
a plugin's synthesizer applied to clean crops, real degraded photos (the ``degraded/`` side of the
adapter's pairs), or views stored with the adapter (``air_estimator_views.safetensors``, written by
``air add-degradation`` for adapters trained on real pairs, since those photos are not kept). The pool
holds the estimator's two 64×64 views of each sample as uint8, so it stays small.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from ..estimator import Estimator, EstimatorConfig, paired_views
from ..families import vary_exposure
from ..metrics import quantize8
from . import VIEWS_FILE
from .base import random_crop


@dataclass
class Source:
    """Where the examples of one adapter's degradation come from (exactly one field set)."""

    synth: Callable | None = None
    degraded: Sequence[torch.Tensor] | None = None  # [3, H, W] photos
    views: torch.Tensor | None = None  # uint8 [N, 2, 3, v, v]
    clean: Sequence[torch.Tensor] | None = None  # with ``degraded``: their clean versions (``p_pair_clean``)
    clean_views: torch.Tensor | None = None  # with ``views``: views of those clean versions

    @property
    def kind(self) -> str:
        return "synthesizer" if self.synth else "photos" if self.degraded is not None else "stored views"


#: Share of the training crops degraded by a detected adapter's degradation (``others``, :func:`build_pool`),
#: beside the clean crops' 0.15.
P_OTHER = 0.1

#: ``air add-degradation``'s share of the synthesized views JPEG'd last, targets kept (``p_other_stacked``), so the
#: old routing of JPEGs is taught too. PolyU: low light + JPEG 21.03 dB before, 15.25 after at 0, 20.26 at 0.3.
P_OTHER_STACKED = 0.3

#: ``air add-degradation``'s share of real degraded views exposed down and taught as low light (``p_exposed``), so
#: real low light keeps its routing. PolyU: LOL photos' low light 0.63 → 0.09 without, 0.73 at 0.3 (NOTES.md).
P_EXPOSED = 0.3

#: ``air add-degradation``'s and ``air train estimator``'s share of a real-pairs source's draws that show a crop of
#: a clean version instead, every output off (``p_pair_clean``), so the estimator learns the degradation, not the
#: photos' scenes and cameras. Without them PolyU's clean photos got realnoise 0.91 (NOTES.md).
P_PAIR_CLEAN = 0.3

#: With ``distill`` (:func:`train_estimator`): how much the new outputs' lesson to stay off on the old
#: degradations' views weighs against their other lessons. The snow adapter at weight 0.03 already costs hazy
#: photos 0.1 dB (0.3: 1.6 dB), so a new output that fires faintly on them hurts. ``air add-degradation snow``
#: (same adapter, same views; BENCHMARKS.md): 1 → snow +1.42, haze −0.18; 2 → snow +1.09, haze −0.08 and every
#: old task within 0.1 dB; 5 → snow +0.39, haze −0.05.
OFF_WEIGHT = 2.0


def _u8(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


#: judge(degraded [B, 3, s, s], clean [B, 3, s, s], present [B, K]) → targets [B, K]; see
#: :meth:`air_restore.registry.pipeline.Restorer.best_subsets`.
Judge = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


#: Built-in degradations that are an exposure cut: with ``--distill``, their views stay taught as ``--init``
#: routes them even when their crop is a dark scene (``train_estimator``'s ``dark_keep``).
EXPOSURE = ("lowlight",)


def _centre(x: torch.Tensor, size: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    return x[..., (h - size) // 2 : (h - size) // 2 + size, (w - size) // 2 : (w - size) // 2 + size]


def build_pool(photos: Sequence[torch.Tensor], sources: Sequence[Source], g: torch.Generator, *, batches: int,
               batch_size: int = 16, sizes: tuple[int, int] = (96, 224), view: int = 64, p_mix: float = 0.25,
               min_severity: float = 0.2, p_clean: float = 0.0, judge: Judge | None = None, judge_size: int = 96,
               strength: bool = False, deadline: float | None = None, source_weights: Sequence[float] | None = None,
               others: Sequence[Callable] = (), p_other: float = 0.0, p_dark: float = 0.0,
               dark_floor: float = 0.25, progress: Callable[[int, int], None] | None = None,
               presence: list[torch.Tensor] | None = None,
               darkened: list[torch.Tensor] | None = None,
               judged_sources: Sequence[int] | None = None,
               p_other_stacked: float = 0.0, p_exposed: float = 0.0,
               exposure: Sequence[int] = (), p_pair_clean: float = 0.0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of (views uint8 [B, 2, 3, v, v], multi-hot targets [B, K]). One degradation per sample, or with
    ``p_mix`` two synthesizers stacked (a mixed degradation, both targets on), or with ``p_clean`` a clean
    crop whose targets are all 0 (a photo with nothing wrong must switch every adapter off). With ``judge``,
    the targets of synthesized samples are the adapters that actually restore them (judged on the central
    ``judge_size``² of the crop against its clean version), not every degradation present.
    With ``strength`` (needs ``judge``, which then returns two more columns), targets have two last columns:
    the strength judged by restoration and how much its error costs (the restoration's mean squared change;
    :meth:`~air_restore.registry.pipeline.Restorer.best_subsets`), for synthesized and clean crops alike (a
    clean crop is judged with no degradation present); real photos and stored views get strength 1 at cost 0.
    ``source_weights`` (one per source, default all equal): how often each source is drawn for a sample.
    ``others``: synthesizers of degradations that are no output of the estimator (those a detection rule
    weights, ``core.routing.DETECTED``: JPEG); with ``p_other`` a crop degraded by one of them, all targets 0
    and strength 1 at cost 0 (no strength lesson: the judge would not apply the detected adapter). Without
    them the estimator never sees such a photo and may give it any adapter: retrained with a snow output,
    it gave snow 0.4–0.7 on JPEG photos, −0.19 dB there (``air add-degradation``, BENCHMARKS.md).
    ``progress(done, batches)`` after each batch: synthesizing is most of the estimator's training time.
    ``deadline`` (a ``time.monotonic()`` value): no new batch after it, once 4 are done.
    ``p_dark``: share of the crops cut from ``photos`` (clean, degraded or ``others``) exposed down in linear
    light before anything else is done to them (:func:`~air_restore.core.families.vary_exposure`: a dark scene,
    whose clean version is that dark too). The judge sees the darker crop as the clean one, so brightening it
    counts as an error. Without them, a real camera's dark leather sofa (PolyU, mean 0.15) got low light 0.85
    from the shipped estimator and came out 27 dB below its input (NOTES.md). ``dark_floor``: the darkest
    exposure of a dark scene (gains drawn from [dark_floor, 1]); the low-light plugin cuts the light to 0.3
    and less, so a floor above that keeps the two apart.
    ``presence``: a list that receives, per batch, bool [B, K]: the sources each sample was made from (before
    judging; all False for clean crops and ``others``); ``darkened`` one that receives, per batch, bool [B]: the
    samples whose crop ``p_dark`` exposed down, ``others`` left out (their targets say nothing of darkness: as a
    lesson, a dark JPEG with every output off cost low light + JPEG 0.8 dB, NOTES.md).
    ``judged_sources`` (source indices; without ``strength``): only samples made with one of them, and those
    ``p_dark`` exposed down, are judged; the others keep the degradations present as targets. For a caller
    that replaces those targets anyway (:func:`train_estimator`'s ``distill``): the judge is most of the
    views' time, and the pool's draws do not depend on it, so the lessons taught stay exactly the same.
    ``p_other_stacked``: share of the synthesized samples that also get one of ``others`` last, its targets
    those of what came before (a dark photo saved as a JPEG is still low light). Without them a view pool never
    holds a JPEG of an old degradation, so distillation cannot keep its routing there: ``air add-degradation``
    on PolyU (camera JPEGs, dark ones among them) taught low light off on dark JPEGs, low light + JPEG 21.03 →
    15.25 dB (NOTES.md).
    ``p_exposed``: share of the crops of real degraded photos (a source's ``degraded``) exposed down by one of
    the sources ``exposure`` (indices of exposure cuts, :data:`EXPOSURE`), made by both then, its target that of
    the exposure cut alone: the same camera's noise with less light is low light. Without them the estimator learns the
    new photos' real noise as a sign of "not low light", and real low-light photos, noisy too, lose it
    (``air add-degradation`` on PolyU: LOL photos' low light 0.63 → 0.09, NOTES.md).
    ``p_pair_clean``: share of the draws of a source with ``clean`` (or ``clean_views``) that take a crop of a
    clean version (a stored clean view) instead, every target off and made by no source. Without them nothing
    but the new photos' degradation and their scenes sets them apart, and the estimator may learn the scenes:
    PolyU's clean photos got realnoise 0.91, as many as its noisy ones."""
    if strength and judge is None:
        raise ValueError("strength targets are judged by restoration: give a judge")
    if strength and judged_sources is not None:
        raise ValueError("every strength target is judged: give judged_sources only without strength")
    k = len(sources)
    width = k + 2 * int(strength)
    synth_ids = [i for i, s in enumerate(sources) if s.synth is not None]
    draw = None if source_weights is None else torch.tensor([float(v) for v in source_weights])
    if draw is not None and (draw.shape != (k,) or not bool((draw >= 0).all()) or float(draw.sum()) <= 0):
        raise ValueError(f"source_weights must be {k} non-negative numbers, not all 0")

    def crop(size: int, lesson: bool = True) -> torch.Tensor:
        img = random_crop(photos[int(torch.randint(0, len(photos), (1,), generator=g))], size, g)[None]
        if not p_dark:  # no draw at 0: the pool stays as before
            return img
        img, picked = vary_exposure(img, g, p_dark, lowest=dark_floor, with_pick=True)
        dark[len(vs)] = lesson and bool(picked[0])
        return img

    def stack_other(img: torch.Tensor) -> torch.Tensor:  # ``p_other_stacked``: compression comes last
        if not (others and p_other_stacked and float(torch.rand((1,), generator=g)) < p_other_stacked):
            return img
        synth = others[int(torch.randint(0, len(others), (1,), generator=g))]
        return synth(img, g, min_severity + (1 - min_severity) * torch.rand((1,), generator=g)).clamp(0, 1)

    pool = []
    for _ in range(batches):
        if deadline is not None and len(pool) >= 4 and time.monotonic() >= deadline:
            break
        size = int(torch.randint(sizes[0], sizes[1] + 1, (1,), generator=g))
        vs, ts, judged = [], [], []  # judged: (sample index, degraded crop, clean crop)
        made = torch.zeros(batch_size, k, dtype=torch.bool)
        dark = torch.zeros(batch_size, dtype=torch.bool)
        for _ in range(batch_size):
            if others and float(torch.rand((1,), generator=g)) < p_other:
                img = crop(size, lesson=False)  # its targets are all 0 whatever its exposure: no dark lesson
                synth = others[int(torch.randint(0, len(others), (1,), generator=g))]
                sev = min_severity + (1 - min_severity) * torch.rand((1,), generator=g)
                vs.append(_u8(paired_views(synth(img, g, sev).clamp(0, 1), view)[0]))
                target = torch.zeros(width)
                if strength:
                    target[k] = 1.0
                ts.append(target)
                continue
            if p_clean and float(torch.rand((1,), generator=g)) < p_clean:
                img = crop(size)
                if strength:  # what would the network do to it?
                    js = min(judge_size, size)
                    judged.append((len(vs), _centre(img[0], js), _centre(img[0], js)))
                vs.append(_u8(paired_views(img, view)[0]))
                ts.append(torch.zeros(width))
                continue
            first = (int(torch.randint(0, k, (1,), generator=g)) if draw is None
                     else int(torch.multinomial(draw, 1, generator=g)))
            target = torch.zeros(width)
            target[first] = 1
            if strength:
                target[k] = 1.0  # cost 0: no strength lesson from a photo without its clean version
            src = sources[first]
            paired = src.clean if src.clean is not None else src.clean_views
            if paired is not None and p_pair_clean and float(torch.rand((1,), generator=g)) < p_pair_clean:
                i = int(torch.randint(0, len(paired), (1,), generator=g))
                vs.append(paired[i] if src.clean is None else _u8(paired_views(random_crop(paired[i], size, g)[None],
                                                                                view)[0]))
                target[first] = 0  # nothing wrong with it; made by no source
                ts.append(target)
                continue
            made[len(vs), first] = True
            if src.views is not None:
                vs.append(src.views[int(torch.randint(0, len(src.views), (1,), generator=g))])
                ts.append(target)
                continue
            if src.degraded is not None:
                img = random_crop(src.degraded[int(torch.randint(0, len(src.degraded), (1,), generator=g))], size, g)[None]
                if exposure and p_exposed and float(torch.rand((1,), generator=g)) < p_exposed:
                    e = exposure[int(torch.randint(0, len(exposure), (1,), generator=g))]
                    sev = min_severity + (1 - min_severity) * torch.rand((1,), generator=g)
                    img = sources[e].synth(img, g, sev).clamp(0, 1)  # not JPEG'd again: PolyU 36.8 → 35.3
                    target[first], target[e] = 0, 1
                    made[len(vs), e] = True
            else:
                img = crop(size)
                clean_img = img
                chain = [first]
                if len(synth_ids) > 1 and float(torch.rand((1,), generator=g)) < p_mix:
                    second = synth_ids[int(torch.randint(0, len(synth_ids), (1,), generator=g))]
                    if second != first:
                        chain.append(second)
                        target[second] = 1
                        made[len(vs), second] = True
                for j in chain:
                    sev = min_severity + (1 - min_severity) * torch.rand((1,), generator=g)
                    img = sources[j].synth(img, g, sev).clamp(0, 1)
                img = stack_other(img)
                if judge is not None and (judged_sources is None or bool(dark[len(vs)])
                                          or any(j in judged_sources for j in chain)):
                    js = min(judge_size, size)
                    judged.append((len(vs), _centre(img[0], js), _centre(clean_img[0], js)))
            vs.append(_u8(paired_views(img, view)[0]))
            ts.append(target)
        if judged:
            idx = [i for i, _, _ in judged]
            degraded = quantize8(torch.stack([d for _, d, _ in judged]))  # as a photo file holds it
            new = judge(degraded, torch.stack([c for _, _, c in judged]), torch.stack([ts[i][:k] for i in idx]))
            for i, t in zip(idx, new):
                ts[i] = t
        pool.append((torch.stack(vs), torch.stack(ts)))
        if presence is not None:
            presence.append(made)
        if darkened is not None:
            darkened.append(dark)
        if progress:
            progress(len(pool), batches)
    if progress and len(pool) < batches:  # stopped by the deadline: the bar ends where the views did
        progress(len(pool), len(pool))
    return pool


def train_estimator(
    names: Sequence[str], sources: Sequence[Source | Callable], photos: Sequence[torch.Tensor], *,
    batches: int = 600, steps: int = 5000, lr: float = 2e-3, seed: int = 0, init: Estimator | None = None,
    p_clean: float = 0.0, judge: Judge | None = None, strength: bool = False, min_severity: float = 0.2,
    progress: Callable[[int, int], None] | None = None,
    pool_progress: Callable[[int, int], None] | None = None,
    time_budget: float | None = None,
    source_weights: Sequence[float] | None = None,
    others: Sequence[Callable] = (), p_other: float = 0.0, p_other_stacked: float = 0.0,
    p_exposed: float = 0.0,
    p_pair_clean: float = 0.0,
    p_dark: float = 0.0,
    dark_floor: float = 0.25,
    dark_keep: Sequence[str] = (),
    keep_inherited: bool = False,
    distill: bool = False,
    off_weight: float = OFF_WEIGHT,
    relearn: Sequence[str] = (),
    precision: str = "auto",
    channels_last: bool = False,
) -> tuple[Estimator, dict]:
    """Returns the trained estimator (eval mode) and a summary of its training. ``sources`` may be plain
    synthesizers. With ``init`` (the current estimator), training starts from its weights. ``p_clean``: share
    of clean training crops (all weights 0). ``judge``: targets judged by restoration (:func:`build_pool`);
    with ``strength`` the estimator also learns the strength (the judge must return that column).
    The strength's loss is its squared error weighted by what that error costs on each crop (the image's
    squared error along the restoration), so it is exact where the restoration is large. ``min_severity``:
    the mildest synthesized degradation. ``source_weights``: how often each source is drawn, ``others`` and
    ``p_other``: degradations that must switch every output off (``p_other_stacked``: also stacked last on
    the other degradations, keeping their targets), ``p_exposed``: share of real degraded crops exposed down
    by a source in :data:`EXPOSURE` (:func:`build_pool`), ``p_pair_clean``: share of a real-pairs source's
    draws showing a clean version instead (:func:`build_pool`), ``p_dark``: share of dark scenes,
    ``dark_floor`` their darkest exposure (:func:`build_pool`). ``keep_inherited`` (with ``init``): only the
    outputs ``init`` lacks are trained, on its frozen features; every output it has (and the strength) stays
    exactly as it was, so photos of the old degradations keep their weights unless the new output fires on
    them. Retrained whole instead (800 steps, warm-started) with a PolyU output, the estimator routed CBSD68's
    haze and rain 0.3 dB worse (BENCHMARKS.md, notes).
    ``distill`` (with ``init``; learning without forgetting, Li & Hoiem 2016): everything learns, but on every
    view made without a new source (old degradations, clean crops, ``others``) the inherited outputs and
    the strength are taught what ``init`` gives that very view, not the judged targets (clean crops kept at
    their judged targets instead: rain −0.23 dB); the new outputs learn their targets everywhere, their
    lesson to stay off the old views weighted by ``off_weight`` (:data:`OFF_WEIGHT`). So old photos keep their
    routing while the old outputs still learn to stay off the new degradation (which ``keep_inherited``
    cannot: its old outputs kept firing on PolyU). The views whose targets the teacher replaces are not judged
    (without ``strength``; :func:`build_pool`'s ``judged_sources``): the same lessons, most of the judge's time
    saved. ``relearn``: outputs ``init`` has that are taught as new ones (an adapter trained again:
    ``air add-degradation --overwrite``). With ``p_dark`` the dark scenes are a new
    lesson too: on a view whose crop was exposed down every output learns its judged targets, so ``init``
    with the same outputs, ``distill`` and ``p_dark`` teach an estimator dark scenes and nothing else; views
    made with a source named in ``dark_keep`` keep ``init``'s routing even on a darker crop (an exposure
    degradation: a dark scene under-exposed further is still low light).
    ``pool_progress`` reports the synthesis of the training views (before the first step), ``progress``
    the steps. ``time_budget`` (seconds): the views get at most 60% of it (at least 4 batches), the steps
    what fits in the rest (:class:`~.budget.StepBudget`); the summary records what ran. ``precision``: the
    autocast of the steps, ``channels_last`` their memory format (:mod:`.engine`)."""
    from .engine import Engine

    sources = [s if isinstance(s, Source) else Source(synth=s) for s in sources]
    k = len(sources)
    g = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    deadline = None if time_budget is None else time.monotonic() + 0.6 * time_budget
    if keep_inherited and distill:
        raise ValueError("keep_inherited freezes the old outputs, distill teaches them: choose one")
    presence: list[torch.Tensor] = []
    darkened: list[torch.Tensor] = []
    with torch.random.fork_rng(devices=[]):  # seeded initial weights, global RNG state left as it was
        torch.manual_seed(seed)
        est = Estimator(config=EstimatorConfig(adapters=tuple(names), strength=strength))
    fresh = est.inherit(init) if init is not None else list(names)
    learning = set(fresh) | set(relearn)
    distilling = distill and init is not None and len(learning) < k  # a teacher replaces the old views' targets
    # so a view made without a learning output's source keeps init's routing: judging it is wasted.
    skip = distilling and judge is not None and not strength
    pool = build_pool(photos, sources, g, batches=batches, p_clean=p_clean, judge=judge, strength=strength,
                      min_severity=min_severity, progress=pool_progress, deadline=deadline,
                      source_weights=source_weights, others=others, p_other=p_other,
                      p_other_stacked=p_other_stacked, p_dark=p_dark, dark_floor=dark_floor, p_exposed=p_exposed,
                      exposure=[i for i, n in enumerate(names) if n in EXPOSURE and sources[i].synth is not None],
                      presence=presence, darkened=darkened, p_pair_clean=p_pair_clean,
                      judged_sources=[i for i, n in enumerate(names) if n in learning] if skip else None)
    synth_s = time.perf_counter() - started
    kept = None  # (rows, weight, bias) of head.2 that stay as inherited
    if keep_inherited and init is not None and len(fresh) < len(names):
        for name, prm in est.named_parameters():
            prm.requires_grad_(name.startswith("head.2."))
        rows = [i for i in range(est.head[2].out_features) if i >= k or names[i] not in fresh]
        kept = (rows, est.head[2].weight.detach()[rows].clone(), est.head[2].bias.detach()[rows].clone())
    teacher = None  # (init, its rows, our rows, our fresh sources): what old views are taught
    if distilling:
        mine = [i for i, n in enumerate(names) if n not in learning]
        theirs = [init.config.adapters.index(names[i]) for i in mine]
        if strength and init.config.strength:
            mine.append(k)
            theirs.append(len(init.config.adapters))
        teacher = (init.eval(), theirs, mine, [i for i, n in enumerate(names) if n in learning],
                   [i for i, n in enumerate(names) if n in dark_keep])
    engine = Engine(est.train(), lr=lr, steps=steps, weight_decay=1e-4, precision=precision, channels_last=channels_last,
                    time_budget=None if time_budget is None else max(1.0, time_budget - synth_s),
                    progress=(lambda s, t, info: progress(s, t)) if progress else None)
    for step in engine:
        b = int(torch.randint(0, len(pool), (1,), generator=g))
        v, y = pool[b]
        if step % 2:
            v = v.flip(-1)
        weight = None
        if teacher is not None:
            old_net, theirs, mine, new_src, keep_src = teacher
            with torch.no_grad():
                taught = torch.sigmoid(old_net.forward_views(v).float()[:, theirs])
            lesson = darkened[b] & ~presence[b][:, keep_src].any(1)  # dark scenes: a new lesson
            old_view = ~(presence[b][:, new_src].any(1) | lesson)[:, None]
            y = y.clone()
            y[:, mine] = torch.where(old_view, taught, y[:, mine])
            if off_weight != 1:
                weight = torch.ones(len(y), k)
                weight[:, new_src] = torch.where(old_view, off_weight, 1.0)
        with engine.autocast():
            logits = est.forward_views(engine.input(v)).float()
        if strength:  # the strength as one more output, its error weighted by what it costs on each crop
            cost = y[:, -1] / y[:, -1].mean().clamp_min(1e-12)
            loss = (k * F.binary_cross_entropy_with_logits(logits[:, :k], y[:, :k], weight=weight)
                    + F.binary_cross_entropy_with_logits(logits[:, k], y[:, k], weight=cost)) / (k + 1)
        else:
            loss = F.binary_cross_entropy_with_logits(logits, y, weight=weight)
        engine.update(loss)
        if kept is not None:  # the step (and its weight decay) touched the whole layer: put the old rows back
            with torch.no_grad():
                est.head[2].weight[kept[0]] = kept[1]
                est.head[2].bias[kept[0]] = kept[2]
    for prm in est.parameters():
        prm.requires_grad_(True)
    targets = torch.cat([y for _, y in pool])
    info = {"train_samples": sum(len(v) for v, _ in pool), "steps": engine.step, "seed": seed, "p_clean": p_clean,
            "p_other": p_other if others else 0.0,
            **({"p_other_stacked": p_other_stacked} if others and p_other_stacked else {}), "p_dark": p_dark,
            **({"p_exposed": p_exposed} if p_exposed else {}),
            **({"p_pair_clean": p_pair_clean} if p_pair_clean else {}),
            **({"dark_floor": dark_floor} if p_dark else {}), "min_severity": min_severity,
            "targets": ("judged by restoration" + (" where learned (distilled elsewhere)" if skip else "")) if judge
                       else "degradations present",
            "target_means": dict(zip([*names, *(["strength", "strength_cost"] if strength else [])],
                                     (round(float(m), 4) for m in targets.mean(0)))),
            "sources": {n: s.kind for n, s in zip(names, sources)},
            **({"source_weights": dict(zip(names, map(float, source_weights)))} if source_weights is not None else {}),
            "warm_start": init is not None, "fresh_outputs": fresh, "kept_inherited": kept is not None,
            "distilled": teacher is not None, **({"off_weight": off_weight} if teacher is not None else {}),
            **({"dark_keep": list(dark_keep)} if dark_keep and p_dark and teacher is not None else {}),
            "synth_s": round(synth_s, 1), "train_s": round(time.perf_counter() - started - synth_s, 1)}
    return est.eval(), info


@torch.no_grad()
def top1(est: Estimator, samples: Sequence[tuple[torch.Tensor, int]]) -> float:
    """Share of (image [3, H, W], adapter index) samples whose largest weight is the right adapter."""
    if not samples:
        return float("nan")
    return sum(int(est.weights(x[None]).argmax()) == k for x, k in samples) / len(samples)


def save_views(folder: Path, degraded: Sequence[torch.Tensor], g: torch.Generator, *, count: int = 48,
               view: int = 64, clean: Sequence[torch.Tensor] | None = None) -> Path:
    """Store ``count`` estimator views of real degraded photos beside an adapter (uint8, ~1 MB), and as many
    of their ``clean`` versions (``Source.clean_views``) when given."""
    def views(photos: Sequence[torch.Tensor]) -> torch.Tensor:
        sizes = torch.randint(96, 225, (count,), generator=g)
        return torch.stack([_u8(paired_views(random_crop(photos[i % len(photos)], int(s), g)[None], view)[0])
                            for i, s in enumerate(sizes)]).contiguous()

    tensors = {"views": views(degraded), **({"clean": views(clean)} if clean is not None else {})}
    path = Path(folder) / VIEWS_FILE
    save_file(tensors, str(path), metadata={"format": "pt", "view": str(view)})
    return path


def load_views(folder: Path) -> torch.Tensor | None:
    return None if (stored := stored_source(folder)) is None else stored.views


def stored_source(folder: Path) -> Source | None:
    """The :class:`Source` of an adapter's stored views (with their clean versions' views where stored)."""
    path = Path(folder) / VIEWS_FILE
    if not path.is_file():
        return None
    tensors = load_file(str(path))
    return Source(views=tensors["views"], clean_views=tensors.get("clean"))
