"""The restorer: the base with every active adapter attached for blending, and the estimator that picks
the per-image weights (DESIGN.md, "Data flow of air restore"). :class:`~.pipeline.Pipeline` wraps it with
reading, memory planning, the refiner and writing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..core.arch import AirUNet
from ..core.lora import attach, blend
from ..core.metrics import psnr
from ..core.estimator import best_strength
from ..core.restore import RestoreResult, apply_gate, check_strength, linear_ramp, restore
from ..core.deadzone import DEAD_ZONES, DeadZone
from ..core.floors import FLOORS, Floor, colourless, own_adapters
from ..core.routing import (DETECTED, SEQUEL, TEMPERS, YIELDS, Detected, Fallback, KeepDark, KeepHaze,
                             Sequel, Temper, Yield, apply_fallback, crop_pass, head_means, ruled)
from ..core.tone import TONE, ToneGuard
from .adapters import load_for_base
from .store import BUNDLED_REAL, InstalledAdapter, all_adapters, bundled_estimator_path, local_estimator_path
from ..core.io.weights import BaseModelInfo, ModelFileError, read_estimator
from .store import load_base
from ..core.errors import UserError, UnknownNameError



class PipelineError(UserError, ValueError):
    """A pipeline cannot be built as asked (a refiner that is missing or made for another base). One line."""


@dataclass
class Restorer:
    model: AirUNet
    info: BaseModelInfo
    adapters: list[str] = field(default_factory=list)  # blend order
    estimator: torch.nn.Module | None = None
    estimator_path: Path | None = None
    warnings: list[str] = field(default_factory=list)
    mode: str = "merged"  # one image at a time: merging the adapters into W0 costs nothing per pixel
    gate: bool = True  # keep the input's pixels where the segmentation head sees nothing wrong (core.restore)
    precision: str = "auto"  # compute dtype of the tiles (core.runtime.PRECISIONS)
    # Who takes the weight the estimator leaves unassigned (core.routing); off by itself where the noise or
    # low-light adapter is missing, None turns it off.
    fallback: Fallback | None = field(default_factory=Fallback)
    # Adapters weighted by a measurement of the photo where the estimator does not know them (core.routing).
    detected: tuple[Detected, ...] = DETECTED
    # Estimated weights raised to a measured floor where the estimator misjudges (core.floors): noise by its level.
    floors: tuple[Floor, ...] = FLOORS
    # Estimated adapters that make way for another's weight (core.routing.Yield): noise for haze and for jpeg.
    yields: tuple[Yield, ...] = YIELDS
    # Estimated adapters scaled down where the base alone already corrects (core.routing.Temper): low light.
    tempers: tuple[Temper, ...] = TEMPERS
    # Estimated weights too faint to mean the degradation is there, set to 0 after every rule (core.deadzone): snow.
    dead_zones: tuple[DeadZone, ...] = DEAD_ZONES
    # Dark pixels kept as they are where the estimator finds the photo exposed as meant (core.routing.KeepDark);
    # None turns it off.
    keep_dark: KeepDark | None = field(default_factory=KeepDark)
    # Hazy pixels kept as they are where neither the estimator nor a veil over the photo's darkest parts shows haze
    # (core.routing.KeepHaze); None turns it off.
    keep_haze: KeepHaze | None = field(default_factory=KeepHaze)
    # A second pass routed on the first one's output where haze or low light led it (core.routing.Sequel);
    # None restores once.
    sequel: Sequel | None = SEQUEL
    # The low-frequency brightness refitted to the input's where low light led (core.tone.ToneGuard); None: off.
    tone: ToneGuard | None = TONE

    @torch.no_grad()
    def assess(self, rgb: torch.Tensor) -> tuple[torch.Tensor, float]:
        """The per-adapter weights [K] for one image [3, H, W] (zeros for adapters the estimator does not
        know) and the strength (1 without an estimator, or with one trained without a strength output)."""
        w, strength, _ = self.route(rgb)
        return w, strength

    @torch.no_grad()
    def route(self, rgb: torch.Tensor, raised: dict[str, tuple[float, str]] | None = None,
              yielded: dict[str, tuple[float, str]] | None = None,
              moved: dict[str, tuple[str, str]] | None = None) -> tuple[torch.Tensor, float, float]:
        """:meth:`assess`, and the weight the fallback adapter took of what the estimator left unassigned;
        a weight a floor hands to its own adapter moved there (core.floors.Floor.moves_to);
        ``raised`` receives adapter → (weight, why) for each weight a floor raised (core.floors.Floor),
        ``yielded`` adapter → (factor, why) for each weight a yield or temper rule scaled down (core.routing.Yield,
        core.routing.Temper) or a dead zone set to 0 (core.deadzone), ``moved`` adapter → (the adapter whose weight
        it took, why) for each weight a floor moved to its own adapter."""
        w = torch.zeros(len(self.adapters))
        strength, extra = torch.ones(1), 0.0
        detected = {d.adapter for d in self.detecting()}  # weighted below, after every estimated weight
        grey = colourless(rgb)  # for the yields and floors that treat a photo without colour apart
        yields = [r for r in self.yields if r.applies(self.adapters) and not (r.colour_only and grey)]
        late = [r for r in yields if r.to in detected] if self.estimator is not None else []
        found: list[tuple[Floor, float, float, bool]] = []  # each floor that found something: what, the share it
        # raised, whether the photo has no colour (Floor.moves_colourless)
        passes: list[tuple[torch.Tensor, float]] = []  # the base alone on the head's crops, once, where a rule asks

        def crops() -> tuple[torch.Tensor, float]:
            if not passes:
                passes.append(crop_pass(self.model, rgb.float(), (self.fallback or Fallback()).crop))
            return passes[0]

        def head() -> torch.Tensor:
            return crops()[0]

        if self.estimator is not None:
            dev = next(self.estimator.parameters()).device
            est_w, strength = self.estimator.predict(rgb[None].to(dev).float())
            for name, v in zip(self.estimator.config.adapters, est_w[0].cpu()):
                if name in self.adapters:  # an output for an adapter not attached here counts as weight 0
                    w[self.adapters.index(name)] = v
            if self.fallback is not None and self.fallback.applies(self.model, self.adapters):
                w, extra = apply_fallback(self.model, rgb.float(), w, self.adapters, self.fallback, head)
            for floor in self.floors:
                if floor.adapter in self.adapters:
                    i = self.adapters.index(floor.adapter)
                    m = floor.measured(rgb, head, self.model.config.classes, self.named(w))
                    moves_all = floor.moves_colourless and grey
                    if m > 0.01 or moves_all:
                        found.append((floor, m, max(0.0, 1.0 - float(w[i]) / m) if m > 0 else 0.0, moves_all))
                        w[i] = max(float(w[i]), m)
            for rule in yields:
                if rule.to not in detected:
                    extra *= self._yield(rule, w, yielded)
            for temper in self.tempers:
                if temper.adapter in self.adapters and float(w[k := self.adapters.index(temper.adapter)]) >= 0.01:
                    f = temper.factor(crops()[1])
                    w[k] *= f
                    if yielded is not None and f < 0.99:
                        yielded[temper.adapter] = (f, temper.why)
        for rule in self.detecting():
            v = rule.measured(rgb)
            if v > 0:
                v *= rule.share(self.named(w), dict(zip(self.model.config.classes, head().tolist())))
            w[self.adapters.index(rule.adapter)] = v
        for rule in late:  # a yield to a detected adapter, now that its weight is known: the floor's raise with it
            extra *= self._yield(rule, w, yielded)
        for floor, m, share, moves_all in found:  # a floor makes way for the detected weights it yields to, now known
            way = max((float(w[self.adapters.index(n)]) for n in floor.makes_way_for if n in self.adapters),
                      default=0.0)
            i = self.adapters.index(floor.adapter)
            # a late yield to an adapter the floor makes way for scaled the raise with the rest
            scaled = any(r.adapter == floor.adapter and r.to in floor.makes_way_for for r in late)
            if not scaled:
                w[i] *= 1.0 - share * way  # the raise above the estimator's weight, scaled
            left = m * (1.0 - way)  # what the floor found, once it made way
            if left <= 0.01 and not moves_all:
                continue  # nothing left of what the floor found: the estimator's weight, for the estimator's adapter
            name = floor.adapter
            part = 1.0 if moves_all else linear_ramp(left, *floor.moves_ramp)  # the share of the weight its own takes
            if floor.moves_to in self.adapters and part > 0:  # what the floor found, its own adapter restores
                name, w[self.adapters.index(floor.moves_to)], w[i] = floor.moves_to, w[i] * part, w[i] * (1.0 - part)
                if self.fallback is not None and self.fallback.adapter == floor.adapter:
                    extra *= 1.0 - part
                if moved is not None:
                    why = floor.why if left > 0.01 else "the photo has no colour, so neither has its noise"
                    moved[name] = (floor.adapter, why if part == 1.0 else f"{part:.0%} of it, by how much the floor "
                                   f"found, all from {floor.moves_ramp[1]:g}: {why}")
            if raised is not None and share * (1.0 - way) > 0.01:
                raised[name] = (m if scaled else m * (1.0 - share * way), floor.why)  # a yield says the rest
        for zone in self.dead_zones:
            zone.apply(w, self.adapters, yielded)
        return w, float(strength[0]), extra

    def _yield(self, rule: Yield, w: torch.Tensor, yielded: dict[str, tuple[float, str]] | None) -> float:
        """Scales ``rule.adapter``'s weight in ``w`` [K] in place by the rule's factor, noting it in ``yielded``
        (where two rules scale one adapter, their factors multiply); the factor the fallback's part takes."""
        k, f = self.adapters.index(rule.adapter), rule.factor(w, self.adapters)
        before = float(w[k])
        w[k] = before * f
        if yielded is not None and f < 0.99 and before >= 0.01:
            g, why = yielded.get(rule.adapter, (1.0, ""))
            yielded[rule.adapter] = (g * f, f"{why}; {rule.why}" if why else rule.why)
        return f if self.fallback is not None and rule.adapter == self.fallback.adapter else 1.0

    def named(self, weights: torch.Tensor) -> dict[str, float]:
        """Weights [K] by adapter name."""
        return {n: float(x) for n, x in zip(self.adapters, weights)}

    def released(self, weights: torch.Tensor, rgb: torch.Tensor) -> float:
        """The share of the clean-pixel gate lifted for weights [K] on the photo ``rgb`` [3, H, W]: the largest weight
        of an adapter whose degradation the head has no class for (:meth:`unseen`) or of a detected one that says so
        (``core.routing.Detected``), and of a floored one as far as its floor reaches (``core.floors.Floor``)."""
        released = set(self.unseen()) | {self.adapters.index(d.adapter) for d in self.detecting() if d.releases_gate}
        out = max((float(weights[i]) for i in released), default=0.0)
        means: list[torch.Tensor] = []

        def head() -> torch.Tensor:  # the head's mean class probabilities, adapters off, once
            if not means:
                means.append(head_means(self.model, rgb.float()))
            return means[0]

        for floor in self.floors:
            if floor.releases_gate and floor.adapter in self.adapters:
                w = max(float(weights[self.adapters.index(n)]) for n in (floor.adapter, floor.moves_to)
                        if n in self.adapters)  # its own adapter, where it handed the weight on
                if w > out:  # measured only where it could count
                    m = floor.measured(rgb, head, self.model.config.classes, self.named(weights))
                    out = max(out, min(w, m))
        return out

    def detecting(self) -> list[Detected]:
        """The detection rules in force: their adapter is active and the estimator does not know it."""
        known = set(self.estimator.config.adapters) if self.estimator is not None else set()
        return [d for d in self.detected if d.adapter in self.adapters and d.adapter not in known]

    def unseen(self) -> list[int]:
        """Indices of the adapters whose degradation the segmentation head has no class for (JPEG, snow, a
        third-party one): the head reads those pixels as clean, so the clean-pixel gate would keep them as
        they are and undo the adapter. Their weight lifts as much of the gate (:meth:`restore`). A bundled adapter
        learnt from real pairs names the class that sees its degradation (``store.BUNDLED_REAL``: realnoise, noise);
        a floor's own adapter (lumanoise) lifts the gate only as far as its floor reaches (:meth:`released`)."""
        classes = set(self.model.config.classes)
        seen_as = {name: real.head_class for name, real in BUNDLED_REAL.items()}  # realnoise: noise
        floored = own_adapters(self.floors)  # its floor lifts the gate as far as it reaches
        return [i for i, name in enumerate(self.adapters)
                if name not in floored and seen_as.get(name, name) not in classes]

    def ruled(self) -> set[str]:
        """The adapters a rule weights here rather than the estimator: a detection rule's and a floor's own
        (``core.routing.ruled`` for these rules)."""
        return ruled(self.detected, self.floors)

    def also_clean(self, weights: torch.Tensor, rgb: torch.Tensor) -> dict[str, float]:
        """What the gate counts as clean besides the clean class, for weights [K] the estimator routed on the photo
        ``rgb`` [3, H, W] (core.routing.KeepDark, KeepHaze); {} without an estimator, whose judgement it needs."""
        if self.estimator is None:
            return {}
        out: dict[str, float] = {}
        for rule in (self.keep_dark, self.keep_haze):
            if rule is not None and rule.applies(self.model, self.adapters):
                out.update(rule.also_clean(float(weights[self.adapters.index(rule.adapter)]), rgb))
        return out

    def estimate(self, rgb: torch.Tensor) -> torch.Tensor:
        """Per-adapter weights [K] for one image [3, H, W] (see :meth:`assess`)."""
        return self.assess(rgb)[0]

    def attach_folder(self, folder: str | Path) -> str:
        """Attach one more adapter folder (e.g. ``--adapter PATH``); the estimator gives it weight 0."""
        manifest, factors = load_for_base(Path(folder), self.info.fingerprint)
        attach(self.model, manifest["name"], factors)
        self.adapters.append(manifest["name"])
        return manifest["name"]

    def weights_from(self, given: dict[str, float]) -> torch.Tensor:
        """[K] weights from ``{name: weight}`` (others 0); unknown names are refused, listing the installed ones."""
        unknown = sorted(set(given) - set(self.adapters))
        if unknown:
            raise UnknownNameError(f"no active adapter named {', '.join(map(repr, unknown))}; "
                           f"active: {', '.join(self.adapters) or 'none'}")
        return torch.tensor([float(given.get(n, 0.0)) for n in self.adapters])

    @torch.no_grad()
    def best_subsets(self, degraded: torch.Tensor, clean: torch.Tensor, present: torch.Tensor, *,
                     keep_db: float = -0.05, strength: bool = False) -> torch.Tensor:
        """The estimator's training targets judged by restoration: for each crop of ``degraded`` [B, 3, H, W]
        (whose degradations are the on entries of ``present`` [B, K]), the subset of those adapters whose
        blend at weight 1 restores it best against ``clean``, the base alone (the empty subset) included.
        Each adapter in a subset is credited ``keep_db`` of PSNR: with ``keep_db`` > 0 an adapter of a
        degradation present stays on unless it costs more than that; with ``keep_db`` < 0 it must earn
        that much to be switched on. Returns 0/1 targets [B, K]: an adapter that makes its crop worse (one
        undoing the base's correction of another degradation on a stacked photo, say) is switched off.
        With ``strength``, two more columns [B, K + 2]: the strength that brings the best subset's output,
        through the gate as the pipeline applies it, closest to ``clean`` (``core.estimator.best_strength``),
        and the mean squared change of that output (how much a wrong strength costs in squared error there)."""
        from itertools import combinations

        dev = next(self.model.parameters()).device
        askers: dict[tuple[int, ...], list[int]] = {}  # subset → samples that consider it
        for i, row in enumerate(present.bool()):
            on = row.nonzero().flatten().tolist()
            for n in range(len(on) + 1):
                for subset in combinations(on, n):
                    askers.setdefault(subset, []).append(i)
        subsets = list(askers)
        scores = torch.full((len(degraded), len(subsets)), -float("inf"))
        best_out = degraded.clone()  # each sample's output for its best subset so far (gated as restore() does)
        clean_class = self.model.config.classes.index("clean")
        unseen = set(self.unseen())
        self.model.to(memory_format=torch.channels_last)  # 1.3× faster on the CPU, as in restore()
        for j, subset in enumerate(subsets):
            idx = torch.tensor(askers[subset])
            w = torch.zeros(len(self.adapters))
            w[list(subset)] = 1.0
            with blend(self.model, w[None].to(dev), mode=self.mode):
                res = self.model(degraded[idx].to(dev).contiguous(memory_format=torch.channels_last),
                                 segment=strength and self.gate)
            out = res.image.float().contiguous().cpu()
            scores[idx, j] = psnr(out, clean[idx]) + keep_db * len(subset)
            if strength:
                better = scores[idx, j] > scores[idx, :j].amax(1) if j else torch.ones(len(idx), dtype=torch.bool)
                out = out.clamp(0, 1)
                if self.gate:
                    p_clean = res.seg_logits.float().softmax(1)[:, clean_class : clean_class + 1].contiguous().cpu()
                    out = apply_gate(degraded[idx], out, p_clean, release=float(bool(unseen & set(subset))))
                best_out[idx[better]] = out[better]
        best = scores.argmax(1)
        targets = torch.zeros((len(present), present.shape[1] + 2 * int(strength)))
        for i, j in enumerate(best.tolist()):
            targets[i, list(subsets[j])] = 1.0
        if strength:
            targets[:, -2] = best_strength(degraded, best_out, clean)
            targets[:, -1] = (best_out - degraded).pow(2).flatten(1).mean(1)
        return targets

    def wants_second_pass(self, weights: torch.Tensor) -> bool:
        """Whether weights [K] routed here call for a second pass (core.routing.Sequel)."""
        return self.sequel is not None and self.estimator is not None and self.sequel.applies(weights, self.adapters)

    def toning(self, weights: torch.Tensor) -> ToneGuard | None:
        """The tone guard, where weights [K] routed here call for it (core.tone.ToneGuard); else None."""
        on = self.tone is not None and self.estimator is not None and self.tone.applies(weights, self.adapters)
        return self.tone if on else None

    def restore_twice(self, rgb: torch.Tensor, weights: torch.Tensor, *, strength: float = 1.0, progress=None,
                      toned: bool = True, **kw) -> tuple[RestoreResult, torch.Tensor]:
        """Two passes (core.routing.Sequel): ``rgb`` [3, H, W] restored with ``weights`` [K] routed here, then that
        output routed (estimator, fallback, every rule) and restored again. ``strength`` keeps that share of the
        whole restoration (the input blended with the final output, refitted to it first where ``toned`` and the
        weights call for it: :meth:`toning`), ``progress`` counts both passes' tiles, ``kw``
        as for :meth:`restore` for the first pass (the second routes its own ``also_clean`` and ``release``).
        Returns the result, whose segmentation and clean share are the first pass's (they describe the input),
        and the second pass's weights [K]."""
        check_strength(strength)

        def half(n: int):  # pass n's tiles as part of one bar over both passes
            return None if progress is None else lambda done, total: progress(n * total + done, 2 * total)

        first = self.restore(rgb, weights, again=False, toned=False, strength=1.0, progress=half(0), **kw)
        kw = {k: v for k, v in kw.items() if k not in ("also_clean", "release", "explain")}
        w2 = self.route(first.image)[0]
        second = self.restore(first.image, w2, again=False, toned=False, also_clean=self.also_clean(w2, first.image),
                              progress=half(1), **kw)
        image = second.image
        if toned and (tone := self.toning(weights)) is not None:  # refitted to the input, not to the first pass
            image = tone(rgb.float().cpu(), image)
        image = image if strength == 1.0 else rgb + strength * (image - rgb)
        return first._replace(image=image), w2

    def restore(self, rgb: torch.Tensor, weights: torch.Tensor | None = None, *, again: bool | None = None,
                toned: bool | None = None, **kw) -> RestoreResult:
        """Restore one image; ``weights`` [K] default to the estimator's, and then so do ``strength`` (1 with
        given weights) and what the gate keeps besides clean pixels (``also_clean``, :meth:`also_clean`; none
        with given weights: pass ``also_clean=self.also_clean(w, rgb)`` for weights routed here); ``gate`` defaults to
        ``self.gate``, and the share of it lifted (``release``) to the largest weight of a detected adapter that
        releases it (:meth:`released`). ``again`` (default: with the estimator's weights) restores the
        output once more where the weights call for it (:meth:`wants_second_pass`): pass ``again=True`` with weights
        routed here to get what ``air restore`` gives (:meth:`restore_twice`). ``toned`` (default: as ``again``)
        refits the output's low-frequency brightness to the input's where the weights call for it (:meth:`toning`)."""
        routed = weights is None
        if routed:
            weights, strength = self.assess(rgb)
            kw.setdefault("strength", strength)
            kw.setdefault("also_clean", self.also_clean(weights, rgb))
        elif weights.shape != (len(self.adapters),):
            raise ValueError(f"weights of shape {tuple(weights.shape)} for {len(self.adapters)} adapters "
                             f"({', '.join(self.adapters)}): give one weight per adapter")
        again = routed if again is None else again
        toned = again if toned is None else toned
        if again and self.wants_second_pass(weights):
            return self.restore_twice(rgb, weights, toned=toned, **kw)[0]
        w = weights
        if toned and "tone" not in kw:
            kw["tone"] = self.toning(w)
        kw.setdefault("gate", self.gate)
        kw.setdefault("precision", self.precision)
        # The head reads a degradation it has no class for (JPEG blocks, snow, noise without colour) as clean: the
        # weight of its adapter lifts as much of the gate (:meth:`released`).
        if "release" not in kw:
            kw["release"] = self.released(w, rgb)
        with blend(self.model, w[None].to(next(self.model.parameters()).device), mode=self.mode):
            return restore(self.model, rgb, **kw)


def pick_estimator(names: list[str], detected: frozenset[str] | set[str] | None = None
                   ) -> tuple[torch.nn.Module | None, Path | None, list[str]]:
    """The estimator for exactly ``names`` (local store first, then bundled); else the best one covering a
    subset of them, with a warning naming the fix, unless the adapters it lacks are ``detected`` (weighted
    by a rule: ``core.routing.ruled``, the default)."""
    detected = ruled() if detected is None else detected
    best, best_path, warnings = None, None, []
    for path in (local_estimator_path(), bundled_estimator_path()):
        if not path.is_file():
            continue
        try:
            est = read_estimator(path)
        except ModelFileError as e:
            warnings.append(f"ignoring estimator: {e}")
            continue
        known = list(est.config.adapters)
        if known == names:
            return est, path, warnings
        gone = [n for n in known if n not in names]
        if gone:
            warnings.append(f"ignoring the estimator {path}: it was trained for adapter(s) {gone}, which are not "
                            "active (removed, damaged or made for another base); run `air train estimator --install`")
        if set(known) <= set(names) and (best is None or len(known) > len(best.config.adapters)):
            best, best_path = est, path
    if names and best is None:
        warnings.append(f"no estimator for the adapters {names}: restoring with the base alone; "
                        "run `air train estimator --install`, or pick weights with --adapters NAME=W")
    elif best is not None and (missing := [n for n in names if n not in best.config.adapters and n not in detected]):
        warnings.append(f"the estimator does not know adapter(s) {missing}, which get weight 0; run "
                        "`air train estimator --install` (or `air add-degradation`), or pick weights with --adapters")
    return best, best_path, warnings


def load_restorer(weights: str | Path | None = None, *, device: str | torch.device = "cpu",
                  use_adapters: bool = True) -> Restorer:
    """The base (bundled unless ``weights``) with every active adapter attached and the estimator chosen."""
    model, info = load_base(weights, device=device)
    r = Restorer(model, info)
    if not use_adapters:
        return r
    everything: list[InstalledAdapter] = all_adapters(info.fingerprint)
    found = [a for a in everything if a.error is None]
    unusable = [f"adapter {a.name} is not used: {a.error}" for a in everything if a.error is not None]
    for a in found:
        manifest, factors = load_for_base(a.path, info.fingerprint)
        attach(model, manifest["name"], factors)
        r.adapters.append(a.name)
    est, path, warnings = pick_estimator(r.adapters, r.ruled())
    r.estimator = est.to(device) if est is not None else None
    r.estimator_path, r.warnings = path, unusable + warnings
    return r


def restorer_for(names: list[str], folders: dict[str, Path] | None = None) -> Restorer:
    """The bundled base with exactly the adapters ``names`` attached, in that order (an estimator's order),
    from ``folders`` where given, else the active installed adapter of that name; no estimator. For judging
    an estimator's targets by restoration (:meth:`Restorer.best_subsets`)."""
    model, info = load_base()
    r = Restorer(model, info)
    installed = {a.name: a.path for a in all_adapters(info.fingerprint) if a.error is None}
    folders = {**installed, **(folders or {})}
    missing = [n for n in names if n not in folders]
    if missing:
        raise PipelineError(f"no installed adapter named {', '.join(missing)} to judge the estimator's targets "
                            "with; install it, or train on the degradations present (--targets present)")
    for n in names:
        r.attach_folder(folders[n])
    return r
