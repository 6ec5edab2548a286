"""Phase II: train one LoRA adapter on the frozen base restorer (``air train adapter``).

The adapter is a peft LoRA (rank 4 by default) on the 1×1 convs named in the base config
(``lora_targets``; depthwise convs excluded), trained with L1 on paired crops: real pairs from a
``degraded/`` + ``clean/`` folder, or clean photos degraded on the fly by a plugin's synthesizer.
It is saved in PEFT's layout (``adapter_config.json`` + ``adapter_model.safetensors``, loadable by
``peft.PeftModel.from_pretrained``) with our manifest in the safetensors ``__metadata__`` (key
``air_manifest``) and beside it as ``air_manifest.json``. Writes go to a temporary folder that is
renamed into place only when training finished, so an interrupted run never leaves a half adapter.
"""

from __future__ import annotations

import copy
import json
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Sequence

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from safetensors.torch import load_file, save_file

from ..arch import FORMAT_VERSION, AirUNet
from ..families import channel_orders, grey_picks, luma
from ..metrics import psnr

PairSampler = Callable[[int, int, torch.Generator], tuple[torch.Tensor, torch.Tensor]]


class TrainAdapterConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rank: int = Field(4, ge=1, le=64, description="LoRA rank (ABAIR found 4 best).")
    alpha: float = Field(4.0, gt=0, description="LoRA alpha; the update is scaled by alpha / rank.")
    steps: int = Field(500, ge=1)
    batch_size: int = Field(8, ge=1)
    crop: int = Field(96, ge=16)
    lr: float = Field(5e-4, gt=0)
    seed: int = 0
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="Autocast: auto is bf16 only where it is fast (CUDA, CPUs with native bf16).")
    channels_last: bool = Field(True, description="channels_last memory format: 1.39× the steps/s on a 2-core "
                                "AVX2 CPU (benchmarks/train_speed.py).")


def paired_sampler(degraded: list[torch.Tensor], clean: list[torch.Tensor]) -> PairSampler:
    """Aligned random crops from lists of [3, H, W] pairs (each at least crop × crop)."""

    def sample(batch: int, crop: int, g: torch.Generator):
        xs, ys = [], []
        for _ in range(batch):
            i = int(torch.randint(0, len(clean), (1,), generator=g))
            _, h, w = clean[i].shape
            y0 = int(torch.randint(0, h - crop + 1, (1,), generator=g))
            x0 = int(torch.randint(0, w - crop + 1, (1,), generator=g))
            xs.append(degraded[i][:, y0 : y0 + crop, x0 : x0 + crop])
            ys.append(clean[i][:, y0 : y0 + crop, x0 : x0 + crop])
        return torch.stack(xs), torch.stack(ys)

    return sample


@dataclass
class Over:
    """Train an adapter for a degradation that comes on top of others (noise on a hazy or rainy photo).

    A share of the crops is first degraded by one of ``synths`` at a random severity; the target of such a
    crop is ``base``'s output on it *before* the adapter's own degradation is added: what the base gives
    when this degradation is absent. The adapter so learns to remove its own degradation and to leave the
    rest to the base and the other adapters, instead of being trained on clean backgrounds only (where,
    blended with the others on a stacked image, it can do much worse than the base alone).
    """

    synths: Sequence[Callable]
    share: float
    base: torch.nn.Module
    min_severity: float = 0.1

    @torch.no_grad()
    def apply(self, clean: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(background, target) for a batch of clean crops."""
        x, y = clean.clone(), clean.clone()
        picked = torch.nonzero(torch.rand((clean.shape[0],), generator=g) < self.share).flatten().tolist()
        for i in picked:
            k = int(torch.randint(0, len(self.synths), (1,), generator=g))
            s = self.min_severity + (1 - self.min_severity) * torch.rand((1,), generator=g)
            x[i : i + 1] = self.synths[k](clean[i : i + 1], g, s).clamp(0, 1)
        if picked:  # AirUNet has no dropout or batch norm: train and eval mode give the same output
            y[picked] = self.base(x[picked]).image.clamp(0, 1)
        return x, y


def _check_share(share: float, what: str = "share") -> None:
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"{what} {share} is not in [0, 1]")


def _on_pairs(sampler: PairSampler, share: float, apply: Callable) -> PairSampler:
    """``sampler`` with ``apply(x, y, g) → (x, y)`` run on each batch it draws; ``sampler`` itself at share 0 (so
    an option left at 0 draws nothing more from the generator and keeps every seed's crops)."""
    _check_share(share)
    if share == 0.0:
        return sampler

    def sample(batch: int, crop: int, g: torch.Generator):
        return apply(*sampler(batch, crop, g), g)

    return sample


def shuffle_colours(sampler: PairSampler, share: float) -> PairSampler:
    """``sampler`` with the colour channels of a random ``share`` of its pairs put in one of the six orders (the
    same order for the degraded and the clean crop of a pair; :func:`~air_restore.core.families.channel_orders`),
    so the adapter learns no colour prior from the training photos, whose green shadows it would paint where low
    light and noise have destroyed a region's colour. Not for a degradation that *is* a colour (an underwater
    cast): shuffled, the cast would be any colour."""
    def apply(x: torch.Tensor, y: torch.Tensor, g: torch.Generator):
        order = channel_orders(x.shape[0], g, share)
        rows = torch.arange(x.shape[0]).view(-1, 1)
        return x[rows, order], y[rows, order]

    return _on_pairs(sampler, share, apply)


def grey_crops(sampler: PairSampler, share: float) -> PairSampler:
    """``sampler`` with a random ``share`` of its pairs turned grey (:func:`~air_restore.core.families.luma`, the
    degraded and the clean crop alike), as a black-and-white photo or scan is read. A network trained on colour
    photos only finds noise by its colour: on grey photos it leaves noise in place (NOTES.md)."""
    def apply(x: torch.Tensor, y: torch.Tensor, g: torch.Generator):
        pick = grey_picks(x.shape[0], g, share).view(-1, 1, 1, 1)
        return torch.where(pick, luma(x), x), torch.where(pick, luma(y), y)

    return _on_pairs(sampler, share, apply)


def with_clean(sampler: PairSampler, share: float) -> PairSampler:
    """``sampler`` with a random ``share`` of its pairs made clean → clean (the input replaced by its target)."""
    def apply(x: torch.Tensor, y: torch.Tensor, g: torch.Generator):
        keep = (torch.rand((x.shape[0],), generator=g) < share).view(-1, 1, 1, 1)
        return torch.where(keep, y, x), y

    return _on_pairs(sampler, share, apply)


def synthetic_sampler(clean: list[torch.Tensor], synthesize: Callable, *, min_severity: float = 0.1,
                      over: Over | None = None, shuffle: float = 0.0, grey: float = 0.0,
                      keep_clean: float = 0.0) -> PairSampler:
    """Random clean crops degraded by ``synthesize`` at random severities (over other degradations too,
    with ``over``); ``shuffle``: the share of clean crops whose colour channels are reordered first
    (:func:`shuffle_colours`), so the base's output under ``over`` is that of the reordered crop; ``grey``: the
    share turned grey first (:func:`grey_crops`); ``keep_clean``: the share not degraded by ``synthesize`` (their
    target is themselves, or the base's output under ``over``), so the adapter learns to leave undamaged
    pixels alone. The clean-pixel gate reads the segmentation head with the adapters on, and an adapter that
    never saw a clean crop can turn that reading: a noise adapter trained on luminance noise without them had
    the head read every clean CBSD68 photo as degraded at weight 1 (NOTES.md)."""
    _check_share(keep_clean, "keep_clean")
    crops = grey_crops(shuffle_colours(paired_sampler(clean, clean), shuffle), grey)

    def sample(batch: int, crop: int, g: torch.Generator):
        _, y = crops(batch, crop, g)
        x = y
        if over is not None:
            x, y = over.apply(y, g)
        severity = min_severity + (1 - min_severity) * torch.rand((batch,), generator=g)
        degraded = synthesize(x, g, severity).clamp(0, 1)
        if keep_clean:
            keep = (torch.rand((batch,), generator=g) < keep_clean).view(-1, 1, 1, 1)
            degraded = torch.where(keep, x, degraded)
        return degraded, y

    return sample


@torch.no_grad()
def heldout_psnr(fn: Callable[[torch.Tensor], torch.Tensor], pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Mean PSNR of ``fn`` (batch [1, 3, H, W] → restored batch) on whole held-out pairs."""
    return statistics.fmean(psnr(fn(d[None])[0], c).item() for d, c in pairs) if pairs else float("nan")


def train_adapter(
    base: AirUNet,
    sampler: PairSampler,
    *,
    config: TrainAdapterConfig,
    progress: Callable[[int, int, float], None] | None = None,
    time_budget: float | None = None,
    init: Path | None = None,
):
    """Train a LoRA adapter on a frozen copy of ``base``; returns the peft model (base untouched).
    ``init``: an adapter folder (PEFT layout, same rank and targets) to start from instead of a fresh LoRA,
    to widen an adapter's data without losing what it learned.
    ``time_budget`` (seconds): run only the steps that fit (:class:`~.budget.StepBudget`; ``progress``
    gets the shrinking total, the learning rate anneals over it); ``model.steps_run`` says how many ran."""
    import peft

    from .engine import Engine

    cfg = config
    started = time.monotonic()  # setting up counts against the budget too
    if init is not None:
        model = peft.PeftModel.from_pretrained(copy.deepcopy(base).train(), str(init), is_trainable=True)
        if model.peft_config["default"].r != cfg.rank:
            raise ValueError(f"{init}: rank {model.peft_config['default'].r}, not the configured {cfg.rank}")
    else:
        # PEFT draws LoRA's A from the global RNG: seeded here, so one command run twice trains the same adapter
        # (unseeded, two runs of `air add-degradation realnoise` gave adapters 0.02 dB apart); the caller's RNG
        # state is left as it was.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            model = peft.get_peft_model(
                copy.deepcopy(base).train(),
                peft.LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, target_modules=list(base.config.lora_targets)),
            )
    budget = None if time_budget is None else max(1e-3, time_budget - (time.monotonic() - started))
    engine = Engine(model, lr=cfg.lr, steps=cfg.steps, floor=0.05, time_budget=budget, precision=cfg.precision,
                    channels_last=cfg.channels_last,
                    progress=(lambda s, t, info: progress(s, t, info["loss"])) if progress else None)
    g = torch.Generator().manual_seed(cfg.seed)
    for _ in engine:
        degraded, clean = sampler(cfg.batch_size, cfg.crop, g)
        with engine.autocast():
            loss = F.l1_loss(engine.forward(engine.input(degraded)).image.float(), clean)
        engine.update(loss, {"loss": loss.item()} if progress else None)
    model.steps_run = engine.step
    return model.eval()


def save_adapter(peft_model, folder: Path, manifest: dict, *, overwrite: bool = False) -> Path:
    """Save in PEFT's layout plus our manifest, atomically (temp folder, then rename)."""
    folder = Path(folder)
    if folder.exists() and not overwrite:
        raise FileExistsError(f"{folder}: already exists (pass --overwrite to replace it)")
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        peft_model.save_pretrained(str(tmp))
        (tmp / "README.md").unlink(missing_ok=True)  # PEFT's empty card template ("Model Card for Model ID")
        weights = tmp / "adapter_model.safetensors"
        tensors = load_file(str(weights))
        full = {"format_version": FORMAT_VERSION, **manifest}
        save_file(tensors, str(weights), metadata={"format": "pt", "air_manifest": json.dumps(full)})
        (tmp / "air_manifest.json").write_text(json.dumps(full, indent=1))
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def build_manifest(name: str, base_fingerprint: str, cfg: TrainAdapterConfig, targets, *, data: dict,
                   metrics: dict, wall_s: float) -> dict:
    return {
        "name": name,
        "kind": "degradation",
        "base_fingerprint": base_fingerprint,
        "rank": cfg.rank,
        "alpha": cfg.alpha,
        "targets": list(targets),
        "training": {"data": data, "steps": cfg.steps, "batch_size": cfg.batch_size, "crop": cfg.crop,
                     "lr": cfg.lr, "seed": cfg.seed, "wall_s": round(wall_s, 1)},
        "metrics": metrics,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
