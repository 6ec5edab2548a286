"""Phase I training of the base restorer with Degradation CutMix (``air train base``).

Runs through accelerate, so ``accelerate launch -m air_restore.cli.main train base ...`` scales it to
several GPUs. Clean photos are loaded once onto the device; crops, CutMix and the degradations are
made there, on the fly, from a seeded generator. Checkpoints (safetensors: model, EMA, optimizer
state) are written atomically and a run resumes from its last one. Short resumable spans on a borrowed
GPU (``--chunked``) are :mod:`.chunks`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from ..io.images import iter_image_paths
from ..arch import AirUNet, AirUNetConfig, count_parameters
from ..cutmix import Synthesizer, cutmix_batch
from ..errors import InvalidValueError
from ..metrics import psnr
from ..io.weights import load_base, save_base
from .engine import Engine, cosine_lr



class TrainBaseConfig(BaseModel):
    """Everything that defines a Phase I run (recorded in the weights' metadata)."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(20000, ge=1, description="Optimizer steps (upper bound when time_budget is set).")
    batch_size: int = Field(64, ge=1, description="Crops per step and process.")
    crop: int = Field(128, ge=16, description="Square crop side in pixels.")
    lr: float = Field(1e-3, gt=0, description="Peak AdamW learning rate (cosine decay, linear warm-up).")
    warmup: int = Field(200, ge=0, description="Warm-up steps.")
    weight_decay: float = Field(0.0, ge=0)
    seg_weight: float = Field(0.05, ge=0, description="λ in L1 + λ·CE(segmentation).")
    ema: float = Field(0.999, ge=0, lt=1, description="EMA decay of the shipped weights (0 = none).")
    seed: int = 0
    val_images: int = Field(16, ge=0, description="Images held out of the data folder for validation.")
    val_every: int = Field(1000, ge=1)
    checkpoint_every: int = Field(2000, ge=1)
    time_budget: float | None = Field(
        None, gt=0, description="Seconds for the whole run: the step count is fitted to the measured speed."
    )
    compile: bool = Field(False, description="torch.compile the model (GPU).")
    mixed_precision: str = Field("no", description="accelerate mixed precision: no, bf16 or fp16.")
    channels_last: bool = Field(True, description="channels_last memory format: 1.37× the steps/s on a 2-core "
                                "AVX2 CPU (benchmarks/train_speed.py); the GPU path always used it.")
    recipe: Literal["v1", "widened", "widened2", "widened3", "widened4", "widened5", "widened6", "widened7"] = Field(
        "v1", description="v1: one built-in synthesizer per class, noise stacked; widened: degradation "
        "families and camera-pipeline stacks (core.families); widened2: also dim clean targets; widened3: "
        "also only clearly dark low light; widened4: low light at an absolute mean brightness of 0.02–0.12; "
        "widened5: also JPEG after haze and flat skies among the clean targets (featureless fog stays featureless); "
        "widened6: also low light over whole crops only (no region pasted in or over it) and half the crops' colour "
        "channels reordered (no green shadows learnt from the photos); widened7: also luminance noise and 15% of "
        "the crops grey (noise found on grey photos too)."
    )
    p_clean: float = Field(0.1, ge=0, le=1, description="CutMix: chance that a background or region stays clean.")
    p_stack: float = Field(0.2, ge=0, le=1, description="CutMix: chance that a region gets a second degradation.")
    rewarm: int = Field(
        100, ge=0, description="Chunked runs: warm-up steps after a resume (the optimizer state is not kept)."
    )
    model: AirUNetConfig = Field(default_factory=AirUNetConfig)


def load_clean_folder(folder: Path, *, min_side: int) -> tuple[torch.Tensor, list[str]]:
    """All photos of ``folder`` as one uint8 tensor [N, 3, H, W] (landscape; portrait ones transposed,
    all centre-cropped to the smallest size). Images smaller than ``min_side`` are skipped."""
    paths = iter_image_paths([Path(folder)])
    arrays, names = [], []
    for p in paths:
        with Image.open(p) as im:
            a = np.asarray(im.convert("RGB"))
        if a.shape[0] > a.shape[1]:
            a = a.transpose(1, 0, 2)
        if min(a.shape[:2]) < min_side:
            continue
        arrays.append(a)
        names.append(p.name)
    if not arrays:
        raise InvalidValueError(f"{folder}: no usable images (need photos at least {min_side}px on each side)")
    h = min(a.shape[0] for a in arrays)
    w = min(a.shape[1] for a in arrays)
    out = np.stack([a[(a.shape[0] - h) // 2:][:h, (a.shape[1] - w) // 2:][:, :w] for a in arrays])
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous(), names


def random_crop(im: torch.Tensor, size: int, g: torch.Generator, *, mode: str = "nearest") -> torch.Tensor:
    """A random ``size``² crop of one photo [3, H, W]; a photo smaller than that is cropped to its short
    side and resized (``mode`` of ``F.interpolate``)."""
    _, h, w = im.shape
    s = min(size, h, w)
    y0 = int(torch.randint(0, h - s + 1, (1,), generator=g))
    x0 = int(torch.randint(0, w - s + 1, (1,), generator=g))
    crop = im[:, y0 : y0 + s, x0 : x0 + s]
    return F.interpolate(crop[None], size=(size, size), mode=mode)[0] if s != size else crop


def random_crops(data: torch.Tensor, batch: int, crop: int, g: torch.Generator) -> torch.Tensor:
    """[B, 3, crop, crop] float crops from uint8 data [N, 3, H, W] with random flips and transposes."""
    n, _, h, w = data.shape
    dev = data.device
    idx = torch.randint(0, n, (batch,), generator=g, device=dev)
    oy = torch.randint(0, h - crop + 1, (batch,), generator=g, device=dev)
    ox = torch.randint(0, w - crop + 1, (batch,), generator=g, device=dev)
    ar = torch.arange(crop, device=dev)
    ys = (oy[:, None] + ar)[:, None, :, None]
    xs = (ox[:, None] + ar)[:, None, None, :]
    ch = torch.arange(3, device=dev)[None, :, None, None]
    x = data[idx[:, None, None, None], ch, ys, xs].float() / 255
    r = torch.rand((3,), generator=g, device=dev).tolist()
    if r[0] < 0.5:
        x = x.flip(-1)
    if r[1] < 0.5:
        x = x.flip(-2)
    if r[2] < 0.5:
        x = x.transpose(-1, -2)
    return x.contiguous()


def _lr_at(step: int, total: int, cfg: TrainBaseConfig) -> float:
    return cosine_lr(step, total, lr=cfg.lr, warmup=cfg.warmup, floor=0.02)


def _evaluate(net: AirUNet, val_batch, acc) -> dict:
    """Held-out metrics of ``net`` on the fixed validation crops (clean, degraded, labels)."""
    if val_batch is None:
        return {}
    clean, degraded, labels = val_batch
    net.eval()
    with torch.no_grad(), acc.autocast():
        outs = [net(degraded[i : i + 16]) for i in range(0, degraded.shape[0], 16)]
    net.train()
    img = torch.cat([o.image.float() for o in outs])
    seg = torch.cat([o.seg_logits.float() for o in outs])
    return {
        "val_psnr_input": psnr(degraded, clean).mean().item(),
        "val_psnr": psnr(img, clean).mean().item(),
        "val_seg_acc": (seg.argmax(1) == labels).float().mean().item(),
    }


def _cutmix_crops(data: torch.Tensor, cfg: TrainBaseConfig, g: torch.Generator, synthesizers, stack_with, *,
                  dim_targets: bool = False, sky_targets: bool = False, whole_crop: tuple[int, ...] = (),
                  colour_shuffle: float = 0.0, grey: float = 0.0):
    """One training batch (clean, degraded, labels): random crops, a ``colour_shuffle`` share of them with their
    colour channels reordered (widened6, widened7), a ``grey`` share turned grey (widened7), optionally some darker
    targets (recipes widened2 to widened7) and some with a flat sky (widened5 to widened7), then Degradation CutMix
    (``whole_crop``: as :func:`core.cutmix.cutmix_batch` takes it)."""
    clean = random_crops(data, cfg.batch_size, cfg.crop, g)
    if colour_shuffle:
        from ..families import channel_orders

        order = channel_orders(clean.shape[0], g, colour_shuffle, clean.device)
        clean = clean[torch.arange(clean.shape[0], device=clean.device)[:, None], order]
    if grey:
        from ..families import grey_picks, luma

        clean = torch.where(grey_picks(clean.shape[0], g, grey, clean.device).view(-1, 1, 1, 1), luma(clean), clean)
    if dim_targets:
        from ..families import vary_exposure

        clean = vary_exposure(clean, g)
    if sky_targets:
        from ..families import with_sky

        clean = with_sky(clean, g)
    with torch.no_grad():
        degraded, labels = cutmix_batch(clean, synthesizers, g, stack_with=stack_with,
                                        p_clean=cfg.p_clean, p_stack=cfg.p_stack, whole_crop=whole_crop)
    return clean, degraded, labels


def _losses(engine: Engine, batch, cfg: TrainBaseConfig):
    """(L1 loss, CE loss, total loss) of the model on one batch (clean, degraded, labels)."""
    clean, degraded, labels = batch
    with engine.autocast():
        out = engine.forward(engine.input(degraded))
        loss_l1 = F.l1_loss(out.image.float(), clean)
        loss_ce = F.cross_entropy(out.seg_logits.float(), labels)
    return loss_l1, loss_ce, loss_l1 + cfg.seg_weight * loss_ce


def _engine(model: AirUNet, cfg: TrainBaseConfig, acc, **kw) -> Engine:
    """The base's optimizer loop: AdamW (β2 0.99), gradient clipping at 1, accelerate, channels_last,
    torch.compile if asked, the EMA of ``cfg.ema``."""
    return Engine(model, lr=cfg.lr, steps=cfg.steps, weight_decay=cfg.weight_decay, betas=(0.9, 0.99),
                  clip=1.0, compile=cfg.compile, ema=cfg.ema, channels_last=cfg.channels_last,
                  accelerator=acc, **kw)


def train_base(
    data_dir: Path,
    out_dir: Path,
    synthesizers: Sequence[Synthesizer],
    *,
    config: TrainBaseConfig,
    stack_with: Synthesizer | None = None,
    resume: bool = True,
    init: Path | None = None,
    progress: Callable[[int, int, dict], None] | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Train the base restorer; returns the path of the final weights (``out_dir/base.safetensors``).

    synthesizers: one per degradation class of ``config.model.classes[1:]``, in that order.
    """
    from accelerate import Accelerator

    cfg = config
    if len(synthesizers) != len(cfg.model.classes) - 1:
        raise ValueError(
            f"got {len(synthesizers)} synthesizers for classes {cfg.model.classes[1:]}; give one per class"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    acc = Accelerator(mixed_precision=cfg.mixed_precision)
    dev = acc.device
    started = time.time()

    data, names = load_clean_folder(Path(data_dir), min_side=cfg.crop)
    n_val = min(cfg.val_images, len(names) // 5)
    train_data, val_data = data[: len(names) - n_val].to(dev), data[len(names) - n_val:].to(dev)
    log(f"data: {len(names) - n_val} training photos, {n_val} held out, {tuple(data.shape[2:])} px, on {dev}")

    g = torch.Generator(device=dev).manual_seed(cfg.seed * 1000 + acc.process_index)
    gv = torch.Generator(device=dev).manual_seed(12345)
    val_batch = None
    if n_val:
        vc = random_crops(val_data, 4 * n_val, cfg.crop, gv)
        val_batch = (vc, *cutmix_batch(vc, synthesizers, gv, stack_with=stack_with, p_clean=cfg.p_clean, p_stack=cfg.p_stack))

    model = AirUNet(config=cfg.model).to(dev)
    log(f"model: {count_parameters(model) / 1e6:.2f}M parameters")
    ckpt = out_dir / "checkpoint.safetensors"
    resuming = resume and ckpt.exists()
    if init is not None and not resuming:
        start, info = load_base(init)
        model.load_state_dict(start.state_dict())
        log(f"initialized from {init} ({info.fingerprint})")
    # The step count is fitted to the measured speed, keeping 30 s for validation and saving.
    budget = None if cfg.time_budget is None else max(1.0, cfg.time_budget - (time.time() - started) - 30)
    engine = _engine(model, cfg, acc, time_budget=budget, warmup=cfg.warmup, floor=0.02,
                     progress=progress)
    if resuming:
        engine.load_checkpoint(ckpt)
        log(f"resumed from {ckpt} at step {engine.step}")
    raw = engine.model

    def validate(net: AirUNet) -> dict:
        return _evaluate(net, val_batch, acc)

    for step in engine:
        batch = _cutmix_crops(train_data, cfg, g, synthesizers, stack_with)
        loss_l1, loss_ce, loss = _losses(engine, batch, cfg)
        engine.update(loss, {"loss": loss.item()} if (step + 1) % 50 == 0 else {})
        step = engine.step
        if step % cfg.val_every == 0 or step == engine.total:
            row = {"step": step, "loss_l1": loss_l1.item(), "loss_ce": loss_ce.item(),
                   "lr": engine.lr, "elapsed_s": round(time.time() - started, 1), **validate(raw)}
            log(json.dumps(row))
            with open(out_dir / "log.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
        if acc.is_main_process and (step % cfg.checkpoint_every == 0 or step == engine.total):
            engine.save_checkpoint(ckpt)

    # Ship whichever of the EMA and the last weights does better on the held-out crops.
    final = AirUNet(config=cfg.model).to(dev)
    final.load_state_dict(raw.state_dict())
    metrics, chosen = validate(final), "last"
    if cfg.ema:
        averaged = AirUNet(config=cfg.model).to(dev)
        averaged.load_state_dict(engine.ema)
        ema_metrics = validate(averaged)
        if ema_metrics.get("val_psnr", 0) > metrics.get("val_psnr", 0):
            metrics, chosen, final = ema_metrics, "ema", averaged
    log(f"shipping the {chosen} weights")
    training = {
        "data": {"folder": Path(data_dir).name, "images": len(names) - n_val, "held_out": n_val,
                 "crop": cfg.crop},
        "config": json.loads(cfg.model_dump_json()),
        "steps": engine.step,
        "init": Path(init).name if init else None,
        "weights": chosen,
        "wall_s": round(time.time() - started, 1),
        "device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu",
        "processes": acc.num_processes,
    }
    out = out_dir / "base.safetensors"
    if acc.is_main_process:
        fp = save_base(final, out, training=training, metrics=metrics)
        log(f"saved {out} ({fp}); held-out CutMix crops: {json.dumps(metrics)}")
    return out


# ------------------------------------------------------------------------------ chunked training
# GPU time comes in spans of minutes. A chunked run keeps everything it needs to go on in one small
# folder that is committed with the code: the EMA weights (fp16, a few MB), training-state.json
# (step, chunk, schedule, config, metrics) and log.jsonl. The optimizer state (twice the weights in
# fp32) is not kept: each chunk rebuilds it with ``rewarm`` steps of linear warm-up.
