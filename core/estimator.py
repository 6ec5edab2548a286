"""The estimator (ABAIR phase III): a tiny network from an image to one weight per adapter.

It looks at two 64×64 views of the image through one small conv tower: the whole image area-resized
(global cues: haze, low light, colour cast) and a crop at native resolution from the centre (texture
cues that down-scaling averages away: noise, blur, rain streaks). Pooled features of both go through a
linear head to K logits; the weights are their sigmoids, so several adapters can be on at once for a
mixed degradation. It trains on crops of 96–224 px, and a larger photo's sparse degradations (rain streaks,
snowflakes: ``on_crops``) are judged at that scale too, on an even grid of crops of ``crop`` px at native
resolution: each such output is the sigmoid of its mean logit over the crops (:meth:`Estimator.predict`), so a
crop that is sure counts for more than one in doubt, and a lone crop that fires on a lookalike (white specks
read as snow) is outvoted; the mean of the weights (``crop_pool="prob"``) gave a snowy store's clean CBSD68
photos 63 dB against 78 (NOTES.md). One pair of views of a whole photo shrinks it far
more than any training crop was and samples its texture in one 64² crop: a snowy 256² photo got snow 0.46
that way against 0.69 from its 128² crops. The other outputs (and the strength) keep one pair of views of the
whole photo: the light of a scene is judged on all of it (a crop of a dark region looks under-exposed: with
low light from crops, real noise photos (PolyU) lost 1.7 dB), and stationary degradations gain nothing from
more crops while their adapters must stay off where a crop cannot tell (noise from crops: low light + noise
−0.45 dB; blur from crops: a mildly noisy photo got blur 0.1, −0.35 dB) (NOTES.md). Its adapter names are
part of its config: an estimator only serves the adapter set it was trained for.

With ``strength`` in its config, one more output says how much of the restoration to keep: the pipeline
returns ``input + strength·(restored − input)``. Its training target is the strength that restores each
crop best (:func:`best_strength`), so a mild input that the network would make worse stays close to itself.

An estimator may *keep* the outputs of the one before it (``kept``, :func:`keep`): those are read from the old
estimator, whose tower and head travel in the same file, exactly as it gave them; its own tower answers for the
rest. ``air add-degradation`` trains a whole estimator for the new output (distilled from the current one) and
keeps the old outputs so. Distilled alone, the old outputs still drifted on whole photos, which the distillation's
crops do not show: the snow estimator cost CBSD68's haze 0.25 dB, light haze 1.1 dB (NOTES.md).
"""

from __future__ import annotations

import math
from typing import Callable, Literal, Sequence

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn


#: Outputs the estimator judges on the crops of a large photo (``crop_pool``): sparse degradations, which its
#: one native 64² crop of the whole photo can miss. Any other output (a third party's too) sees the whole photo.
ON_CROPS = ("rain", "snow")


class EstimatorConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    adapters: tuple[str, ...] = Field(description="Adapter names, in the order of the output weights.")
    view: int = Field(64, ge=16, description="Side of both views in pixels.")
    width: int = Field(32, ge=4, description="Channels of the first conv; doubled twice.")
    crop: int = Field(160, ge=0, description="Side of the crops a larger image's ``on_crops`` outputs are "
                                             "judged on, averaged (0: the whole image in one pair of views).")
    crops: int = Field(64, ge=1, description="At most this many crops per image, spread evenly.")
    on_crops: tuple[str, ...] = Field(ON_CROPS, description="Outputs judged on the crops of an image larger "
                                                            "than ``crop`` (``crop_pool``); the rest on the whole "
                                                            "image.")
    crop_pool: Literal["logit", "prob"] = Field("logit", description="What is averaged over the crops: their "
                                                "logits (then the sigmoid) or their weights.")
    strength: bool = Field(False, description="One more output after the adapters' weights: the share of the "
                                              "restoration to keep (1 = all of it, 0 = the input).")
    kept: tuple[str, ...] = Field((), description="Outputs read from ``kept_from``'s own tower and head instead "
                                                 "of this one's: the estimator before, kept exact (:func:`keep`).")
    kept_from: EstimatorConfig | None = Field(None, description="The config of the estimator the ``kept`` outputs "
                                                                "come from; its weights travel in the same file.")

    @model_validator(mode="after")
    def _kept_known(self) -> EstimatorConfig:
        known = set(self.adapters) & set(self.kept_from.adapters if self.kept_from else ())
        if self.kept and not set(self.kept) <= known:
            raise ValueError(f"kept outputs {list(self.kept)} must be adapters of both this estimator and kept_from")
        return self


def views(x: torch.Tensor, size: int) -> torch.Tensor:
    """[B, 3, H, W] → [2B, 3, size, size]: area-resized whole images, then native-resolution centre crops."""
    _, _, h, w = x.shape
    glob = F.interpolate(x, size=(size, size), mode="area") if (h, w) != (size, size) else x
    if h < size or w < size:
        local = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    else:
        y0, x0 = (h - size) // 2, (w - size) // 2
        local = x[:, :, y0 : y0 + size, x0 : x0 + size]
    return torch.cat([glob, local])


def crop_grid(h: int, w: int, size: int, most: int) -> tuple[list[int], list[int]]:
    """Top and left offsets of an even grid of ``size``² crops over an h×w image: enough to cover it, thinned
    evenly (both axes alike) to at most ``most`` crops; the outer crops touch the borders."""
    ny, nx = math.ceil(h / size), math.ceil(w / size)
    if ny * nx > most:
        f = math.sqrt(most / (ny * nx))
        ny, nx = max(1, int(ny * f)), max(1, int(nx * f))

    def spread(n: int, k: int) -> list[int]:
        return [(n - size) // 2] if k == 1 else [round(i * (n - size) / (k - 1)) for i in range(k)]

    return spread(h, ny), spread(w, nx)


def paired_views(x: torch.Tensor, size: int) -> torch.Tensor:
    """[B, 3, H, W] → [B, 2, 3, size, size]: each image's (global, local) views."""
    b = x.shape[0]
    return views(x, size).view(2, b, *x.shape[1:2], size, size).transpose(0, 1)


class Estimator(nn.Module):
    def __init__(self, *, config: EstimatorConfig) -> None:
        super().__init__()
        self.config = cfg = config
        c = cfg.width
        self.tower = nn.Sequential(
            nn.Conv2d(3, c, 3, padding=1), nn.GELU(),
            nn.Conv2d(c, c, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(2 * c, 4 * c, 3, stride=2, padding=1), nn.GELU(),
        )
        outputs = len(cfg.adapters) + int(cfg.strength)
        self.head = nn.Sequential(nn.Linear(2 * 2 * 4 * c, 64), nn.GELU(), nn.Linear(64, outputs))
        # the estimator before, whose outputs cfg.kept are read as it gives them (keep())
        self.kept = Estimator(config=cfg.kept_from) if cfg.kept else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images [B, 3, H, W] in [0, 1] → logits [B, K] (K + 1 with ``strength``, the strength last)."""
        return self.forward_views(paired_views(x, self.config.view))

    def forward_views(self, v: torch.Tensor) -> torch.Tensor:
        """Precomputed views [B, 2, 3, s, s] (global, local; float in [0, 1] or uint8) → logits [B, K(+1)]."""
        if v.dtype == torch.uint8:
            v = v.float() / 255
        b = v.shape[0]
        f = self.tower(v.transpose(0, 1).reshape(2 * b, *v.shape[2:]) - 0.5)
        pooled = torch.cat([f.mean((2, 3)), f.amax((2, 3))], 1)  # [2B, 8c]
        out = self.head(torch.cat([pooled[:b], pooled[b:]], 1))
        if self.kept is not None:
            names, theirs = self.config.kept, self.kept.config.adapters
            mine = torch.tensor([self.config.adapters.index(n) for n in names], device=out.device)
            kept = self.kept.forward_views(v)[:, [theirs.index(n) for n in names]]
            out = out.index_copy(1, mine, kept.to(out.dtype))
        return out

    def inherit(self, old: "Estimator") -> list[str]:
        """Warm start from an estimator with the same shape: copy its tower and hidden layer, and the output
        rows of the adapters both know (and of the strength, when both have one). Returns the names that
        start fresh."""
        same = {"adapters": self.config.adapters, "strength": self.config.strength,
                "kept": self.config.kept, "kept_from": self.config.kept_from}
        if old.config.model_copy(update=same) != self.config:
            return list(self.config.adapters)
        own = self.state_dict()
        for k, v in old.state_dict().items():
            if not k.startswith(("head.2.", "kept.")):  # the estimator old keeps its outputs from is not ours
                own[k] = v.clone()
        for i, name in enumerate(self.config.adapters):
            if name in old.config.adapters:
                j = old.config.adapters.index(name)
                own["head.2.weight"][i] = old.head[2].weight[j].detach()
                own["head.2.bias"][i] = old.head[2].bias[j].detach()
        if self.config.strength and old.config.strength:
            own["head.2.weight"][-1] = old.head[2].weight[-1].detach()
            own["head.2.bias"][-1] = old.head[2].bias[-1].detach()
        self.load_state_dict(own)
        return [n for n in self.config.adapters if n not in old.config.adapters]

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-image adapter weights [B, K] and strengths [B], all in [0, 1] (strength 1 without the output).
        On an image with both sides over ``config.crop`` the outputs in ``config.on_crops`` are read on
        :func:`crop_grid`'s crops: the sigmoid of their mean logit (``crop_pool``), or the mean weight."""
        cfg = self.config
        p = torch.sigmoid(self(x))
        local = [i for i, name in enumerate(cfg.adapters) if name in cfg.on_crops]
        if cfg.crop and min(x.shape[-2:]) > cfg.crop and local:
            c = cfg.crop
            ys, xs = crop_grid(*x.shape[-2:], c, cfg.crops)
            crops = torch.stack([x[:, :, y : y + c, x0 : x0 + c] for y in ys for x0 in xs], 1).flatten(0, 1)
            logits = self(crops)[:, local].view(len(x), -1, len(local))
            p[:, local] = (torch.sigmoid(logits.mean(1)) if cfg.crop_pool == "logit"
                           else torch.sigmoid(logits).mean(1))
        k = len(self.config.adapters)
        return p[:, :k], (p[:, k] if self.config.strength else torch.ones(len(p), device=p.device))

    @torch.no_grad()
    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """Per-image adapter weights [B, K] in [0, 1]."""
        return self.predict(x)[0]


def keep(new: Estimator, old: Estimator, names: Sequence[str]) -> Estimator:
    """``new``, with its outputs ``names`` read from ``old`` exactly as ``old`` gives them (its tower and head travel
    along, ~0.55 MB): an estimator that learnt a new output (``air add-degradation``) without moving the old ones.
    Distilled from the one before, the snow estimator's old outputs still drifted on whole photos: CBSD68 haze 23.89
    dB against 24.14 with them kept (NOTES.md). Both must judge alike (view, crops): only the outputs differ. Each
    keep adds the old estimator's tower to every estimate (a few ms; the file ~0.55 MB more)."""
    views_of = lambda c: c.model_dump(include={"view", "crop", "crops", "on_crops", "crop_pool"})  # noqa: E731
    if views_of(new.config) != views_of(old.config):
        raise ValueError(f"keep: the two estimators see photos differently: {views_of(new.config)} vs "
                         f"{views_of(old.config)}")
    if new.config.kept:
        raise ValueError("keep: the new estimator keeps outputs of another already")
    est = Estimator(config=EstimatorConfig(**{**dict(new.config), "kept": tuple(names), "kept_from": old.config}))
    est.load_state_dict({**new.state_dict(), **{f"kept.{k}": v for k, v in old.state_dict().items()}})
    return est.eval()


def best_strength(degraded: torch.Tensor, restored: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """[B] strengths s in [0, 1] for which ``degraded + s·(restored − degraded)`` is closest to ``clean`` in
    mean squared error (all [B, 3, H, W]): the least-squares step along the restoration, clipped.
    s = <clean − degraded, d> / <d, d> with d = restored − degraded; 1 where the restoration changes nothing."""
    d = (restored - degraded).flatten(1)
    num = ((clean - degraded).flatten(1) * d).sum(1)
    den = (d * d).sum(1)
    return torch.where(den > 0, num / den.clamp_min(1e-12), torch.ones_like(den)).clamp(0, 1)


def estimator_batch(
    clean: torch.Tensor, synthesizers: Sequence[Callable], g: torch.Generator, *, p_mix: float = 0.25,
    min_severity: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Degrade each clean crop by one synthesizer (or, with p_mix, two stacked); multi-hot targets [B, K]."""
    b, k = clean.shape[0], len(synthesizers)
    first = torch.randint(0, k, (b,), generator=g)
    second = torch.randint(0, k, (b,), generator=g)
    mix = (torch.rand((b,), generator=g) < p_mix) & (second != first)
    target = F.one_hot(first, k).float()
    target[mix, second[mix]] = 1.0
    out = clean.clone()
    for i in range(b):
        img = clean[i : i + 1]
        for j in ([first[i]] + ([second[i]] if mix[i] else [])):
            sev = min_severity + (1 - min_severity) * torch.rand((1,), generator=g)
            img = synthesizers[int(j)](img, g, sev)
        out[i] = img[0]
    return out.clamp(0, 1), target
