"""Train the UDAIR refiner (``air train udair``): L1 + λ·CSCL + VQ losses on crops of clean photos
degraded by the built-in plugins, with the base (and any active adapters) frozen and run once per crop.

The frozen restorer's outputs are computed once into a pool (the base never trains, so they never
change); each step draws a class-balanced batch from the pool (``per_class`` crops of every class, so
every image has positives for CSCL) with random flips. Severities are drawn in
[min_severity, max_severity] (0.1–0.7 by default), leaving the top of the range out of training so
benchmarks can test outside it. The best validation checkpoint (held-out photos, fixed seed) is kept;
the anchors (per-class mean pooled feature and mean per-image feature covariance) are computed from it
on larger crops of the training photos.
"""

from __future__ import annotations

import time
from typing import Callable, Literal, Sequence

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from ..core.metrics import psnr
from ..core.training.base import random_crop
from ..core.training.engine import Engine
from .udair import Anchors, UdairConfig, UdairNet, cscl_loss, feature_covariance
from ..core.errors import InvalidValueError

RestoreFn = Callable[[torch.Tensor], torch.Tensor]  # [B, 3, H, W] degraded → restored, frozen, no grad


class TrainUdairConfig(BaseModel):
    """Everything that defines a UDAIR run (recorded in the weights' metadata)."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(1500, ge=1, description="Optimizer steps (upper bound when time_budget is set).")
    per_class: int = Field(3, ge=2, description="Crops of every class per step (batch = per_class × classes).")
    crop: int = Field(64, ge=16, description="Training crop side in pixels (multiple of 4).")
    pool: int = Field(300, ge=2, description="Pool crops per class, restored once by the frozen base.")
    lr: float = Field(1e-3, gt=0, description="Peak AdamW learning rate (cosine decay).")
    cscl_weight: float = Field(0.1, ge=0, description="λ in L1 + λ·CSCL + VQ.")
    temperature: float = Field(0.1, gt=0, description="CSCL temperature.")
    min_severity: float = Field(0.1, ge=0, le=1)
    max_severity: float = Field(0.7, ge=0, le=1, description="Severities above this are never seen in training.")
    val_images: int = Field(24, ge=1, description="Photos held out (last by name) for validation.")
    val_crop: int = Field(96, ge=16)
    val_every: int = Field(250, ge=1)
    anchor_crops: int = Field(24, ge=2, description="Crops per class used for the anchors.")
    anchor_crop: int = Field(160, ge=16)
    time_budget: float | None = Field(None, gt=0, description="Seconds for the training loop (steps fitted).")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="Autocast: auto is bf16 only where it is fast (CUDA, CPUs with native bf16).")
    channels_last: bool = Field(True, description="channels_last memory format: 1.28× the steps/s on a 2-core "
                                "AVX2 CPU (benchmarks/train_speed.py).")
    seed: int = 0
    model: UdairConfig = Field(default_factory=UdairConfig)


def degrade_by_class(clean: torch.Tensor, labels: torch.Tensor, synths: Sequence[Callable], g: torch.Generator,
                     lo: float, hi: float) -> torch.Tensor:
    """Degrade crops [B, 3, H, W]: label 0 stays clean, label k uses synths[k-1] at a severity in [lo, hi]."""
    out = clean.clone()
    for k, synth in enumerate(synths, start=1):
        idx = (labels == k).nonzero().flatten()
        if len(idx):
            sev = lo + (hi - lo) * torch.rand((len(idx),), generator=g)
            out[idx] = synth(clean[idx], g, sev).clamp(0, 1)
    return out


@torch.no_grad()
def make_set(photos: Sequence[torch.Tensor], synths: Sequence[Callable], restore_fn: RestoreFn, g: torch.Generator,
             *, per_class: int, crop: int, lo: float, hi: float, batch: int = 48) -> dict[str, torch.Tensor]:
    """``per_class`` crops of every class: clean, degraded, restored (fp16 storage) and labels."""
    n_cls = len(synths) + 1
    labels = torch.arange(n_cls).repeat(per_class)
    clean = torch.stack([random_crop(photos[int(torch.randint(0, len(photos), (1,), generator=g))], crop, g, mode="area")
                         for _ in range(len(labels))])
    degraded = degrade_by_class(clean, labels, synths, g, lo, hi)
    restored = torch.cat([restore_fn(degraded[i : i + batch]).clamp(0, 1) for i in range(0, len(labels), batch)])
    return {"clean": clean.half(), "degraded": degraded.half(), "restored": restored.half(), "labels": labels}


@torch.no_grad()
def evaluate(net: UdairNet, data: dict[str, torch.Tensor], classes: Sequence[str], batch: int = 24) -> dict:
    """Held-out PSNR of the restored input and of the refined image, overall and per class."""
    net.eval()
    outs = []
    for i in range(0, len(data["labels"]), batch):
        x, y = data["degraded"][i : i + batch].float(), data["restored"][i : i + batch].float()
        outs.append(net(x, y).image)
    net.train()
    clean = data["clean"].float()
    p_in, p_out = psnr(data["restored"].float(), clean), psnr(torch.cat(outs), clean)
    res = {"val_psnr_restored": p_in.mean().item(), "val_psnr_refined": p_out.mean().item()}
    for k, name in enumerate(classes):
        m = data["labels"] == k
        res[f"gain_{name}"] = (p_out[m] - p_in[m]).mean().item()
    return res


@torch.no_grad()
def compute_anchors(net: UdairNet, data: dict[str, torch.Tensor], n_classes: int) -> tuple[Anchors, dict]:
    """Per class: mean pooled feature z and mean per-image covariance of the (DAM-identity) features."""
    net.eval()
    d = net.config.feat
    means, covs = torch.zeros(n_classes, d), torch.zeros(n_classes, d, d)
    codes = {}
    for k in range(n_classes):
        idx = (data["labels"] == k).nonzero().flatten()
        feats = net.dam(net.features(data["degraded"][idx].float(), data["restored"][idx].float()))
        means[k] = feats.mean((2, 3)).mean(0)
        covs[k] = torch.stack([feature_covariance(f) for f in feats]).mean(0)
        codes[k] = len(set(net.vq.nearest(feats.mean((2, 3))).tolist()))
    net.train()
    return Anchors(means, covs), codes


def train_udair(
    photos: Sequence[torch.Tensor], synths: Sequence[Callable], restore_fn: RestoreFn, *, config: TrainUdairConfig,
    progress: Callable[[int, int, dict], None] | None = None, log: Callable[[str], None] = print,
) -> tuple[UdairNet, Anchors, dict]:
    """Train the refiner on ``photos`` (the last ``val_images`` held out). ``synths`` are the degradations
    of ``config.model.classes[1:]``, in that order. Returns (net from the best validation checkpoint, its
    anchors, summary for the metadata)."""
    cfg = config
    classes = cfg.model.classes
    if len(synths) != len(classes) - 1:
        raise ValueError(f"got {len(synths)} synthesizers for classes {classes[1:]}; give one per degradation")
    if cfg.crop % 4 or cfg.val_crop % 4 or cfg.anchor_crop % 4:
        raise ValueError("crop, val_crop and anchor_crop must be multiples of 4")
    n_val = min(cfg.val_images, len(photos) // 4)
    if n_val < 1:
        raise InvalidValueError(f"need at least 4 photos (got {len(photos)}): one in four is held out for validation")
    train_photos, val_photos = list(photos[: len(photos) - n_val]), list(photos[len(photos) - n_val:])
    started = time.perf_counter()
    g = torch.Generator().manual_seed(cfg.seed)
    gv = torch.Generator().manual_seed(12345)
    lo, hi = cfg.min_severity, cfg.max_severity
    pool = make_set(train_photos, synths, restore_fn, g, per_class=cfg.pool, crop=cfg.crop, lo=lo, hi=hi)
    val = make_set(val_photos, synths, restore_fn, gv, per_class=max(2, n_val), crop=cfg.val_crop, lo=lo, hi=hi)
    pool_s = time.perf_counter() - started
    log(f"pool: {len(pool['labels'])} training crops of {cfg.crop}², {len(val['labels'])} validation crops of "
        f"{cfg.val_crop}² restored by the frozen base in {pool_s:.0f} s")

    with torch.random.fork_rng(devices=[]):  # seeded initial weights, global RNG left as it was
        torch.manual_seed(cfg.seed)
        net = UdairNet(config=cfg.model)
    # Data-dependent codebook init: codes start at (jittered) pooled features of pool crops.
    with torch.no_grad():
        pick = torch.randint(0, len(pool["labels"]), (min(256, len(pool["labels"])),), generator=g)
        z0 = net.features(pool["degraded"][pick].float(), pool["restored"][pick].float()).mean((2, 3))
        rows = torch.randint(0, len(z0), (cfg.model.codebook,), generator=g)
        net.vq.codebook.copy_(z0[rows] + 0.05 * z0.std(0) * torch.randn(z0[rows].shape, generator=g))
    # The DAM is the identity and inactive in source training: only test-time adaptation trains it.
    for p in net.dam.parameters():
        p.requires_grad_(False)
    engine = Engine(net, lr=cfg.lr, steps=cfg.steps, weight_decay=1e-4, betas=(0.9, 0.99), floor=0.05, clip=1.0,
                    time_budget=cfg.time_budget, precision=cfg.precision, channels_last=cfg.channels_last,
                    progress=(lambda s, t, info: progress(s, t, {k: v.item() for k, v in info.items()}))
                    if progress else None)
    by_class = [(pool["labels"] == k).nonzero().flatten() for k in range(len(classes))]
    best = {"val_psnr_refined": -1.0}
    best_state = {k: v.clone() for k, v in net.state_dict().items()}
    history = []
    t0 = time.perf_counter()
    for _ in engine:
        idx = torch.cat([c[torch.randint(0, len(c), (cfg.per_class,), generator=g)] for c in by_class])
        x, y, c = (pool[k][idx].float() for k in ("degraded", "restored", "clean"))
        labels = pool["labels"][idx]
        flips = torch.rand(2, generator=g)
        if flips[0] < 0.5:
            x, y, c = x.flip(-1), y.flip(-1), c.flip(-1)
        if flips[1] < 0.5:
            x, y, c = x.transpose(-1, -2), y.transpose(-1, -2), c.transpose(-1, -2)
        with engine.autocast():
            out = net(engine.input(x), engine.input(y))
        l1 = F.l1_loss(out.image.float(), c)
        cscl = cscl_loss(out.z.float(), labels, g, temperature=cfg.temperature)
        loss = l1 + cfg.cscl_weight * cscl + out.vq.loss.float()
        engine.update(loss, {"l1": l1, "cscl": cscl})
        step = engine.step
        if step % cfg.val_every == 0 or step == engine.total:
            row = {"step": step, "l1": round(l1.item(), 5), "cscl": round(cscl.item(), 4),
                   "vq": round(out.vq.loss.item(), 5), **{k: round(v, 4) for k, v in evaluate(net, val, classes).items()}}
            history.append(row)
            log(str(row))
            if row["val_psnr_refined"] > best["val_psnr_refined"]:
                best = row
                best_state = {k: v.clone() for k, v in net.state_dict().items()}
    train_s = time.perf_counter() - t0
    net.load_state_dict(best_state)
    anchor_set = make_set(train_photos, synths, restore_fn, g, per_class=cfg.anchor_crops, crop=cfg.anchor_crop,
                          lo=lo, hi=hi)
    anchors, codes = compute_anchors(net, anchor_set, len(classes))
    summary = {
        "steps": engine.step, "best_step": best["step"], "train_s": round(train_s, 1), "pool_s": round(pool_s, 1),
        "wall_s": round(time.perf_counter() - started, 1), "train_photos": len(train_photos),
        "heldout_photos": n_val, "severity": [lo, hi], "crop": cfg.crop, "batch": cfg.per_class * len(classes),
        "threads": torch.get_num_threads(), "codes_used_per_class": {classes[k]: v for k, v in codes.items()},
        "config": cfg.model_dump(mode="json", exclude={"model"}), "history": history,
    }
    metrics = {k: v for k, v in best.items() if k.startswith(("val_", "gain_"))}
    metrics["heldout_crops"] = len(val["labels"])
    return net.eval(), anchors, {"training": summary, "metrics": metrics}


def restorer_fn(restorer) -> RestoreFn:
    """Batch restore function of a :class:`~air_restore.registry.pipeline.Restorer`: the base with its
    active adapters blended by the estimator's per-crop weights (the base alone if it has none)."""
    from ..core.lora import blend

    model = restorer.model

    @torch.no_grad()
    def fn(x: torch.Tensor) -> torch.Tensor:
        if not restorer.adapters:
            return model(x).image.clamp(0, 1)
        w = torch.stack([restorer.estimate(im) for im in x])
        with blend(model, w, mode="unmerged"):
            return model(x).image.clamp(0, 1)

    return fn
