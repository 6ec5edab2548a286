"""What ``air restore`` runs: the base, every active adapter attached for blending, and the estimator
that picks the per-image weights (DESIGN.md, "Data flow of air restore")."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..core.arch import AirUNet
from ..core.io.images import MAX_PIXELS
from ..core.lora import attach, blend
from ..core.metrics import psnr
from ..core.estimator import best_strength
from ..core.restore import RestoreResult, apply_gate, restore
from ..core.routing import DETECTED, Detected, Fallback, apply_fallback, head_means
from ..core.defaults import OVERLAP, TILE
from .adapters import load_for_base
from .store import InstalledAdapter, all_adapters, bundled_estimator_path, local_estimator_path
from ..core.io.weights import BaseModelInfo, ModelFileError, read_estimator
from .store import load_base
from ..core.errors import UserError, UnknownNameError


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

    @torch.no_grad()
    def assess(self, rgb: torch.Tensor) -> tuple[torch.Tensor, float]:
        """The per-adapter weights [K] for one image [3, H, W] (zeros for adapters the estimator does not
        know) and the strength (1 without an estimator, or with one trained without a strength output)."""
        w, strength, _ = self.route(rgb)
        return w, strength

    @torch.no_grad()
    def route(self, rgb: torch.Tensor) -> tuple[torch.Tensor, float, float]:
        """:meth:`assess`, and the weight the fallback adapter took of what the estimator left unassigned."""
        w = torch.zeros(len(self.adapters))
        strength, extra = torch.ones(1), 0.0
        probs: list[torch.Tensor] = []  # the head's mean class probabilities, once, where a rule needs them

        def head() -> torch.Tensor:
            if not probs:
                probs.append(head_means(self.model, rgb.float(), (self.fallback or Fallback()).crop))
            return probs[0]

        if self.estimator is not None:
            dev = next(self.estimator.parameters()).device
            est_w, strength = self.estimator.predict(rgb[None].to(dev).float())
            for name, v in zip(self.estimator.config.adapters, est_w[0].cpu()):
                w[self.adapters.index(name)] = v
            if self.fallback is not None and self.fallback.applies(self.model, self.adapters):
                w, extra = apply_fallback(self.model, rgb.float(), w, self.adapters, self.fallback, head)
        for rule in self.detecting():
            v = rule.measured(rgb)
            if v > 0:
                v *= rule.share({n: float(x) for n, x in zip(self.adapters, w)},
                                dict(zip(self.model.config.classes, head().tolist())))
            w[self.adapters.index(rule.adapter)] = v
        return w, float(strength[0]), extra

    def detecting(self) -> list[Detected]:
        """The detection rules in force: their adapter is active and the estimator does not know it."""
        known = set(self.estimator.config.adapters) if self.estimator is not None else set()
        return [d for d in self.detected if d.adapter in self.adapters and d.adapter not in known]

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
        for j, subset in enumerate(subsets):
            idx = torch.tensor(askers[subset])
            w = torch.zeros(len(self.adapters))
            w[list(subset)] = 1.0
            with blend(self.model, w[None].to(dev), mode=self.mode):
                res = self.model(degraded[idx].to(dev), segment=strength and self.gate)
            out = res.image.cpu()
            scores[idx, j] = psnr(out, clean[idx]) + keep_db * len(subset)
            if strength:
                better = scores[idx, j] > scores[idx, :j].amax(1) if j else torch.ones(len(idx), dtype=torch.bool)
                out = out.clamp(0, 1)
                if self.gate:
                    p_clean = res.seg_logits.softmax(1)[:, clean_class : clean_class + 1].cpu()
                    out = apply_gate(degraded[idx], out, p_clean)
                best_out[idx[better]] = out[better]
        best = scores.argmax(1)
        targets = torch.zeros((len(present), present.shape[1] + 2 * int(strength)))
        for i, j in enumerate(best.tolist()):
            targets[i, list(subsets[j])] = 1.0
        if strength:
            targets[:, -2] = best_strength(degraded, best_out, clean)
            targets[:, -1] = (best_out - degraded).pow(2).flatten(1).mean(1)
        return targets

    def restore(self, rgb: torch.Tensor, weights: torch.Tensor | None = None, **kw) -> RestoreResult:
        """Restore one image; ``weights`` [K] default to the estimator's, and then so does ``strength`` (1 with
        given weights); ``gate`` defaults to ``self.gate``, and the share of it lifted (``release``) to the
        largest weight of a detected adapter that releases it (``core.routing.Detected``)."""
        if weights is None:
            w, strength = self.assess(rgb)
            kw.setdefault("strength", strength)
        else:
            w = weights
            if w.shape != (len(self.adapters),):
                raise ValueError(f"weights of shape {tuple(w.shape)} for {len(self.adapters)} adapters "
                                 f"({', '.join(self.adapters)}): give one weight per adapter")
        kw.setdefault("gate", self.gate)
        kw.setdefault("precision", self.precision)
        # The head reads a detected degradation (JPEG blocks) as clean: its weight lifts as much of the gate.
        kw.setdefault("release", max((float(w[self.adapters.index(d.adapter)]) for d in self.detecting()
                                      if d.releases_gate), default=0.0))
        with blend(self.model, w[None].to(next(self.model.parameters()).device), mode=self.mode):
            return restore(self.model, rgb, **kw)


def pick_estimator(names: list[str], detected: frozenset[str] | set[str] = frozenset(d.adapter for d in DETECTED)
                   ) -> tuple[torch.nn.Module | None, Path | None, list[str]]:
    """The estimator for exactly ``names`` (local store first, then bundled); else the best one covering a
    subset of them, with a warning naming the fix, unless the adapters it lacks are ``detected`` (weighted
    by a rule, ``core.routing.Detected``)."""
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
    est, path, warnings = pick_estimator(r.adapters, {d.adapter for d in r.detected})
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


class PipelineError(UserError, ValueError):
    """A pipeline cannot be built as asked (a refiner that is missing or made for another base). One line."""


@dataclass
class Restored:
    """One restored image and why it looks that way."""

    image: torch.Tensor  # [3, H, W] in [0, 1], CPU
    weights: dict[str, float]  # adapter → blend weight used
    weights_source: str  # "estimator", "given" (adapters=...) or "none" (no active adapter)
    seg_probs: torch.Tensor | None = None  # [C, H, W] per-pixel class probabilities (explain=True)
    shares: dict[str, float] | None = None  # each class's share of the image (explain=True)
    tta: str | None = None  # the refiner's one-line report (tta=True)
    strength: float = 1.0  # share of the restoration kept (the estimator's, or 1 with given weights)
    strength_source: str = "none"  # "estimator", "given" (strength= or adapters=) or "none"
    clean_share: float = 0.0  # share of the photo the gate kept as it was because it looks clean as a whole
    fallback: float = 0.0  # weight the fallback adapter took of what the estimator left (core.routing)
    # adapter → how a rule measured its weight on the photo (core.routing.Detected.why)
    detected: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # lines for the user (a tile made smaller to fit in memory)

    def degradation_map(self, rgb: torch.Tensor, classes: tuple[str, ...]):
        """The colour-coded map of the input ``rgb`` with its legend (a PIL image); needs explain=True."""
        from ..core.explain import degradation_map

        if self.seg_probs is None:
            raise ValueError("no segmentation: restore with explain=True")
        return degradation_map(rgb, self.seg_probs, classes)


def load_udair_refiner(base_fingerprint: str):
    """The ``udair`` refiner plugin (through the plugin registry, as a third-party one would be found);
    refused with one line when it is missing, broken or trained on another base."""
    from .discovery import get_refiner

    try:
        refiner = get_refiner("udair").load()
    except Exception as e:  # a missing plugin, a broken one or an unreadable weights file
        raise PipelineError("--tta: " + str(e).strip("'\"")) from e
    if refiner.base_fingerprint and refiner.base_fingerprint != base_fingerprint:
        raise PipelineError(f"--tta: the udair refiner was trained on base {refiner.base_fingerprint}, not "
                            f"{base_fingerprint}; retrain it with `air train udair`")
    return refiner


class Pipeline:
    """What ``air restore`` runs, as one Python object: read → estimate → blend → tiles → refine → write.
    The CLI, ``air serve`` and ``air batch`` all restore through :meth:`run`.

        from . import load_pipeline
        pipe = load_pipeline()                        # bundled base, installed adapters, estimator
        pipe("photo.jpg", "photo_restored.jpg")       # a file, as `air restore photo.jpg -o ...`
        out = pipe.restore(array)                     # H×W×3 uint8/uint16/float numpy, or a [3, H, W] tensor

    ``adapters={"rain": 1.0}`` sets the adapter weights instead of the estimator (others 0), as
    ``--adapters`` does.
    """

    def __init__(self, restorer: Restorer, *, refiner=None) -> None:
        self.restorer = restorer
        self.refiner = refiner
        self.fixed: dict[str, float] = {}  # folders attached with a weight (``--adapter PATH=W``)

    @property
    def adapters(self) -> list[str]:
        return list(self.restorer.adapters)

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.restorer.model.config.classes)

    @property
    def warnings(self) -> list[str]:
        return list(self.restorer.warnings)

    def attach(self, folder: str | Path, weight: float = 1.0) -> str:
        """Also apply an adapter folder that is not installed, always at ``weight`` (``--adapter PATH=W``)."""
        name = self.restorer.attach_folder(folder)
        self.fixed[name] = float(weight)
        return name

    def weights(self, rgb: torch.Tensor, adapters: dict[str, float] | None = None) -> torch.Tensor:
        """The adapter weights [K] used for ``rgb``: the estimator's, or ``adapters`` (others 0); attached
        folders keep their own weight either way."""
        return self.assess(rgb, adapters)[0]

    def assess(self, rgb: torch.Tensor, adapters: dict[str, float] | None = None) -> tuple[torch.Tensor, float]:
        """The weights (:meth:`weights`) and the strength for ``rgb``: the estimator's, or 1 with ``adapters``."""
        w, strength, _ = self.route(rgb, adapters)
        return w, strength

    def route(self, rgb: torch.Tensor, adapters: dict[str, float] | None = None) -> tuple[torch.Tensor, float, float]:
        """:meth:`assess`, and the weight the fallback adapter took (:meth:`Restorer.route`; 0 with ``adapters``)."""
        if adapters is not None:
            return self.restorer.weights_from({**adapters, **self.fixed}), 1.0, 0.0
        w, strength, extra = self.restorer.route(rgb)
        for name, v in self.fixed.items():
            w[self.restorer.adapters.index(name)] = v
        return w, strength, extra

    @torch.no_grad()
    def run(self, rgb: torch.Tensor, *, adapters: dict[str, float] | None = None, tile: int = TILE,
            overlap: int = OVERLAP, explain: bool = False, strength: float | None = None, progress=None) -> Restored:
        """Restore one image ``rgb`` [3, H, W] in [0, 1]: estimate (unless ``adapters``), blend, tiles, then
        the refiner if the pipeline has one. ``explain`` also returns the segmentation and class shares.
        ``strength`` (0 = the input, 1 = all of the restoration) replaces the estimator's choice."""
        from ..core.explain import class_shares

        fit = self.memory_plan(*rgb.shape[-2:], tile=tile, overlap=overlap, explain=explain)
        tile = fit.tile
        w, chosen, fallback = self.route(rgb, adapters)
        source = "given" if adapters is not None else ("estimator" if self.restorer.adapters else "none")
        est = self.restorer.estimator
        learned = adapters is None and est is not None and est.config.strength
        strength_source = "given" if strength is not None or adapters is not None else (
            "estimator" if learned else "none")
        strength = chosen if strength is None else strength
        res = self.restorer.restore(rgb, w, tile=tile, overlap=overlap, explain=explain or self.refiner is not None,
                                    strength=strength, progress=progress)
        shares = class_shares(res.seg_probs, self.classes) if res.seg_probs is not None else None
        names = self.restorer.adapters
        out = Restored(res.image, {n: float(v) for n, v in zip(names, w.tolist())}, source,
                       res.seg_probs if explain else None, shares if explain else None, strength=strength,
                       strength_source=strength_source, clean_share=res.clean_share, fallback=fallback,
                       detected={d.adapter: d.why for d in self.restorer.detecting()} if adapters is None else {},
                       notes=[fit.note] if fit.note else [])
        if self.refiner is not None:
            from ..plugins.udair import degradation_weights

            refined, info = self.refiner.refine(rgb, res.image, degradation_weights(names, w.tolist(), shares))
            mix = ", ".join(f"{k} {v:.2f}" for k, v in info["anchor_mix"].items() if v >= 0.01)
            out.image = refined
            out.tta = (f"UDAIR TTA: CORAL {info['coral_before']:.3g} → {info['coral_after']:.3g} after "
                       f"{info['steps']} steps (anchors: {mix})")
        return out

    def memory_plan(self, height: int, width: int, *, tile: int = TILE, overlap: int = OVERLAP, explain: bool = False,
                    name: str = "image"):
        """The tile to restore a ``height``×``width`` image with in the memory there is, and the predicted
        peak (:func:`core.memory.plan`); raises ``ImageTooLargeError`` when even the smallest tile does not fit."""
        from ..core.memory import plan

        model, tta = self.restorer.model, self.refiner is not None
        return plan(height, width, tile=tile, overlap=overlap, align=model.config.pad_multiple,
                    model_width=model.config.width, explain=explain or tta, tta=tta,
                    device=next(model.parameters()).device.type, name=name)

    def restore(self, image, *, adapters: dict[str, float] | None = None, tile: int = TILE, overlap: int = OVERLAP,
                strength: float | None = None):
        """Restore an image given as a numpy array (H×W×3, uint8, uint16 or float in [0, 1]) or a tensor
        [3, H, W] in [0, 1]; returns the same kind (numpy: same dtype). ``strength``: as in :meth:`run`."""
        import numpy as np

        if isinstance(image, torch.Tensor):
            rgb, back = image.float(), lambda t: t
        else:
            a = np.asarray(image)
            if a.ndim != 3 or a.shape[2] != 3:
                raise ValueError(f"expected an H×W×3 RGB array, got shape {a.shape}")
            if a.dtype == np.uint8 or a.dtype == np.uint16:
                scale = float(np.iinfo(a.dtype).max)
                rgb = torch.from_numpy(a.astype(np.float32) / scale).permute(2, 0, 1)
                dtype = a.dtype
                back = lambda t: (t.permute(1, 2, 0).numpy() * scale).round().astype(dtype)  # noqa: E731
            else:
                rgb = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).permute(2, 0, 1)
                back = lambda t: t.permute(1, 2, 0).numpy()  # noqa: E731
        out = self.run(rgb, adapters=adapters, tile=tile, overlap=overlap, strength=strength).image
        return back(out.clamp(0, 1))

    def __call__(self, src: str | Path, dst: str | Path | None = None, *, overwrite: bool = False,
                 adapters: dict[str, float] | None = None, tile: int = TILE, overlap: int = OVERLAP,
                 max_pixels: int = MAX_PIXELS, strength: float | None = None) -> Path:
        """Restore the image file ``src`` into ``dst`` (default ``NAME_restored.EXT`` beside it), keeping its
        format, bit depth, mode, alpha and metadata; never overwrites unless ``overwrite``. Returns ``dst``."""
        from ..core.io.images import image_size, output_path_for, read_image, write_image

        src = Path(src)
        dst = output_path_for(src, Path(dst) if dst is not None else None, is_batch=False)
        if dst.exists() and not overwrite:  # before the work, not after it (write_image checks again)
            raise FileExistsError(f"{dst}: already exists (pass overwrite=True, --overwrite in `air restore`, "
                                  "to replace it)")
        if (size := image_size(src)) is not None:  # refused before the pixels are decoded
            self.memory_plan(size[1], size[0], tile=tile, overlap=overlap, name=str(src))
        img = read_image(src, max_pixels=max_pixels)
        out = self.run(img.rgb, adapters=adapters, tile=tile, overlap=overlap, strength=strength)
        return write_image(img, out.image, dst, overwrite=overwrite)


def load_pipeline(weights: str | Path | None = None, *, device: str = "auto", use_adapters: bool = True,
                  tta: bool = False, gate: bool = True, precision: str = "auto") -> Pipeline:
    """The pipeline ``air restore`` runs: the bundled base (or ``weights``), every active adapter and the
    matching estimator, on ``device`` (auto: a GPU if there is one); ``tta`` adds the UDAIR refiner;
    ``gate=False`` lets the network change pixels the segmentation head sees as clean; ``precision``: one of
    ``core.runtime.PRECISIONS`` (``auto`` is fp32 on a CPU without native bf16)."""
    from ..core.restore import resolve_device
    from ..core.runtime import resolve_precision

    dev = resolve_device(device)
    resolve_precision(precision, dev)  # an unknown name is refused before the weights load
    restorer = load_restorer(weights, device=dev, use_adapters=use_adapters)
    restorer.gate, restorer.precision = gate, precision
    return Pipeline(restorer, refiner=load_udair_refiner(restorer.info.fingerprint) if tta else None)
