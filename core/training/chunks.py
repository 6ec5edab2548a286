"""Chunked training of the base (``air train base --chunked``): a long run made of short spans.

Each chunk trains for at most ``time_budget`` seconds, then writes the EMA weights (``base.safetensors``,
fp16, a few MB), ``training-state.json`` (step, seed position, schedule position, metrics, the chunk log)
and appends to ``log.jsonl``, so that the next span (another machine, days later) resumes where this one
stopped. The optimizer state is not kept (too big to commit): each chunk re-warms the learning rate
over ``config.rewarm`` steps instead (BENCHMARKS.md shows the held-out curve across resumes).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import torch

from ..arch import AirUNet
from ..cutmix import Synthesizer, cutmix_batch
from ..errors import InvalidValueError
from ..io.files import atomic_write_text
from ..io.weights import load_base, save_base
from .base import (
    TrainBaseConfig, _cutmix_crops, _engine, _evaluate, _losses, _lr_at, load_clean_folder, random_crops,
)


STATE_FILE = "training-state.json"
STATE_VERSION = 1
#: Settings a chunked run keeps from its first chunk (recorded in its state), whatever a later chunk is given.
RUN_SETTINGS = ("batch_size", "crop", "lr", "warmup", "seed", "val_every")


def read_chunk_state(run_dir: Path) -> dict | None:
    """The state of a chunked run, or None when ``run_dir`` has none yet."""
    path = Path(run_dir) / STATE_FILE
    if not path.is_file():
        return None
    state = json.loads(path.read_text())
    if state.get("state_version") != STATE_VERSION:
        raise InvalidValueError(f"{path}: state version {state.get('state_version')!r}, expected {STATE_VERSION}")
    return state


def chunk_lr(step: int, chunk_step: int, cfg: TrainBaseConfig) -> float:
    """Cosine schedule over the whole run (``cfg.steps``), times a short linear warm-up at the start
    of every resumed chunk (its optimizer starts empty)."""
    lr = _lr_at(step, cfg.steps, cfg)
    if step >= cfg.warmup and cfg.rewarm and chunk_step < cfg.rewarm:
        lr *= (chunk_step + 1) / cfg.rewarm
    return lr


def train_base_chunk(
    data_dir: Path,
    run_dir: Path,
    *,
    config: TrainBaseConfig,
    time_budget: float,
    init: Path | None = None,
    change_recipe: bool = False,
    synthesizer_for: Callable[[str], Synthesizer] | None = None,
    progress: Callable[[int, int, dict], None] | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Train one chunk of at most ``time_budget`` seconds (wall clock, start-up included), resuming
    from ``run_dir`` when it holds a state; returns the new state.

    The first chunk starts from ``init`` (base weights) or from scratch and takes ``config``; later
    chunks take the config recorded in the state, except ``steps`` (may be raised to extend the
    schedule) and, only with ``change_recipe``, ``config.recipe`` (the change is logged per chunk).
    ``synthesizer_for`` maps a class name to its synthesizer (the plugins'; the CLI passes the registry's)
    for the recipes that are not one of ``core.families.RECIPES``.
    """
    from accelerate import Accelerator

    from ..families import COLOUR_SHUFFLE, DIM_TARGET_RECIPES, GREY, RECIPES, SKY_TARGET_RECIPES, whole_crop, widened

    started = time.time()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    state = read_chunk_state(run_dir)
    if state is not None:
        recorded = TrainBaseConfig.model_validate(state["config"])
        update = {"steps": max(recorded.steps, config.steps), "mixed_precision": config.mixed_precision,
                  "compile": config.compile}
        if change_recipe and config.recipe != recorded.recipe:
            update["recipe"] = config.recipe
            log(f"recipe changes from {recorded.recipe} to {config.recipe} at step {state['step']}")
        cfg = recorded.model_copy(update=update)
        kept = [f"{name.replace('_', ' ')} {getattr(recorded, name)} (given {getattr(config, name)})"
                for name in RUN_SETTINGS if getattr(config, name) != getattr(recorded, name)]
        if kept:  # a chunk asked for a size its machine cannot hold would otherwise fail without saying why
            log(f"the run's own {', '.join(kept)}: a run keeps its settings; only --steps, --recipe, "
                "--mixed-precision and --compile change between chunks")
    else:
        cfg = config
    if cfg.recipe in RECIPES:
        synthesizers, stack_with = widened(cfg.model.classes, cfg.recipe)
    else:
        if synthesizer_for is None:
            raise ValueError(f"recipe {cfg.recipe!r} takes the plugins' synthesizers: pass synthesizer_for")
        synthesizers = [synthesizer_for(c) for c in cfg.model.classes[1:]]
        stack_with = synthesizer_for("noise")
    step = state["step"] if state else 0
    chunk = state["chunks"] + 1 if state else 1
    if step >= cfg.steps:
        raise InvalidValueError(f"{run_dir}: the run is complete ({step} of {cfg.steps} steps); raise --steps to go on")

    acc = Accelerator(mixed_precision=cfg.mixed_precision)
    dev = acc.device
    data, names = load_clean_folder(Path(data_dir), min_side=cfg.crop)
    n_val = min(cfg.val_images, len(names) // 5)
    train_data, val_data = data[: len(names) - n_val].to(dev), data[len(names) - n_val:].to(dev)
    log(f"chunk {chunk} from step {step}: {len(names) - n_val} training photos, {n_val} held out, on {dev}")

    # Every chunk draws fresh crops: the data position is the chunk number.
    g = torch.Generator(device=dev).manual_seed(cfg.seed * 1000 + chunk * 7919 + acc.process_index)
    gv = torch.Generator(device=dev).manual_seed(12345)  # the same held-out crops in every chunk
    val_batch = None
    if n_val:
        vc = random_crops(val_data, 4 * n_val, cfg.crop, gv)
        # Every class in regions (no whole_crop), so the held-out crops stay those of earlier recipes.
        val_batch = (vc, *cutmix_batch(vc, synthesizers, gv, stack_with=stack_with,
                                       p_clean=cfg.p_clean, p_stack=cfg.p_stack))

    model = AirUNet(config=cfg.model)
    start_from = run_dir / "base.safetensors" if state else (Path(init) if init else None)
    if start_from is not None:
        loaded, info = load_base(start_from)
        if loaded.config != cfg.model:
            raise InvalidValueError(f"{start_from}: its model config differs from the run's")
        model.load_state_dict(loaded.state_dict())
        log(f"weights from {start_from} ({info.fingerprint})")
    # The step count only shapes the progress bar here: the schedule is the whole run's (chunk_lr), and the
    # chunk stops when its time is up, keeping 20 s for validation and saving.
    first = step
    engine = _engine(model.to(dev), cfg, acc, lr_at=lambda s, total: chunk_lr(s, s - first, cfg), ema_ramp=True,
                     progress=progress, time_budget=max(1.0, time_budget - 20.0 - (time.time() - started)))
    engine.resume_at(first)
    raw, ema = engine.model, engine.ema

    def validate(net: AirUNet) -> dict:
        return _evaluate(net, val_batch, acc)

    def ema_model() -> AirUNet:
        net = AirUNet(config=cfg.model).to(dev)
        net.load_state_dict(ema if ema is not None else raw.state_dict())
        return net

    rows = []
    if not state:  # where the run starts, so the log shows what the first chunk changed
        rows.append({"step": step, "chunk": 0, **validate(ema_model())})
        log(json.dumps(rows[-1]))
    # What the recipe does to each batch besides its synthesizers (fixed for the chunk).
    recipe_options = dict(dim_targets=cfg.recipe in DIM_TARGET_RECIPES, sky_targets=cfg.recipe in SKY_TARGET_RECIPES,
                          whole_crop=whole_crop(cfg.model.classes, cfg.recipe),
                          colour_shuffle=COLOUR_SHUFFLE.get(cfg.recipe, 0.0), grey=GREY.get(cfg.recipe, 0.0))
    for step in engine:
        batch = _cutmix_crops(train_data, cfg, g, synthesizers, stack_with, **recipe_options)
        loss_l1, _, loss = _losses(engine, batch, cfg)
        engine.update(loss, {"loss": loss.item()} if (step + 1) % 50 == 0 else {})
        step = engine.step
        if step % cfg.val_every == 0:
            rows.append({"step": step, "chunk": chunk, "lr": engine.lr,
                         "loss_l1": loss_l1.item(), "elapsed_s": round(time.time() - started, 1),
                         **validate(ema_model())})
            log(json.dumps(rows[-1]))
    chunk_step = engine.step - first

    final = ema_model() if cfg.ema else raw
    metrics = validate(final)
    rows.append({"step": step, "chunk": chunk, "lr": engine.lr,
                 "elapsed_s": round(time.time() - started, 1), **metrics})
    log(json.dumps(rows[-1]))
    chunk_s = round(time.time() - started, 1)
    device_name = torch.cuda.get_device_name() if dev.type == "cuda" else "cpu"
    chunks_log = (state["chunk_log"] if state else []) + [
        {"chunk": chunk, "steps": chunk_step, "to_step": step, "wall_s": chunk_s, "device": device_name,
         "recipe": cfg.recipe}
    ]
    new_state = {
        "state_version": STATE_VERSION,
        "step": step,
        "chunks": chunk,
        "lr_next": chunk_lr(step, cfg.rewarm, cfg),
        "seed_position": {"seed": cfg.seed, "next_chunk": chunk + 1},
        "init": state["init"] if state else (Path(init).name if init else None),
        "wall_s_total": round((state["wall_s_total"] if state else 0) + chunk_s, 1),
        "metrics": metrics,
        "config": json.loads(cfg.model_dump_json()),
        "chunk_log": chunks_log,
    }
    if acc.is_main_process:
        training = {
            "data": {"folder": Path(data_dir).name, "images": len(names) - n_val, "held_out": n_val, "crop": cfg.crop},
            "recipe": cfg.recipe, "steps": step, "chunks": chunk, "init": new_state["init"], "weights": "ema",
            "wall_s": new_state["wall_s_total"], "device": device_name,
        }
        save_base(final, run_dir / "base.safetensors", training=training, metrics=metrics)
        with open(run_dir / "log.jsonl", "a") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
        atomic_write_text(run_dir / STATE_FILE, json.dumps(new_state, indent=1) + "\n")
    return new_state
