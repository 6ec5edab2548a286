"""Training jobs as ``air train ...`` runs them: names and folders resolved through the registry (plugins,
the store, the bundled weights), data read, the trainers of :mod:`air_restore.core.training` called,
results written. The CLI only draws progress and prints what comes back.

``progress(stage, done, total)`` is called with a short stage name ("adapter", "views", "estimator",
"udair"); ``log(text)`` receives the trainers' occasional lines.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

import torch

from ..core.errors import UserError
from ..core.io.images import iter_image_paths, read_image

Progress = Callable[[str, int, int], None]


def _quiet(stage: str, done: int, total: int) -> None:
    pass


def read_photos(folder: Path) -> list[torch.Tensor]:
    """Every image of ``folder`` as an RGB tensor; none is a UserError."""
    if not Path(folder).is_dir():
        raise UserError(f"{folder}: no such folder")
    photos = [read_image(p).rgb for p in iter_image_paths([Path(folder)])]
    if not photos:
        raise UserError(f"{folder}: no images")
    return photos


def family_synthesizer(name: str):
    """(synthesizer, its name for the manifest) that ``--family`` trains built-in class ``name`` on
    (``core.families.adapter_family``); a class without a family is a UserError."""
    from ..core.families import ADAPTER_FAMILIES, FAMILIES, adapter_family

    known = sorted({*FAMILIES, *ADAPTER_FAMILIES})
    if name not in known:
        raise UserError(f"--family: no family for {name!r}; known: {', '.join(known)}")
    return adapter_family(name)


@dataclass
class AdapterRun:
    out: Path
    held: int
    metrics: dict[str, float]
    wall_s: float


def adapter(name: str, out: Path, *, pairs: Path | None = None, synthetic: str | None = None,
            clean: Path | None = None, over: list[str] = (), over_share: float = 0.3, steps: int = 500,
            rank: int = 4, batch_size: int = 8, crop: int = 96, lr: float = 5e-4, holdout: float = 0.1,
            weights: Path | None = None, seed: int = 0, family: bool = False, init: Path | None = None,
            shuffle_colours: float = 0.0, grey: float = 0.0, clean_share: float = 0.0, overwrite: bool = False,
            progress: Progress = _quiet) -> AdapterRun:
    """``air train adapter``: one LoRA adapter on the frozen base, from real pairs or a plugin's synthesizer
    (with ``family``, the widened family of that built-in class, :mod:`air_restore.core.families`); the last
    ``holdout`` share of the images is held out for the before/after metrics, degraded the same way.
    ``init``: an adapter folder of the same rank, trained on the same base, to start from. ``shuffle_colours``: the
    share of training crops whose colour channels are put in a random order
    (:func:`air_restore.core.training.adapter.shuffle_colours`); ``grey``: the share turned grey
    (:func:`~air_restore.core.training.adapter.grey_crops`); ``clean_share``: the share given clean, with their
    clean target (:func:`~air_restore.core.training.adapter.synthetic_sampler`'s ``keep_clean``)."""
    from ..core.evaluation import paired_samples
    from ..core.training.adapter import (
        Over, TrainAdapterConfig, build_manifest, heldout_psnr, paired_sampler, save_adapter,
        grey_crops, shuffle_colours as shuffled, synthetic_sampler, train_adapter, with_clean,
    )
    from ..plugins.api import NAME_RE
    from .discovery import get_degradation
    from .store import load_base

    over = list(over)
    if over and synthetic is None:
        raise UserError("--over needs --synthetic: real pairs cannot be put on top of other degradations")
    if synthetic in over:
        raise UserError(f"--over {','.join(over)}: list the other degradations, not {synthetic!r} itself")
    if not NAME_RE.match(name):
        raise UserError(f"adapter name {name!r} must be lowercase letters, digits or '_', starting with a letter")
    if (pairs is None) == (synthetic is None):
        raise UserError("give exactly one of --pairs DIR or --synthetic PLUGIN --clean DIR")
    if synthetic is not None and clean is None:
        raise UserError("--synthetic needs --clean DIR (clean photos to degrade)")
    if family and synthetic is None:
        raise UserError("--family needs --synthetic NAME (a built-in degradation with a widened family)")
    for flag_name, share in (("--shuffle-colours", shuffle_colours), ("--grey", grey), ("--clean-share", clean_share)):
        if not 0.0 <= share <= 1.0:
            raise UserError(f"{flag_name} {share}: give a share between 0 and 1")
    if out.exists() and not overwrite:
        raise UserError(f"{out}: already exists (pass --overwrite to replace it)")
    if init is not None and not (init / "adapter_config.json").is_file():
        raise UserError(f"--init {init}: not an adapter folder (no adapter_config.json)")
    cfg = TrainAdapterConfig(rank=rank, steps=steps, batch_size=batch_size, crop=crop, lr=lr, seed=seed,
                             alpha=float(rank))
    base, info = load_base(weights)
    started_from = None
    if init is not None:
        from .adapters import load_for_base

        init_manifest, _ = load_for_base(init, info.fingerprint)  # made for this base, or a clear refusal
        if init_manifest.get("rank") != rank:
            raise UserError(f"--init {init}: rank {init_manifest.get('rank')}, not --rank {rank}")
        started_from = {"name": init_manifest.get("name"), "created": init_manifest.get("created")}
    if pairs is not None:
        try:
            data = [(s.degraded, s.clean) for s in paired_samples(pairs)]
        except (ValueError, FileNotFoundError) as e:
            raise UserError(str(e)) from None
        source = {"kind": "pairs", "folder": pairs.name}
    else:
        synth, family_name = (family_synthesizer(synthetic) if family
                              else (get_degradation(synthetic).synthesize, None))
        g = torch.Generator().manual_seed(seed + 1)
        data = [(synth(c[None], g, 0.5)[0].clamp(0, 1), c) for c in read_photos(clean)]
        source = {"kind": "synthetic", "plugin": synthetic, "folder": clean.name, "heldout_severity": 0.5}
        if family:
            source["family"] = family_name
        under = [get_degradation(n).synthesize for n in over]
        if over:
            source.update(over=over, over_share=over_share)
    small = [i for i, (d, _) in enumerate(data) if min(d.shape[1:]) < crop]
    if small:
        raise UserError(f"{len(small)} image(s) are smaller than --crop {crop}; lower --crop")
    n_hold = max(1, round(holdout * len(data))) if len(data) > 1 else 0
    held, train = data[len(data) - n_hold:], data[: len(data) - n_hold]
    if not train:
        raise UserError("need at least 2 images (one to train on, one held out)")
    if pairs is not None:
        sampler = with_clean(grey_crops(shuffled(paired_sampler([d for d, _ in train], [c for _, c in train]),
                                                 shuffle_colours), grey), clean_share)
    else:
        sampler = synthetic_sampler([c for _, c in train], synth, shuffle=shuffle_colours, grey=grey,
                                    keep_clean=clean_share, over=Over(under, over_share, base) if over else None)
    for key, share in (("colour_shuffle", shuffle_colours), ("grey", grey), ("clean_share", clean_share)):
        if share:
            source[key] = share
    if started_from is not None:
        source["init"] = started_from
    started = time.time()
    model = train_adapter(base, sampler, config=cfg, init=init,
                          progress=lambda s, t, loss: progress("adapter", s, t))
    metrics = {"heldout_images": len(held), "heldout_psnr_input": heldout_psnr(lambda x: x, held),
               "heldout_psnr_base": heldout_psnr(lambda x: base(x).image, held),
               "heldout_psnr_adapter": heldout_psnr(lambda x: model(x).image, held)}
    manifest = build_manifest(name, info.fingerprint, cfg, base.config.lora_targets,
                              data={**source, "train_images": len(train), "heldout_images": len(held)},
                              metrics=metrics, wall_s=time.time() - started)
    save_adapter(model, out, manifest, overwrite=overwrite)
    return AdapterRun(out, len(held), metrics, time.time() - started)


def estimator(clean: Path, out: Path | None = None, *, install: bool = False,
              adapters: list[str] | None = None, steps: int = 5000,
              batches: int = 600, seed: int = 0, clean_share: float = 0.15, targets: str = "restored",
              strength: bool = False, min_severity: float = 0.2, family: bool = False,
              family_of: list[str] | None = None, overwrite: bool = False, dark_share: float = 0.0,
              dark_floor: float = 0.25, init: Path | None = None, distill: bool = False,
              dark_clean_only: bool = False,
              progress: Progress = _quiet) -> tuple[list[str], Path]:
    """``air train estimator``: the estimator for ``adapters`` (or, with ``install``, for the installed ones,
    written into the store); returns (adapter names in order, file written). ``strength`` adds the strength
    output (judged by restoration; off by default: measured, it cost low light 0.85 dB, NOTES.md). With
    ``family``, every adapter named after a built-in class with a widened family is shown the family its
    adapter trains on with ``--family`` (:func:`core.families.adapter_family`); with ``family_of``, only
    those adapters are (measured with rain for the bundled estimator, it cost haze+noise 0.8 dB: NOTES.md).
    ``dark_share``: share of the crops taken from a darker exposure of the photo, the clean version as dark
    (:func:`core.training.estimator.build_pool`'s ``p_dark``), exposed down to ``dark_floor`` at most.
    ``init``: an estimator file to start from (the same adapters, in order); with ``distill`` every view keeps
    the routing ``init`` gives it except the dark scenes, which learn their judged targets (``train_estimator``'s
    ``distill``): one lesson added, the rest kept. Dark views of low light keep it too (``EXPOSURE``); with
    ``dark_clean_only`` every degraded dark view does, so the lesson is the clean dark crops alone."""
    from ..core.io.weights import read_base_info, read_estimator, save_estimator
    from ..core.training.estimator import EXPOSURE, P_OTHER, P_PAIR_CLEAN, Source, train_estimator
    from .add_degradation import estimator_sources, synthesizers
    from .restorer import restorer_for
    from ..core.routing import DETECTED, estimated
    from .store import BUNDLED_ORDER, active_adapters, bundled_adapters, bundled_base_path, local_estimator_path

    if (out is None) == (not install):
        raise UserError("give exactly one of --out FILE or --install")
    if targets not in ("restored", "present"):
        raise UserError(f"--targets {targets!r}: use restored or present")
    if strength and targets != "restored":
        raise UserError("the strength output is judged by restoration: use --targets restored, or --no-strength")
    if out is not None and out.exists() and not overwrite:
        raise UserError(f"{out}: already exists (pass --overwrite to replace it)")
    if not clean.is_dir():
        raise UserError(f"{clean}: no such folder")
    synths = synthesizers()
    if install:
        everything = active_adapters(read_base_info(bundled_base_path()).fingerprint)
        # An adapter a detection rule weights (core.routing.DETECTED: jpeg) stays out of the estimator.
        names = estimated([a.name for a in everything])
        found = [a for a in everything if a.name in names]
        if not names:
            raise UserError("no adapters are installed (see `air list`)")
        by_name, missing = estimator_sources(found)
        if missing:
            raise UserError(f"adapter(s) {missing} have no plugin synthesizer and no stored examples; remove "
                            "them with `air remove NAME` or install their plugins")
        sources = [by_name[n] for n in names]
        out = local_estimator_path()
    else:
        names = estimated(list(BUNDLED_ORDER)) if adapters is None else list(adapters)
        if len(set(names)) != len(names) or not names:
            raise UserError(f"--adapters {','.join(names)!r}: give unique, comma-separated names")
        # A bundled adapter learnt from real pairs (realnoise) is shown by its stand-in (store.BUNDLED_REAL).
        stored, _ = estimator_sources([a for a in bundled_adapters() if a.name in names and a.name not in synths])
        missing = [n for n in names if n not in synths and n not in stored]
        if missing:
            raise UserError(f"no plugin with a synthesizer for {missing}; available: {', '.join(sorted(synths))}")
        sources = [Source(synth=synths[n]) if n in synths else stored[n] for n in names]
    if family and family_of:
        raise UserError("give --family (every adapter's family) or --family-of NAMES (those only), not both")
    if family_of:
        unknown = [n for n in family_of if n not in names]
        if unknown:
            raise UserError(f"--family-of {','.join(unknown)}: not among the estimator's adapters ({', '.join(names)})")
        for n in family_of:
            family_synthesizer(n)  # a name without a family is a UserError
    if family or family_of:
        from ..core.families import ADAPTER_FAMILIES, FAMILIES

        shown = set(family_of) if family_of else {*FAMILIES, *ADAPTER_FAMILIES}
        sources = [Source(synth=family_synthesizer(n)[0]) if n in shown and s.synth is not None else s
                   for n, s in zip(names, sources)]  # what `air train adapter --family` trains each on
    if dark_clean_only and not distill:
        raise UserError("--dark-clean-only chooses which dark views --distill teaches: give --distill too")
    if distill and (init is None or not dark_share):
        raise UserError("--distill keeps --init FILE's routing everywhere but on the dark scenes: give --init and "
                        "--dark-share")
    start = None if init is None else read_estimator(init)
    if start is not None and list(start.config.adapters) != names:
        raise UserError(f"--init {init}: an estimator for {','.join(start.config.adapters)}, not for "
                        f"{','.join(names)} (in that order)")
    photos = read_photos(clean)
    judge = partial(restorer_for(names).best_subsets, strength=strength) if targets == "restored" else None
    # The degradations a detection rule weights (JPEG) are shown too, with every output off.
    others = [synths[n] for n in sorted({d.adapter for d in DETECTED} - set(names)) if n in synths]
    est, info = train_estimator(names, sources, photos, batches=batches, steps=steps, seed=seed,
                                p_clean=clean_share, judge=judge, strength=strength, min_severity=min_severity,
                                others=others, p_other=P_OTHER, p_pair_clean=P_PAIR_CLEAN, p_dark=dark_share,
                                dark_floor=dark_floor,
                                init=start, distill=distill,
                                dark_keep=list(names) if dark_clean_only else [n for n in EXPOSURE if n in names],
                                progress=lambda s, t: progress("estimator", s, t),
                                pool_progress=lambda d, t: progress("views", d, t))
    shown_as = "adapter" if family else f"adapter: {','.join(family_of)}" if family_of else None
    data = {"folder": clean.name, "images": len(photos), **({"family": shown_as} if shown_as else {}),
            **({"init": init.name} if init is not None else {})}
    save_estimator(est, out, training={**info, "data": data})
    return names, out


@dataclass
class UdairRun:
    fingerprint: str
    adapters: list[str]
    metrics: dict[str, float]
    warnings: list[str] = field(default_factory=list)


def udair(clean: Path, out: Path, *, steps: int, time_budget: float | None, max_severity: float, codebook: int,
          seed: int, weights: Path | None = None, threads: int = 0, overwrite: bool = False,
          progress: Callable[[int, int, dict], None] | None = None,
          log: Callable[[str], None] = print) -> UdairRun:
    """``air train udair``: the UDAIR refiner on the frozen restorer (base + installed adapters)."""
    from ..plugins.udair import UdairConfig, save_udair
    from ..plugins.udair_training import TrainUdairConfig, restorer_fn, train_udair
    from .discovery import get_degradation
    from .restorer import load_restorer

    if out.exists() and not overwrite:
        raise UserError(f"{out}: already exists (pass --overwrite to replace it)")
    if not clean.is_dir():
        raise UserError(f"{clean}: no such folder")
    if threads:
        torch.set_num_threads(threads)
    cfg = TrainUdairConfig(steps=steps, time_budget=time_budget, max_severity=max_severity, seed=seed,
                           model=UdairConfig(codebook=codebook))
    synths = [get_degradation(n).synthesize for n in cfg.model.classes[1:]]
    photos = read_photos(clean)
    restorer = load_restorer(weights)
    if any(s is None for s in synths):
        raise UserError("every built-in degradation needs a synthesizer to make training images")
    for w in restorer.warnings:
        log(f"warning: {w}")
    net, anchors, info = train_udair(photos, synths, restorer_fn(restorer), config=cfg, progress=progress, log=log)
    info["training"]["data"] = {"folder": Path(clean).name, "images": len(photos)}
    fp = save_udair(net, anchors, out, base_fingerprint=restorer.info.fingerprint, adapters=restorer.adapters,
                    training=info["training"], metrics=info["metrics"])
    return UdairRun(fp, list(restorer.adapters), info["metrics"])
