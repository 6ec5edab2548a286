"""The UDAIR refiner's network and losses (the plugin and its test-time adaptation: :mod:`.udair`).

Degradation encoder → DAM → codebook with gating → a small NAFNet-block U-Net that predicts a residual
correction of the restored image; CSCL (cross-sample contrastive) and CORAL losses. See
:mod:`air_restore.plugins.udair` for how the pieces are used.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from ..core.arch import Block, LayerNorm2d

PAD = 4  # the body and the encoder both downsample by 4


class UdairConfig(BaseModel):
    """Typed configuration of the UDAIR refiner; stored in its weights file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    classes: tuple[str, ...] = Field(
        ("clean", "noise", "blur", "haze", "rain", "lowlight"),
        description="Anchor classes; class 0 is 'clean', the others are adapter/degradation names.",
    )
    feat: int = Field(32, ge=4, description="Channels d of the degradation features (and of the codes).")
    codebook: int = Field(512, ge=2, description="Number of codes in the degradation codebook.")
    width: int = Field(16, ge=4, description="Refiner body channels at full resolution (×2 per level).")
    middle_blocks: int = Field(2, ge=0, description="NAFNet blocks at 1/4 resolution.")
    commitment: float = Field(0.25, ge=0, description="β of the VQ commitment loss.")
    dam_expand: int = Field(2, ge=1, description="Channel expansion of the DAM's 1×1 up-projection.")


# ----------------------------------------------------------------------------------------- pieces


class VQOutput(NamedTuple):
    quantized: torch.Tensor  # [B, d], straight-through: forward = code, gradient = identity to z
    index: torch.Tensor  # [B] long
    loss: torch.Tensor  # codebook + β·commitment


class VectorQuantizer(nn.Module):
    """Nearest code by Euclidean distance; straight-through gradient (van den Oord et al., VQ-VAE)."""

    def __init__(self, *, codes: int, dim: int, commitment: float = 0.25) -> None:
        super().__init__()
        self.codebook = nn.Parameter(torch.randn(codes, dim) * 0.1)
        self.commitment = commitment

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Index [B] of the nearest code to every row of z [B, d]."""
        d = z.square().sum(1, keepdim=True) - 2 * z @ self.codebook.t() + self.codebook.square().sum(1)[None]
        return d.argmin(1)

    def forward(self, z: torch.Tensor) -> VQOutput:
        idx = self.nearest(z)
        q = self.codebook[idx]
        loss = F.mse_loss(q, z.detach()) + self.commitment * F.mse_loss(z, q.detach())
        return VQOutput(z + (q - z).detach(), idx, loss)


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, *, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(4, channels // reduction)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(self.fc2(F.gelu(self.fc1(x.mean((2, 3), keepdim=True)))))
        return x * s


class DAM(nn.Module):
    """Domain Adaptation Module: x + 1×1 down(SE(GELU(dw3×3(1×1 up(x))))); zero-init down = identity."""

    def __init__(self, channels: int, *, expand: int = 2) -> None:
        super().__init__()
        c = channels * expand
        self.up = nn.Conv2d(channels, c, 1)
        self.dw = nn.Conv2d(c, c, 3, padding=1, groups=c)
        self.se = SqueezeExcite(c)
        self.down = nn.Conv2d(c, channels, 1)
        nn.init.zeros_(self.down.weight)
        nn.init.zeros_(self.down.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.down(self.se(F.gelu(self.dw(self.up(x)))))


class DegradationEncoder(nn.Module):
    """[input, restored] → degradation features [B, d, H/4, W/4] (receptive field 15 px)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(6, 16, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.GELU(),
            nn.Conv2d(32, dim, 1),
        )

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x - 0.5, y - x], 1))


class Fuse(nn.Module):
    """Concatenate the (broadcast) degradation embedding before a decoder level, back to ``c`` channels."""

    def __init__(self, c: int, emb: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c + emb, c, 1)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        return self.conv(torch.cat([x, e[:, :, None, None].expand(b, -1, h, w)], 1))


class UdairOutput(NamedTuple):
    image: torch.Tensor  # [B, 3, H, W] refined, not clamped
    z: torch.Tensor  # [B, d] pooled degradation features (CSCL acts on these)
    features: torch.Tensor  # [B, d, h, w] DAM-adapted features
    vq: VQOutput


class UdairNet(nn.Module):
    def __init__(self, *, config: UdairConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or UdairConfig()
        d, w = cfg.feat, cfg.width
        emb = 2 * d
        self.encoder = DegradationEncoder(d)
        self.dam = DAM(d, expand=cfg.dam_expand)
        self.vq = VectorQuantizer(codes=cfg.codebook, dim=d, commitment=cfg.commitment)
        self.gate = nn.Linear(d, d)
        # Refiner body: full → 1/2 → 1/4 resolution and back; e enters before both decoder levels.
        self.intro = nn.Conv2d(6, w, 3, padding=1)
        self.enc1, self.down1 = Block(w), nn.Conv2d(w, 2 * w, 2, stride=2)
        self.enc2, self.down2 = Block(2 * w), nn.Conv2d(2 * w, 4 * w, 2, stride=2)
        self.middle = nn.Sequential(*[Block(4 * w) for _ in range(cfg.middle_blocks)])
        self.up2 = nn.Sequential(nn.Conv2d(4 * w, 8 * w, 1, bias=False), nn.PixelShuffle(2))
        self.fuse2, self.dec2 = Fuse(2 * w, emb), Block(2 * w)
        self.up1 = nn.Sequential(nn.Conv2d(2 * w, 4 * w, 1, bias=False), nn.PixelShuffle(2))
        self.fuse1, self.dec1 = Fuse(w, emb), Block(w)
        self.norm = LayerNorm2d(w)
        self.ending = nn.Conv2d(w, 3, 3, padding=1)
        nn.init.zeros_(self.ending.weight)  # a fresh refiner returns the restored image unchanged
        nn.init.zeros_(self.ending.bias)

    # -- the three stages, separable so test-time adaptation can run between them --------------

    def features(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Raw (un-adapted) degradation features [B, d, h, w] of input x and restored y [B, 3, H, W]."""
        xp, yp = _pad(x), _pad(y)
        return self.encoder(xp, yp)

    def embed(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, VQOutput]:
        """Adapted features [B, d, h, w] → (embedding e [B, 2d], z [B, d], VQ output)."""
        z = feats.mean((2, 3))
        vq = self.vq(z)
        e = torch.cat([vq.quantized, torch.sigmoid(self.gate(vq.quantized)) * z], 1)
        return e, z, vq

    def decode(self, x: torch.Tensor, y: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """Refined image [B, 3, H, W] = y + residual(x, y, e); purely local given e (tiles exactly)."""
        _, _, h, w = x.shape
        xp, yp = _pad(x), _pad(y)
        f1 = self.enc1(self.intro(torch.cat([xp - 0.5, yp - 0.5], 1)))
        f2 = self.enc2(self.down1(f1))
        f = self.middle(self.down2(f2))
        f = self.dec2(self.fuse2(self.up2(f) + f2, e))
        f = self.dec1(self.fuse1(self.up1(f) + f1, e))
        return (yp + self.ending(self.norm(f)))[:, :, :h, :w]

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> UdairOutput:
        feats = self.dam(self.features(x, y))
        e, z, vq = self.embed(feats)
        return UdairOutput(self.decode(x, y, e), z, feats, vq)


def _pad(x: torch.Tensor) -> torch.Tensor:
    _, _, h, w = x.shape
    ph, pw = (-h) % PAD, (-w) % PAD
    if not (ph or pw):
        return x
    return F.pad(x, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate")


# ------------------------------------------------------------------------------------------ losses


def cscl_loss(z: torch.Tensor, labels: torch.Tensor, g: torch.Generator, *, temperature: float = 0.1) -> torch.Tensor:
    """Cross-sample contrastive loss (InfoNCE, cosine similarity / temperature).

    Images with the same label are grouped and randomly permuted (a random cyclic order, so every
    image's positive is a *different* image of its degradation); all images with another label are its
    negatives. Images alone in their group have no positive and are left out. Returns 0 if none has one.
    """
    b = z.shape[0]
    zn = F.normalize(z, dim=1)
    pos = torch.full((b,), -1, dtype=torch.long)
    lab = labels.cpu()
    for c in lab.unique():
        idx = (lab == c).nonzero().flatten()
        if len(idx) < 2:
            continue
        order = idx[torch.randperm(len(idx), generator=g)]
        pos[order] = order.roll(1)
    valid = pos >= 0
    if not bool(valid.any()):
        return z.sum() * 0
    sim = zn @ zn.t() / temperature  # [B, B]
    neg = labels[:, None] != labels[None, :]
    rows = valid.nonzero().flatten().to(z.device)
    p = sim[rows, pos[valid].to(z.device)]
    negs = sim[rows].masked_fill(~neg[rows], float("-inf"))
    logits = torch.cat([p[:, None], negs], 1)
    return -(logits.log_softmax(1)[:, 0]).mean()


def feature_covariance(f: torch.Tensor) -> torch.Tensor:
    """Covariance [d, d] of features [1, d, h, w] (or [d, h, w]) over spatial positions (unbiased)."""
    x = f.reshape(f.shape[-3], -1).t()  # [N, d]
    xc = x - x.mean(0, keepdim=True)
    return xc.t() @ xc / max(1, x.shape[0] - 1)


def coral_loss(c_s: torch.Tensor, c_t: torch.Tensor) -> torch.Tensor:
    """CORAL (Sun & Saenko, 2016): ‖C_s − C_t‖²_F / (4d²)."""
    d = c_s.shape[-1]
    return (c_s - c_t).square().sum() / (4 * d * d)
