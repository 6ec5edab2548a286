"""Phase I training of the base restorer with Degradation CutMix (``air train base``).

Runs through accelerate, so ``accelerate launch -m air_restore.cli.main train base ...`` scales it to
several GPUs. Clean photos are loaded once onto the device; crops, CutMix and the degradations are
made there, on the fly, from a seeded generator. Checkpoints (safetensors: model, EMA, optimizer
state) are written atomically and a run resumes from its last one. Short resumable spans on a borrowed
GPU (``--chunked``) are :mod:`.chunks`.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Callable, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field
from safetensors import safe_open
from safetensors.torch import load_file

from ..io.images import iter_image_paths
from ..arch import AirUNet, AirUNetConfig, count_parameters
from ..cutmix import Synthesizer, cutmix_batch
from ..errors import InvalidValueError
from ..metrics import psnr
from ..io.weights import load_base, save_base, save_tensors



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
    recipe: Literal["v1", "widened", "widened2", "widened3"] = Field(
        "v1", description="v1: one built-in synthesizer per class, noise stacked; widened: degradation "
        "families and camera-pipeline stacks (core.families); widened2: also dim clean targets; widened3: "
        "also only clearly dark low light."
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
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, total - cfg.warmup)
    return cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


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
                  dim_targets: bool = False):
    """One training batch (clean, degraded, labels): random crops, optionally some darker targets
    (recipes widened2 and widened3), then Degradation CutMix."""
    clean = random_crops(data, cfg.batch_size, cfg.crop, g)
    if dim_targets:
        from ..families import vary_exposure

        clean = vary_exposure(clean, g)
    with torch.no_grad():
        degraded, labels = cutmix_batch(clean, synthesizers, g, stack_with=stack_with,
                                        p_clean=cfg.p_clean, p_stack=cfg.p_stack)
    return clean, degraded, labels


def _train_step(fwd, model, opt, acc, batch, lr: float, cfg: TrainBaseConfig):
    """One optimizer step on (clean, degraded, labels); returns (L1 loss, CE loss, total loss)."""
    clean, degraded, labels = batch
    if degraded.device.type == "cuda":
        degraded = degraded.contiguous(memory_format=torch.channels_last)
    for group in opt.param_groups:
        group["lr"] = lr
    with acc.autocast():
        out = fwd(degraded)
        loss_l1 = F.l1_loss(out.image.float(), clean)
        loss_ce = F.cross_entropy(out.seg_logits.float(), labels)
        loss = loss_l1 + cfg.seg_weight * loss_ce
    opt.zero_grad(set_to_none=True)
    acc.backward(loss)
    acc.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss_l1, loss_ce, loss


def _prepare(model: AirUNet, opt, ema: dict, cfg: TrainBaseConfig, acc):
    """Hand model and optimizer to accelerate (channels_last on CUDA, torch.compile if asked); returns
    (model, opt, the callable to train, the unwrapped model, EMA tensors, the live tensors they follow)."""
    if acc.device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    model, opt = acc.prepare(model, opt)
    fwd = torch.compile(model) if cfg.compile else model
    raw = acc.unwrap_model(model)
    sd = raw.state_dict(keep_vars=True)
    float_keys = [k for k, v in ema.items() if v.dtype.is_floating_point]
    return model, opt, fwd, raw, [ema[k] for k in float_keys], [sd[k] for k in float_keys]


def _checkpoint_tensors(model, ema, opt) -> dict[str, torch.Tensor]:
    out = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    out.update({f"ema.{k}": v.detach().cpu().contiguous() for k, v in ema.items()})
    for i, state in opt.state_dict()["state"].items():
        for k, v in state.items():
            out[f"opt.{i}.{k}"] = torch.as_tensor(v).detach().cpu().contiguous()
    return out


def _restore_checkpoint(path: Path, model, ema, opt) -> int:
    t = load_file(str(path))
    model.load_state_dict({k[6:]: v for k, v in t.items() if k.startswith("model.")})
    for k in ema:
        ema[k].copy_(t[f"ema.{k}"])
    sd = opt.state_dict()
    for key, v in t.items():
        if key.startswith("opt."):
            _, i, name = key.split(".", 2)
            sd["state"].setdefault(int(i), {})[name] = v
    opt.load_state_dict(sd)
    with safe_open(str(path), framework="pt") as f:
        return int(f.metadata()["step"])


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
    ema = {k: v.detach().clone().float() for k, v in model.state_dict().items()}
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.99))
    step = 0
    ckpt = out_dir / "checkpoint.safetensors"
    if resume and ckpt.exists():
        step = _restore_checkpoint(ckpt, model, ema, opt)
        log(f"resumed from {ckpt} at step {step}")
    elif init is not None:
        start, info = load_base(init)
        model.load_state_dict(start.state_dict())
        for k, v in start.state_dict().items():
            ema[k].copy_(v)
        log(f"initialized from {init} ({info.fingerprint})")
    model, opt, fwd, raw, ema_params, live_params = _prepare(model, opt, ema, cfg, acc)
    total = cfg.steps
    t_mark, s_mark = None, None

    def validate(net: AirUNet) -> dict:
        return _evaluate(net, val_batch, acc)

    while step < total:
        batch = _cutmix_crops(train_data, cfg, g, synthesizers, stack_with)
        loss_l1, loss_ce, loss = _train_step(fwd, model, opt, acc, batch, _lr_at(step, total, cfg), cfg)
        step += 1
        if cfg.ema:
            with torch.no_grad():
                torch._foreach_lerp_(ema_params, [p.detach().float() for p in live_params], 1 - cfg.ema)
        # Fit the step count to the time budget once the speed is known (after compilation).
        if cfg.time_budget and step == 30:
            torch.cuda.synchronize() if dev.type == "cuda" else None
            t_mark, s_mark = time.time(), step
        if cfg.time_budget and step == 130 and t_mark is not None:
            torch.cuda.synchronize() if dev.type == "cuda" else None
            rate = (step - s_mark) / (time.time() - t_mark)
            left = cfg.time_budget - (time.time() - started) - 30  # keep 30 s for validation and saving
            total = min(cfg.steps, step + max(0, int(rate * left)))
            log(f"speed: {rate:.1f} steps/s → {total} steps in the time budget")
        if progress:
            progress(step, total, {"loss": loss.item()} if step % 50 == 0 else {})
        if step % cfg.val_every == 0 or step == total:
            row = {"step": step, "loss_l1": loss_l1.item(), "loss_ce": loss_ce.item(),
                   "lr": opt.param_groups[0]["lr"], "elapsed_s": round(time.time() - started, 1), **validate(raw)}
            log(json.dumps(row))
            with open(out_dir / "log.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
        if acc.is_main_process and (step % cfg.checkpoint_every == 0 or step == total):
            save_tensors(_checkpoint_tensors(raw, ema, opt), ckpt, {"kind": "checkpoint", "step": str(step)})

    # Ship whichever of the EMA and the last weights does better on the held-out crops.
    final = AirUNet(config=cfg.model).to(dev)
    final.load_state_dict(raw.state_dict())
    metrics, chosen = validate(final), "last"
    if cfg.ema:
        averaged = AirUNet(config=cfg.model).to(dev)
        averaged.load_state_dict(ema)
        ema_metrics = validate(averaged)
        if ema_metrics.get("val_psnr", 0) > metrics.get("val_psnr", 0):
            metrics, chosen, final = ema_metrics, "ema", averaged
    log(f"shipping the {chosen} weights")
    training = {
        "data": {"folder": Path(data_dir).name, "images": len(names) - n_val, "held_out": n_val,
                 "crop": cfg.crop},
        "config": json.loads(cfg.model_dump_json()),
        "steps": step,
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
