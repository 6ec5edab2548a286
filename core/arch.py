"""AirUNet: the base restorer, a compact U-Net with a per-pixel degradation segmentation head.

The blocks follow NAFNet (Chen et al., "Simple Baselines for Image Restoration", ECCV 2022):
LayerNorm → 1×1 conv → depthwise 3×3 → SimpleGate → 1×1 conv, then a gated FFN, with residual
branches scaled by parameters that start at zero. NAFNet's simplified channel attention (a global
average pool) is left out on purpose: every output pixel depends only on a bounded neighbourhood, so
tiled inference matches whole-image inference. Global context (which degradation, how strong) enters
through the estimator's adapter weights, which are computed once per image.

The segmentation head (a 3×3 conv, GELU, 1×1 conv on the last decoder features) predicts, per pixel,
which degradation is present; class 0 is "clean". It is trained with Degradation CutMix (ABAIR,
Serrano-Lozano et al., 2025).
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

FORMAT_VERSION = 1


class AirUNetConfig(BaseModel):
    """Typed configuration of the base restorer; stored in every weights file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    width: int = Field(24, ge=8, description="Channels at full resolution; doubled at each level.")
    enc_blocks: tuple[int, ...] = Field((1, 2, 4), description="Blocks per encoder level (one level per entry).")
    middle_blocks: int = Field(6, ge=0, description="Blocks at the lowest resolution.")
    dec_blocks: tuple[int, ...] = Field((2, 2, 1), description="Blocks per decoder level, lowest resolution first.")
    classes: tuple[str, ...] = Field(
        ("clean", "noise", "blur", "haze", "rain", "lowlight"),
        description="Segmentation classes in head order; class 0 must be 'clean'.",
    )
    lora_targets: tuple[str, ...] = Field(
        ("conv1", "conv3", "conv4", "conv5"),
        description="Names (last path component) of the 1×1 convs LoRA adapters attach to; depthwise convs excluded.",
    )

    @model_validator(mode="after")
    def _check(self) -> "AirUNetConfig":
        if len(self.enc_blocks) != len(self.dec_blocks):
            raise ValueError(
                f"enc_blocks has {len(self.enc_blocks)} levels but dec_blocks has {len(self.dec_blocks)}; "
                "give both the same number of entries"
            )
        if not self.classes or self.classes[0] != "clean":
            raise ValueError(f"classes must start with 'clean', got {self.classes!r}")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes must be unique, got {self.classes!r}")
        return self

    @property
    def pad_multiple(self) -> int:
        """Inputs are padded to a multiple of this (one factor 2 per level) and cropped back."""
        return 2 ** len(self.enc_blocks)


class AirOutput(NamedTuple):
    image: torch.Tensor  # [B, 3, H, W], restored, not clamped
    seg_logits: torch.Tensor | None  # [B, num_classes, H, W]; None when called with segment=False


class LayerNorm2d(nn.Module):
    """LayerNorm over channels at every pixel (purely local)."""

    fused: bool = True  # the fused channels-last path below; benchmarks/speed.py turns it off to compare

    def __init__(self, channels: int, *, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            # Channels last (inference, core.restore): the channels of a pixel are adjacent, so this is
            # torch's fused layer_norm over the last dimension of an [N, H, W, C] view, one pass over memory
            # instead of eight (5× faster on a 512² image on the CPU; the same numbers within 1e-6).
            y = F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], self.weight, self.bias, self.eps)
            return y.permute(0, 3, 1, 2)
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        x = (x - mu) * torch.rsqrt(var + self.eps)
        return x * self.weight[:, None, None] + self.bias[:, None, None]


class SimpleGate(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


class Block(nn.Module):
    """NAFNet block without the global channel attention. LoRA targets: conv1, conv3, conv4, conv5."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        c = channels
        self.norm1 = LayerNorm2d(c)
        self.conv1 = nn.Conv2d(c, 2 * c, 1)
        self.conv2 = nn.Conv2d(2 * c, 2 * c, 3, padding=1, groups=2 * c)  # depthwise: never a LoRA target
        self.gate = SimpleGate()
        self.conv3 = nn.Conv2d(c, c, 1)
        self.norm2 = LayerNorm2d(c)
        self.conv4 = nn.Conv2d(c, 2 * c, 1)
        self.conv5 = nn.Conv2d(c, c, 1)
        # Residual branches start at zero: a fresh block is the identity.
        self.beta = nn.Parameter(torch.zeros(c))
        self.gamma = nn.Parameter(torch.zeros(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv3(self.gate(self.conv2(self.conv1(self.norm1(x)))))
        x = torch.addcmul(x, self.beta.view(1, -1, 1, 1), y)  # x + beta·y in one pass
        y = self.conv5(self.gate(self.conv4(self.norm2(x))))
        return torch.addcmul(x, self.gamma.view(1, -1, 1, 1), y)

    def forward_owned(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` for inference (no autograd) on an ``x`` nobody else reads: the residual sums are
        written into ``x`` instead of a new tensor. The same arithmetic in the same order, so the same
        numbers (a test compares them bit for bit), without one full-resolution tensor per block."""
        y = self.conv3(self.gate(self.conv2(self.conv1(self.norm1(x)))))
        x = _residual(x, y, self.beta)
        y = self.conv5(self.gate(self.conv4(self.norm2(x))))
        return _residual(x, y, self.gamma)


def _residual(x: torch.Tensor, y: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
    """``x + y`` (``x + scale·y`` with ``scale`` per channel), written into ``x`` where the sum has ``x``'s dtype
    (under autocast a bf16 ``x`` plus an fp32 term is a new fp32 tensor, as the plain forward makes it)."""
    s = None if scale is None else scale.view(1, -1, 1, 1)
    dtype = torch.promote_types(x.dtype, y.dtype if s is None else torch.promote_types(s.dtype, y.dtype))
    if dtype != x.dtype:
        return x + y if s is None else torch.addcmul(x, s, y)
    return x.add_(y) if s is None else x.addcmul_(s, y)


class AirUNet(nn.Module):
    """Base restorer: residual U-Net plus segmentation head. Any H×W (padded, then cropped back)."""

    def __init__(self, *, config: AirUNetConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or AirUNetConfig()
        w = cfg.width
        self.intro = nn.Conv2d(3, w, 3, padding=1)
        self.encoders = nn.ModuleList()
        self.downs = nn.ModuleList()
        c = w
        for n in cfg.enc_blocks:
            self.encoders.append(nn.Sequential(*[Block(c) for _ in range(n)]))
            self.downs.append(nn.Conv2d(c, 2 * c, 2, stride=2))
            c *= 2
        self.middle = nn.Sequential(*[Block(c) for _ in range(cfg.middle_blocks)])
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for n in cfg.dec_blocks:
            self.ups.append(nn.Sequential(nn.Conv2d(c, 2 * c, 1, bias=False), nn.PixelShuffle(2)))
            c //= 2
            self.decoders.append(nn.Sequential(*[Block(c) for _ in range(n)]))
        self.ending = nn.Conv2d(w, 3, 3, padding=1)
        self.seg_head = nn.Sequential(
            nn.Conv2d(w, w, 3, padding=1), nn.GELU(), nn.Conv2d(w, len(cfg.classes), 1)
        )

    def forward(self, x: torch.Tensor, *, segment: bool = True) -> AirOutput:
        """Restore ``x``; ``segment=False`` skips the segmentation head (7% of the multiply-adds per
        pixel), which only ``--explain``, ``--tta`` and training read. The image is the same either way."""
        _, _, h, w = x.shape
        m = self.config.pad_multiple
        ph, pw = (-h) % m, (-w) % m
        xp = F.pad(x, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate")
        feat = self.intro(xp)
        # Without autograd (or a hook) nothing else reads the intermediate features: they may be overwritten.
        feat = self._trunk(feat) if torch.is_grad_enabled() or self._hooked() else self._trunk_owned(feat)
        image = (xp + self.ending(feat))[:, :, :h, :w]
        seg = self.seg_head(feat)[:, :, :h, :w] if segment else None
        return AirOutput(image, seg)

    def _hooked(self) -> bool:
        """Whether a forward hook may hold on to a feature map (a profiler's, a user's): then none is overwritten."""
        from torch.nn.modules import module as torch_module

        if any(getattr(torch_module, name, None) for name in ("_global_forward_hooks", "_global_forward_pre_hooks")):
            return True
        return any(m._forward_hooks or m._forward_pre_hooks for m in self.modules())

    def _trunk(self, feat: torch.Tensor) -> torch.Tensor:
        """Encoders, middle and decoders, from the intro's features to the last decoder's."""
        skips = []
        for enc, down in zip(self.encoders, self.downs):
            feat = enc(feat)
            skips.append(feat)
            feat = down(feat)
        feat = self.middle(feat)
        for up, dec, skip in zip(self.ups, self.decoders, reversed(skips)):
            feat = dec(up(feat) + skip)
        return feat

    def _trunk_owned(self, feat: torch.Tensor) -> torch.Tensor:
        """:meth:`_trunk` for inference, in less memory and with the same numbers: every block adds into
        its own input (:meth:`Block.forward_owned`), and the upsampled features are added into their skip,
        which is let go there instead of living to the end. A 904×848 tile in bf16 (a 12 MP photo's, at
        ``--tile 1024``): peak live tensors 713 → 401 bytes per pixel (benchmarks/results/NOTES.md)."""
        skips = []
        for enc, down in zip(self.encoders, self.downs):
            feat = _blocks(enc, feat)
            skips.append(feat)
            feat = down(feat)
        feat = _blocks(self.middle, feat)
        for up, dec in zip(self.ups, self.decoders):
            feat = _blocks(dec, _residual(skips.pop(), up(feat)))  # up(feat) + skip: addition commutes bit for bit
        return feat


def _blocks(seq: nn.Sequential, feat: torch.Tensor) -> torch.Tensor:
    for block in seq:
        feat = block.forward_owned(feat)
    return feat


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def fingerprint(state_dict: dict[str, torch.Tensor]) -> str:
    """Hash of the weights (names, dtypes, shapes, bytes): identifies a base model for adapters.

    Computed on the stored (fp16) tensors so it is the same wherever the file is loaded.
    """
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().to("cpu").contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return "sha256:" + h.hexdigest()[:16]
