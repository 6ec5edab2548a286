"""What ``air restore`` runs, as one Python object (:class:`Pipeline`): read → estimate → blend → tiles →
refine → write, on the :class:`~.restorer.Restorer` (the base, its adapters and the estimator)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..core.defaults import OVERLAP
from ..core.io.images import MAX_PIXELS
from .restorer import PipelineError, Restorer, load_restorer, pick_estimator, restorer_for  # noqa: F401  (public here too)


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
    # adapter → (the weight a floor raised it to, why) where a measured floor beat the estimator (core.floors.Floor)
    floored: dict[str, tuple[float, str]] = field(default_factory=dict)
    # adapter → (the factor its weight was scaled by, why) where it made way for another (core.routing.Yield) or
    # the base alone already corrects (core.routing.Temper)
    yielded: dict[str, tuple[float, str]] = field(default_factory=dict)
    # adapter → (the adapter whose weight a floor moved to it, why) (core.floors.Floor.moves_to: lumanoise)
    moved: dict[str, tuple[str, str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # lines for the user (a tile made smaller to fit in memory)
    # share of the pixels read as low light that the gate kept too: the estimator found the photo exposed as
    # meant (core.routing.KeepDark)
    kept_dark: float = 0.0
    # share of the pixels read as haze that the gate kept too: the estimator found no haze (core.routing.KeepHaze)
    kept_haze: float = 0.0
    # adapter → weight of the second pass, routed on the first pass's output where haze or low light led the first
    # (core.routing.Sequel); None where there was one pass
    second: dict[str, float] | None = None
    # where low light led: the low-frequency brightness refitted to the input's (core.tone.ToneGuard)
    toned: bool = False

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

    def route(self, rgb: torch.Tensor, adapters: dict[str, float] | None = None,
              raised: dict[str, tuple[float, str]] | None = None,
              yielded: dict[str, tuple[float, str]] | None = None,
              moved: dict[str, tuple[str, str]] | None = None) -> tuple[torch.Tensor, float, float]:
        """:meth:`assess`, and the weight the fallback adapter took (:meth:`Restorer.route`; 0 with ``adapters``);
        ``raised`` receives the weights a floor raised (core.floors.Floor), ``yielded`` those a yield or temper
        rule scaled down (core.routing.Yield, core.routing.Temper), ``moved`` those a floor moved to its own
        adapter, each where no fixed weight replaced it."""
        if adapters is not None:
            return self.restorer.weights_from({**adapters, **self.fixed}), 1.0, 0.0
        w, strength, extra = self.restorer.route(rgb, raised, yielded, moved)
        for name, v in self.fixed.items():
            w[self.restorer.adapters.index(name)] = v
            for d in (raised, yielded, moved):
                if d is not None:
                    d.pop(name, None)
        return w, strength, extra

    @torch.no_grad()
    def run(self, rgb: torch.Tensor, *, adapters: dict[str, float] | None = None, tile: int | None = None,
            overlap: int = OVERLAP, explain: bool = False, strength: float | None = None, progress=None) -> Restored:
        """Restore one image ``rgb`` [3, H, W] in [0, 1]: estimate (unless ``adapters``), blend, tiles, a second
        pass routed on the output where haze or low light led the first (core.routing.Sequel), then the refiner if
        the pipeline has one. ``explain`` also returns the segmentation and class shares.
        ``strength`` (0 = the input, 1 = all of the restoration) replaces the estimator's choice."""
        from ..core.explain import class_shares

        fit = self.memory_plan(*rgb.shape[-2:], tile=tile, overlap=overlap, explain=explain)
        tile = fit.tile
        floored: dict[str, tuple[float, str]] = {}
        yielded: dict[str, tuple[float, str]] = {}
        moved: dict[str, tuple[str, str]] = {}
        w, chosen, fallback = self.route(rgb, adapters, floored, yielded, moved)
        source = "given" if adapters is not None else ("estimator" if self.restorer.adapters else "none")
        est = self.restorer.estimator
        learned = adapters is None and est is not None and est.config.strength
        strength_source = "given" if strength is not None or adapters is not None else (
            "estimator" if learned else "none")
        strength = chosen if strength is None else strength
        also_clean = self.restorer.also_clean(w, rgb) if source == "estimator" else {}
        # An adapter attached with a fixed weight (--adapter PATH=W) acts in the first pass only: the estimator gives
        # it 0 in the second.
        kw = dict(tile=tile, overlap=overlap, explain=explain or self.refiner is not None, strength=strength,
                  progress=progress, also_clean=also_clean)
        second = None
        if source == "estimator" and self.restorer.wants_second_pass(w):
            res, w2 = self.restorer.restore_twice(rgb, w, **kw)
            second = dict(zip(self.restorer.adapters, map(float, w2)))
        else:
            res = self.restorer.restore(rgb, w, again=False, toned=source == "estimator", **kw)
        shares = class_shares(res.seg_probs, self.classes) if res.seg_probs is not None else None
        names = self.restorer.adapters
        out = Restored(res.image, {n: float(v) for n, v in zip(names, w.tolist())}, source,
                       res.seg_probs if explain else None, shares if explain else None, strength=strength,
                       strength_source=strength_source, clean_share=res.clean_share, fallback=fallback,
                       detected={d.adapter: d.why for d in self.restorer.detecting()} if adapters is None else {},
                       floored=floored, yielded=yielded, moved=moved,
                       notes=[fit.note] if fit.note else [], kept_dark=also_clean.get("lowlight", 0.0),
                       kept_haze=also_clean.get("haze", 0.0),
                       second=second, toned=source == "estimator" and self.restorer.toning(w) is not None)
        if self.refiner is not None:
            from ..plugins.udair import degradation_weights

            refined, info = self.refiner.refine(rgb, res.image, degradation_weights(names, w.tolist(), shares))
            mix = ", ".join(f"{k} {v:.2f}" for k, v in info["anchor_mix"].items() if v >= 0.01)
            out.image = refined
            out.tta = (f"UDAIR TTA: CORAL {info['coral_before']:.3g} → {info['coral_after']:.3g} after "
                       f"{info['steps']} steps (anchors: {mix})")
        return out

    def memory_plan(self, height: int, width: int, *, tile: int | None = None, overlap: int = OVERLAP,
                    explain: bool = False, name: str = "image"):
        """The tile to restore a ``height``×``width`` image with in the memory there is, and the predicted
        peak (:func:`core.memory.plan`); raises ``ImageTooLargeError`` when even the smallest tile does not fit.
        ``tile=None``: the default for the precision the tiles compute in (:meth:`default_tile`)."""
        from ..core.memory import plan

        model, tta = self.restorer.model, self.refiner is not None
        tile = self.default_tile() if tile is None else tile
        # Planned before the routing says whether a second pass comes (core.routing.Sequel): room for one.
        again = self.restorer.sequel is not None and self.restorer.estimator is not None
        return plan(height, width, tile=tile, overlap=overlap, align=model.config.pad_multiple,
                    model_width=model.config.width, explain=explain or tta, tta=tta, again=again,
                    device=next(model.parameters()).device.type, name=name)

    def default_tile(self) -> int:
        """The tile side used when none is given: larger where the tiles compute in bf16 or fp16
        (``core.defaults.default_tile``)."""
        from ..core.defaults import default_tile
        from ..core.runtime import resolve_precision

        device = next(self.restorer.model.parameters()).device
        return default_tile(resolve_precision(self.restorer.precision, device) != torch.float32)

    def restore(self, image, *, adapters: dict[str, float] | None = None, tile: int | None = None,
                overlap: int = OVERLAP, strength: float | None = None):
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
                 adapters: dict[str, float] | None = None, tile: int | None = None, overlap: int = OVERLAP,
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
