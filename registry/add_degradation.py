"""``air add-degradation NAME``: teach the installed model a new degradation, end to end.

1. data: real pairs (``degraded/`` + ``clean/``, matched by file name) or clean photos degraded by a
   plugin's synthesizer; a seeded share is held out, whole scenes at a time (``registry.pairs``);
2. phase II: a LoRA adapter on the frozen base (``train_adapter``);
3. phase III: the estimator retrained over every active adapter plus the new one, warm-started from the
   current estimator (a few hundred steps instead of thousands);
4. before/after: held-out PSNR of the full pipeline (estimator-blended adapters) on the new task and on
   every old task, with the old set and with the new one;
5. install: the adapter and the estimator go into ``$AIR_HOME``, each by one rename, only after all of
   the above succeeded; an interrupted run leaves the store as it was.

Once phase II is done its adapter is also kept aside (:class:`Resume`): interrupted later, the same command
run again skips straight to phase III instead of training the adapter again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

import torch

from ..core.metrics import quantize8
from ..core.routing import estimated
from ..core.io.images import iter_image_paths, read_image
from ..core.training.adapter import heldout_psnr
from ..core.training.estimator import Source, stored_source
from .discovery import discover
from .staging import Resume, Staging, _data_key, kept_adapter  # noqa: F401 (kept_adapter: the CLI's, from here)
from .store import BUNDLED_FLOORED, BUNDLED_REAL, adapters_dir
from .restorer import Restorer
from .pairs import load_pairs, scene, split


@dataclass
class Task:
    """A held-out evaluation task: (degraded, clean) image pairs for one adapter's degradation."""

    name: str
    pairs: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)
    note: str = ""
    #: PSNR of the output rounded to 8 bits, as a saved photo holds it (the clean row: a float-level change of
    #: a photo given back nearly as it came would otherwise read 60–90 dB against the 100 dB cap).
    quantized: bool = False


def synthetic_task(name: str, synth: Callable, clean: list[torch.Tensor], *, severity: float = 0.5,
                   seed: int = 0, size: int = 256) -> Task:
    """Held-out clean photos (centre crops of ``size``) degraded by ``synth`` at a fixed seed and severity."""
    pairs = []
    for i, c in enumerate(clean):
        _, h, w = c.shape
        s = min(size, h, w) // 8 * 8
        y0, x0 = (h - s) // 2, (w - s) // 2
        c = c[:, y0 : y0 + s, x0 : x0 + s]
        g = torch.Generator().manual_seed(seed + i)
        pairs.append((quantize8(synth(c[None], g, severity)[0]), c))
    return Task(name, pairs, note=f"synthetic, severity {severity}, seeds {seed}…{seed + len(clean) - 1}")


def pipeline_psnr(restorer: Restorer, task: Task) -> float:
    """Mean PSNR of the full pipeline (estimator-chosen weights) on a task."""
    if task.quantized:
        return heldout_psnr(lambda x: quantize8(restorer.restore(x[0]).image)[None], task.pairs)
    return heldout_psnr(lambda x: restorer.restore(x[0]).image[None], task.pairs)


def synthesizers() -> dict[str, Callable]:
    """Working degradation plugins that have a synthesizer, by name."""
    return {r.plugin.name: r.plugin.synthesize for r in discover()
            if r.plugin is not None and getattr(r.plugin, "synthesize", None) is not None}


def estimator_sources(adapters: list) -> tuple[dict[str, Source], list[str]]:
    """A :class:`Source` per installed adapter (its plugin's synthesizer, else its stored views, else for a
    bundled one learnt from real pairs its stand-in, ``store.BUNDLED_REAL``, or for one a floor weights the synthesizer
    it was learnt on, ``store.BUNDLED_FLOORED``); names of adapters with none too."""
    from ..core import degradations

    synths = synthesizers()
    out, missing = {}, []
    for a in adapters:
        if a.name in synths:
            out[a.name] = Source(synth=synths[a.name])
        elif (stored := stored_source(a.path)) is not None:
            out[a.name] = stored
        elif a.origin == "bundled" and a.name in BUNDLED_REAL:
            out[a.name] = Source(synth=getattr(degradations, BUNDLED_REAL[a.name].stand_in))
        elif a.origin == "bundled" and a.name in BUNDLED_FLOORED:
            out[a.name] = Source(synth=getattr(degradations, BUNDLED_FLOORED[a.name]))
        else:
            missing.append(a.name)
    return out, missing


#: How ``air add-degradation`` updates the estimator (:func:`run`'s ``estimator_update``).
ESTIMATOR_UPDATES = ("keep", "distill", "new-only", "all")

#: Share of the estimator's crops exposed down as dark scenes (``train_estimator``'s ``p_dark``, judged: brightening
#: them is an error), and their darkest exposure: the shipped estimator's recipe (CONTRIBUTING.md). Without them
#: nothing held the old estimator's "a dark scene is not low light": after `air add-degradation snow`, PolyU's dark
#: sofa got low light 0.44 and came out at 14.0 dB (input 37.0), held-out PolyU 37.15 → 35.99 (NOTES.md).
DARK_SHARE = 0.1
DARK_FLOOR = 0.4

#: With a time budget: the adapter's share of the time left when it starts, and the share of the time left
#: after the adapter that is kept for the before/after comparison (the estimator gets the rest).
ADAPTER_SHARE = 0.45
COMPARE_SHARE = 0.2

#: The before/after row of held-out clean photos (input PSNR: the 100 dB cap), rounded to 8 bits: what a new output
#: firing on lookalikes costs photos with nothing wrong (snow on white specks). Not a valid adapter name.
CLEAN_TASK = "clean photos"

#: With "distill": how often the new degradation is drawn for the estimator's views against each old one (only its
#: views are judged, so more cost little). Snow: 1 → +2.78/+3.12, 2 → +3.30, 4 → +3.58, 8 → haze −0.25 (NOTES.md).
NEW_VIEWS_WEIGHT = 4.0


#: An old task that loses more than this (dB) when a degradation is added is named in a warning. Measured: heavyrain
#: from Rain100H fired on 3 of 20 rainy 256² crops and cost plugin rain 0.86 dB, where its table showed the number
#: but nothing said so (NOTES.md, 2026-12-07); its other old rows moved by 0.01 at most.
WORSE_DB = 0.3


@dataclass
class Report:
    """What ``air add-degradation`` did: the before/after rows and what it installed."""

    name: str
    dest: Path
    source: dict
    manifest: dict
    estimator: dict
    rows: list[tuple[Task, float, float, float]]  # (task, input PSNR, before, after)
    top1: int
    n_eval: int
    wall_s: float
    resumed: bool = False  # phase II's adapter came from an interrupted run of the same command (Resume)
    phases_s: dict[str, float] = field(default_factory=dict)  # wall seconds per phase, in order

    def worse(self, drop: float = WORSE_DB) -> list[tuple[str, float]]:
        """(task, change in dB) of each old task the new adapter made worse by more than ``drop``; the clean
        photos only once they come back below 40 dB against themselves (above it, a few pixels a grey level off)."""
        return [(t.name, a - b) for t, _, b, a in self.rows if t.name != self.name and a < b - drop
                and (a < 40.0 or t.name != CLEAN_TASK)]


#: The adapter's (steps, LoRA rank) when not given: from a synthesizer, which draws fresh crops without end, and
#: from real pairs, a few hundred photos. Snow at (400, 4), alone at weight 1 on 12 CBSD68 photos under a snow
#: written apart from the plugin (sharp opaque discs): 19.67 → 19.45 dB, opaque flakes left; (400, 8) 19.54;
#: (1500, 4) 21.42; (1500, 8) 22.20, every photo above its input (NOTES.md). Pairs keep (400, 4), the recipe of
#: the bundled realnoise adapter.
SYNTHETIC_RECIPE = (1500, 8)
PAIRED_RECIPE = (400, 4)


def adapter_recipe(synthetic: bool, steps: int | None = None, rank: int | None = None) -> tuple[int, int]:
    """The adapter's (steps, rank): those given, the rest from :data:`SYNTHETIC_RECIPE` or :data:`PAIRED_RECIPE`."""
    recipe = SYNTHETIC_RECIPE if synthetic else PAIRED_RECIPE
    return recipe[0] if steps is None else steps, recipe[1] if rank is None else rank


def run(name: str, data: Path, *, synthetic: str | None = None, clean: Path | None = None, steps: int | None = None,
        rank: int | None = None,
        batch_size: int = 8, crop: int = 96, holdout: float = 0.1, estimator_steps: int = 3200,
        eval_images: int = 8, seed: int = 0, overwrite: bool = False, time_budget: float | None = None,
        fresh: bool = False, estimator_update: str = "keep",
        progress: Callable[[str, int, int], None] = lambda stage, done, total: None) -> Report:
    """Train the adapter, retrain the estimator over every adapter, compare before/after, install both.
    ``progress(stage, done, total)``: stages "adapter", "views", "estimator", "compare". Nothing is
    installed unless every step succeeded (an exception or Ctrl-C leaves the store as it was).
    ``steps`` and ``rank``: by default :data:`SYNTHETIC_RECIPE` with ``synthetic``, else :data:`PAIRED_RECIPE`.
    ``time_budget`` (seconds, the whole job): the adapter gets :data:`ADAPTER_SHARE` of what is left when it
    starts, the estimator all but :data:`COMPARE_SHARE` of what is left then; each runs the steps that fit
    (fewer than asked, never more; the manifest and the summary record how many ran).
    An adapter kept by an interrupted run of the same recipe (:class:`Resume`) is reused unless ``fresh``.
    ``clean``: a folder of clean photos for the other adapters' examples in the estimator's retraining and for
    their before/after rows (split by ``holdout`` too); by default the clean photos of ``data``. Retrained on
    PolyU's or Rain100H's clean side alone, the estimator routed CBSD68's haze and rain worse (−0.7 dB).
    ``estimator_update`` (:data:`ESTIMATOR_UPDATES`), how the current estimator learns the new output:
    "keep" (default) distills, then reads the old outputs from the current estimator exactly
    (:func:`core.estimator.keep`); "distill" retrains it whole, but on the old degradations' views its old outputs
    are taught what the current estimator gives them (``train_estimator(distill=True)``: on whole photos they still
    drifted: CBSD68 haze −0.25 dB against keeping them, NOTES.md); "new-only" learns only the new output,
    on frozen features (``keep_inherited=True``); "all" retrains it whole on judged targets. Measured
    (BENCHMARKS.md): "all" moved old tasks by up to −0.3 dB, "new-only" kept them but left the old outputs
    firing on the new photos (PolyU 34.5 dB against 36.7)."""
    import time

    from ..core.errors import UserError
    from ..core.io.weights import save_estimator
    from ..core.estimator import keep
    from ..core.training.adapter import (
        TrainAdapterConfig, build_manifest, paired_sampler, save_adapter, synthetic_sampler, train_adapter,
    )
    from ..core.training.estimator import (
        EXPOSURE, P_EXPOSED, P_OTHER, P_OTHER_STACKED, P_PAIR_CLEAN, save_views, train_estimator,
    )
    from ..plugins.api import NAME_RE
    from .discovery import get_degradation
    from .restorer import load_restorer
    from .store import BUNDLED_ORDER, active_adapters

    if not NAME_RE.match(name):
        raise UserError(f"name {name!r} must be lowercase letters, digits or '_', starting with a letter")
    if name in BUNDLED_ORDER:
        raise UserError(f"{name!r} is a bundled adapter; give the new degradation another name")
    if (adapters_dir() / name).exists() and not overwrite:
        raise UserError(f"adapter {name!r} is already installed ({adapters_dir() / name}); pass --overwrite to "
                        "retrain it")
    if estimator_update not in ESTIMATOR_UPDATES:
        raise UserError(f"--estimator-update must be one of {', '.join(ESTIMATOR_UPDATES)}, not {estimator_update!r}")
    if not 0 < holdout < 1:
        raise UserError(f"--holdout must lie between 0 and 1, got {holdout}")
    started = time.time()
    clean_dir = clean
    steps, rank = adapter_recipe(synthetic is not None, steps, rank)
    cfg = TrainAdapterConfig(rank=rank, alpha=float(rank), steps=steps, batch_size=batch_size, crop=crop, seed=seed)
    before = load_restorer()
    info = before.info
    try:
        if synthetic is not None:
            synth = get_degradation(synthetic).synthesize
            if synth is None:
                raise UserError(f"plugin {synthetic!r} has no synthesizer; give real pairs with --data instead")
            paths = iter_image_paths([data])
            if not paths:
                raise UserError(f"{data}: no images")
            data_key = _data_key(paths)
            clean = [read_image(p).rgb for p in paths]
            files = [p.name for p in paths]
            tr, ho = split(files, holdout, seed)
            train_clean, held_clean = [clean[i] for i in tr], [clean[i] for i in ho]
            sampler = synthetic_sampler(train_clean, synth)
            new_task = synthetic_task(name, synth, held_clean[:eval_images], seed=10_000 + seed)
            new_source = Source(synth=synth)
            source = {"kind": "synthetic", "plugin": synthetic, "folder": data.name, "images": len(clean)}
        else:
            pairs = load_pairs(data)
            data_key = _data_key(iter_image_paths([data / "degraded", data / "clean"]))
            files = [n for n, _, _ in pairs]
            tr, ho = split(files, holdout, seed)
            train_pairs, held_pairs = [pairs[i] for i in tr], [pairs[i] for i in ho]
            train_clean, held_clean = [c for _, _, c in train_pairs], [c for _, _, c in held_pairs]
            sampler = paired_sampler([d for _, d, _ in train_pairs], train_clean)
            new_task = Task(name, [(d, c) for _, d, c in held_pairs[:eval_images]], note="real pairs")
            new_source = Source(degraded=[d for _, d, _ in train_pairs], clean=train_clean)
            source = {"kind": "pairs", "folder": data.name, "images": len(pairs)}
    except (ValueError, FileNotFoundError) as e:
        raise UserError(str(e)) from None
    if clean_dir is not None:  # the other adapters' examples from photos of every kind, not the new set's
        paths = iter_image_paths([clean_dir]) if clean_dir.is_dir() else []
        if not paths:
            raise UserError(f"--clean {clean_dir}: no images")
        try:
            photos = [read_image(p).rgb for p in paths]
        except (ValueError, FileNotFoundError) as e:
            raise UserError(str(e)) from None
        tr_c, ho_c = split([p.name for p in paths], holdout, seed)
        other_clean, held_clean = [photos[i] for i in tr_c], [photos[i] for i in ho_c]
        source = {**source, "clean": clean_dir.name}  # recorded in the report and the manifest
    else:
        other_clean = train_clean
    small = sum(min(c.shape[1:]) < crop for c in train_clean)
    if small:
        raise UserError(f"{small} training image(s) are smaller than --crop {crop}; lower --crop")
    old = [a for a in active_adapters(info.fingerprint) if a.name != name]
    sources, missing = estimator_sources(old)
    sources[name] = new_source
    if missing:
        raise UserError(f"no training examples for adapter(s) {missing} (no plugin synthesizer, no stored views); "
                        "remove them with `air remove` or reinstall them")
    # The estimator's outputs: not the adapters a detection rule weights (core.routing.DETECTED: jpeg).
    names = estimated([a.name for a in old if a.origin == "bundled"]
                      + sorted([a.name for a in old if a.origin != "bundled"] + [name]))
    old_tasks = [synthetic_task(a.name, sources[a.name].synth, held_clean[:eval_images], seed=20_000 + seed)
                 for a in old if sources[a.name].synth is not None]
    crops = synthetic_task(CLEAN_TASK, lambda x, g, s: x, held_clean[:eval_images]).pairs  # the same centre crops
    old_tasks.append(Task(CLEAN_TASK, [(c, c) for _, c in crops], note="clean photos, nothing to restore; "
                          "output rounded to 8 bits", quantized=True))
    resume = Resume(name, {"name": name, "data": str(Path(data).resolve()), "data_key": data_key,
                           "synthetic": synthetic, "adapter": cfg.model_dump(mode="json"), "holdout": holdout,
                           "time_budget": time_budget, "base": info.fingerprint})
    if fresh:
        resume.clear()
    with Staging(name) as stage:
        after = load_restorer(use_adapters=False)  # the pipeline after; for now the bare base
        bare = after.model
        phases = {"loading": time.time() - started}
        manifest = resume.take(stage.adapter)
        resumed = manifest is not None
        if manifest is not None:  # phase II of an interrupted run of this very command
            progress("adapter", manifest["training"]["steps"], manifest["training"]["steps"])
        else:
            progress("adapter", 0, cfg.steps)
            left = None if time_budget is None else time_budget - (time.time() - started)
            if left is not None and left <= 0:
                raise UserError(f"--time-budget: {time_budget / 60:.1f} min were spent loading the data; give more")
            model = train_adapter(bare, sampler, config=cfg, progress=lambda s, t, loss: progress("adapter", s, t),
                                  time_budget=None if left is None else ADAPTER_SHARE * left)
            cfg = cfg.model_copy(update={"steps": model.steps_run})  # what ran, for the manifest
            held = new_task.pairs
            metrics = {"heldout_images": len(held), "heldout_psnr_input": heldout_psnr(lambda x: x, held),
                       "heldout_psnr_base": heldout_psnr(lambda x: bare(x).image, held),
                       "heldout_psnr_adapter": heldout_psnr(lambda x: model(x).image, held)}
            manifest = build_manifest(name, info.fingerprint, cfg, bare.config.lora_targets,
                                      data={**source, "train_images": len(tr), "heldout_images": len(ho),
                                            "heldout_seed": seed,
                                            "heldout_scenes": len({scene(files[i]) for i in ho})},
                                      metrics=metrics, wall_s=time.time() - started)
            save_adapter(model, stage.adapter, manifest)
            if new_source.degraded is not None:
                save_views(stage.adapter, new_source.degraded, torch.Generator().manual_seed(seed), clean=train_clean)
            resume.keep(stage.adapter)
        phases["adapter"] = time.time() - started - sum(phases.values())
        # The pipeline after: every old adapter and the new one, in the estimator's order; it judges the
        # estimator's targets by restoration (`air train estimator --targets restored`).
        folders = {**{a.name: a.path for a in old}, name: stage.adapter}
        for n in names:
            after.attach_folder(folders[n])
        # 8 steps per batch of views (snow: 3200 on 100 batches +0.58, on 400 +3.12, on 800 +2.82; NOTES.md).
        pool = max(10, estimator_steps // 8)
        progress("views", 0, pool)  # judging the views takes minutes: show the bar before the first is done
        progress("estimator", 0, estimator_steps)
        strength = before.estimator is not None and before.estimator.config.strength  # keep what it had
        # The degradations a rule weights (JPEG): shown to the estimator with every output off.
        others = [sources[a.name].synth for a in old if a.name not in names and sources[a.name].synth is not None]
        est, est_info = train_estimator(
            names, [sources[n] for n in names], other_clean, init=before.estimator, steps=estimator_steps,
            batches=pool, seed=seed, p_clean=0.15, judge=partial(after.best_subsets, strength=strength),
            strength=strength, others=others, p_other=P_OTHER, p_other_stacked=P_OTHER_STACKED, p_exposed=P_EXPOSED,
            p_pair_clean=P_PAIR_CLEAN, p_dark=DARK_SHARE, dark_floor=DARK_FLOOR,
            dark_keep=[n for n in EXPOSURE if n in names],
            keep_inherited=estimator_update == "new-only",
            distill=estimator_update in ("keep", "distill"), relearn=[name],
            source_weights=([NEW_VIEWS_WEIGHT if n == name else 1.0 for n in names]
                            if estimator_update in ("keep", "distill") else None),
            progress=lambda s, t: progress("estimator", s, t), pool_progress=lambda d, t: progress("views", d, t),
            time_budget=None if time_budget is None else max(
                1.0, (1 - COMPARE_SHARE) * (time_budget - (time.time() - started))))
        kept = [n for n in before.estimator.config.adapters if n in names and n != name] if before.estimator else []
        if estimator_update == "keep" and kept:  # the old outputs as the current estimator gives them, exactly
            est, est_info = keep(est, before.estimator, kept), {**est_info, "kept": kept}
        after.estimator = est
        # The adapters a detection rule weights (not the estimator's outputs) belong to the pipeline after, too.
        for a in old:
            if a.name not in names:
                after.attach_folder(a.path)
        spent = time.time() - started - sum(phases.values())  # attaching the adapters, the views, training
        phases["views"] = est_info["synth_s"]
        phases["estimator"] = spent - est_info["synth_s"]
        tasks = [new_task] + old_tasks
        rows = []
        for i, task in enumerate(tasks):
            b, a = pipeline_psnr(before, task), pipeline_psnr(after, task)
            rows.append((task, heldout_psnr(lambda x: x, task.pairs), b, a))
            progress("compare", i + 1, len(tasks))
        phases["compare"] = time.time() - started - sum(phases.values())
        judged = [t for t in tasks if t.name in names]  # the estimator's own outputs
        top1 = sum(int(est.weights(d[None]).argmax()) == names.index(t.name) for t in judged for d, _ in t.pairs)
        n_eval = sum(len(t.pairs) for t in judged)
        seen = {"folder": data.name, **({"clean": clean_dir.name} if clean_dir is not None else {}),
                "warm_start": before.estimator_path.name if before.estimator_path else None}
        save_estimator(est, stage.estimator, training={**est_info, "data": seen},
                       metrics={"heldout_top1": top1 / n_eval, "heldout_images": n_eval})
        dest = stage.commit(name, overwrite)
    resume.clear()
    phases["install"] = time.time() - started - sum(phases.values())
    return Report(name, dest, source, manifest, est_info, rows, top1, n_eval, time.time() - started,
                  resumed=resumed, phases_s={k: round(v, 1) for k, v in phases.items()})
