"""Per-image blending of K LoRA adapters in one forward pass.

Every LoRA-targeted 1×1 conv computes ``y = W0·x + Σ_k w[b, k] · s_k · B_k(A_k(x))`` with per-image
weights ``w`` [B, K]. peft cannot do this (its scale is one scalar per adapter for the whole batch and
``_mixed_batch_forward`` routes each image to exactly one adapter), so this is our own small layer that
holds the A/B matrices read from PEFT-format files. Two paths, which agree to float precision:

- ``unmerged``: one 1×1 conv with all K·r A rows, scale the rank channels per image, one conv with
  all B columns, add to the base output;
- ``merged``: W_b = W0 + Σ_k w_bk s_k B_k A_k per image, then one grouped conv over the batch.

Weights are scoped like X-LoRA's hooks: ``with blend(model, w): model(x)`` sets them on every blended
layer and clears them in ``finally``. Outside a ``blend`` block (or with all weights 0) a blended layer
returns exactly the base conv's output.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Iterator, Literal

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class LoRAFactors:
    """One adapter's factors for one 1×1 conv: ΔW = scale · B @ A."""

    A: torch.Tensor  # [r, in]
    B: torch.Tensor  # [out, r]
    scale: float


class BlendedConv2d(nn.Module):
    """A frozen 1×1 conv plus K LoRA adapters blended with per-image weights."""

    def __init__(self, base: nn.Conv2d) -> None:
        super().__init__()
        if base.kernel_size != (1, 1) or base.groups != 1 or base.stride != (1, 1):
            raise ValueError("LoRA blending supports plain 1×1 convs (stride 1, groups 1) only")
        self.base = base
        self.names: list[str] = []
        self.register_buffer("A", torch.zeros(0, base.in_channels), persistent=False)  # [K·r, in]
        self.register_buffer("B", torch.zeros(base.out_channels, 0), persistent=False)  # [out, K·r]
        self.ranks: list[int] = []
        self.scales: list[float] = []
        self.weights: torch.Tensor | None = None  # [B, K] while inside blend()
        self.mode: Literal["unmerged", "merged"] = "unmerged"
        # One image (weights [1, K]) in merged mode: W0 + ΔW computed once when blend() starts and reused
        # by every tile; None otherwise.
        self.merged_weight: torch.Tensor | None = None

    def add(self, name: str, f: LoRAFactors) -> None:
        if f.A.shape[1] != self.base.in_channels or f.B.shape[0] != self.base.out_channels or f.A.shape[0] != f.B.shape[1]:
            raise ValueError(
                f"adapter {name!r}: A {tuple(f.A.shape)} / B {tuple(f.B.shape)} do not fit a "
                f"{self.base.in_channels}→{self.base.out_channels} conv"
            )
        dev, dt = self.base.weight.device, self.base.weight.dtype
        self.A = torch.cat([self.A, f.A.to(dev, dt)], 0)
        self.B = torch.cat([self.B, f.B.to(dev, dt)], 1)
        self.names.append(name)
        self.ranks.append(f.A.shape[0])
        self.scales.append(float(f.scale))

    def _rank_scales(self, w: torch.Tensor) -> torch.Tensor:
        """[B, K] weights → [B, K·r] per-rank-channel factors w_bk · s_k."""
        s = w * torch.tensor(self.scales, device=w.device, dtype=w.dtype)
        return torch.repeat_interleave(s, torch.tensor(self.ranks, device=w.device), dim=1)

    def merge(self, w: torch.Tensor) -> torch.Tensor:
        """The conv weight [out, in, 1, 1] with the adapters merged for one image's weights ``w`` [K]."""
        w = w.to(self.base.weight.device, self.base.weight.dtype)
        delta = self.B @ (self._rank_scales(w[None])[0, :, None] * self.A)  # [out, in]
        return (self.base.weight[:, :, 0, 0] + delta)[:, :, None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.merged_weight is not None:
            return F.conv2d(x, self.merged_weight, self.base.bias)
        w = self.weights
        if w is None or not self.names or not bool(w.any()):
            return self.base(x)
        if w.shape[0] == 1 < x.shape[0]:  # one image's weights for a batch of its tiles (core.tiling)
            w = w.expand(x.shape[0], -1)
        if w.shape != (x.shape[0], len(self.names)):
            raise ValueError(f"blend weights have shape {tuple(w.shape)}, expected [{x.shape[0]}, {len(self.names)}]")
        w = w.to(x.device, x.dtype)
        rs = self._rank_scales(w)
        if self.mode == "unmerged":
            a = F.conv2d(x, self.A[:, :, None, None]) * rs[:, :, None, None]
            return self.base(x) + F.conv2d(a, self.B[:, :, None, None])
        b, c, h, wd = x.shape
        delta = torch.einsum("or,br,ri->boi", self.B, rs, self.A)  # [B, out, in]
        weight = (self.base.weight[:, :, 0, 0].unsqueeze(0) + delta).reshape(-1, c, 1, 1)
        bias = self.base.bias.repeat(b) if self.base.bias is not None else None
        y = F.conv2d(x.reshape(1, b * c, h, wd), weight, bias, groups=b)
        return y.view(b, -1, h, wd)


def attach(model: nn.Module, name: str, factors: dict[str, LoRAFactors]) -> None:
    """Add adapter ``name`` (module path → factors) to ``model``, wrapping target convs on first use."""
    loaded = adapter_names(model)
    if name in loaded:
        raise ValueError(f"adapter {name!r} is already loaded; loaded: {', '.join(loaded)}")
    modules = dict(model.named_modules())
    for path in factors:
        if not isinstance(modules.get(path), (nn.Conv2d, BlendedConv2d)):
            raise ValueError(f"adapter {name!r} targets {path!r}, which is not a conv of this model")
    # Every blended layer carries every adapter (zero factors where one does not target it) so K is uniform.
    for path in factors:
        if not isinstance(modules[path], BlendedConv2d):
            layer = BlendedConv2d(modules[path])
            for old in loaded:
                layer.add(old, _zero(layer, 1))
            _replace(model, path, layer)
    for path, layer in _blended(model):
        layer.add(name, factors.get(path) or _zero(layer, 1))


def adapter_names(model: nn.Module) -> list[str]:
    """Names of the adapters attached to ``model``, in load order (the columns of blend weights)."""
    blended = _blended(model)
    return list(blended[0][1].names) if blended else []


@contextmanager
def blend(model: nn.Module, weights: torch.Tensor, *, mode: Literal["unmerged", "merged"] = "unmerged") -> Iterator[None]:
    """Within the block, every blended layer uses per-image adapter weights [B, K] (K in load order).

    For one image in ``merged`` mode (weights [1, K]) the adapters are merged into each layer's weight
    once, here, and every forward pass inside the block (every tile) is a plain conv: no per-tile
    merge, no host sync. All-zero weights leave the base weights untouched.
    """
    names = adapter_names(model)
    if weights.ndim != 2 or weights.shape[1] != len(names):
        raise ValueError(f"weights must be [batch, {len(names)}] for adapters {names}, got {tuple(weights.shape)}")
    layers = [layer for _, layer in _blended(model)]
    merge_once = mode == "merged" and weights.shape[0] == 1 and bool(weights.any())
    try:
        with torch.no_grad() if merge_once else nullcontext():
            for layer in layers:
                layer.weights, layer.mode = weights, mode
                if merge_once:
                    layer.merged_weight = layer.merge(weights[0])
        yield
    finally:
        for layer in layers:
            layer.weights, layer.mode, layer.merged_weight = None, "unmerged", None


def _blended(model: nn.Module) -> list[tuple[str, BlendedConv2d]]:
    return [(p, m) for p, m in model.named_modules() if isinstance(m, BlendedConv2d)]


def _zero(layer: BlendedConv2d, r: int) -> LoRAFactors:
    return LoRAFactors(torch.zeros(r, layer.base.in_channels), torch.zeros(layer.base.out_channels, r), 0.0)


def _replace(model: nn.Module, path: str, new: nn.Module) -> None:
    parent_path, _, attr = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, attr, new)
