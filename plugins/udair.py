"""UDAIR test-time adaptation as a refiner plugin (issue #5).

After Fan et al., "From Controlled Scenarios to the Real World: Cross-Domain Degradation Pattern
Matching for All-in-One Image Restoration" (UDAIR). Our base and adapters are frozen and never change,
so the UDAIR parts live in a small separate **refiner** that takes (degraded input, base+adapter output)
and predicts a residual correction of the restored image:

- degradation encoder: a 4-conv CNN (stride 4) on [input − 0.5, restored − input] → feature map F [B, d, h, w];
- DAM (Domain Adaptation Module): F ← F + DAM(F), 1×1 up → depthwise 3×3 → GELU → squeeze-excite →
  1×1 down with the last conv zero-initialised: the identity, and never trained, in source training;
- degradation codebook: z = mean(F) is vector-quantized against a learnable codebook (nearest code by
  Euclidean distance, straight-through gradient, codebook + commitment losses); a gating module
  re-weights z's channels from the code: embedding e = [q, sigmoid(W·q) ⊙ z];
- refiner body: a 3-level NAFNet-block U-Net on [input, restored] whose two decoder levels get e
  (broadcast over the image) concatenated before them; the residual head is zero-initialised.

Training (``air train udair``, :mod:`air_restore.plugins.udair_training`) uses L1 + λ·CSCL (cross-sample
contrastive loss on z) + VQ losses, and stores per-degradation **anchors** (mean of z and mean
per-image covariance of F over the training crops) from the best validation checkpoint.

At test time (:meth:`UdairRefiner.refine`) only a fresh copy of the DAM trains, ``steps`` AdamW steps
of the CORAL loss ‖C_s − C_t‖²_F / (4d²) between the covariance of the DAM-adapted features of this
image (C_t) and the anchor covariance (C_s). The anchor is a weighted mix of the per-degradation
anchors by the estimator's adapter weights, with the "clean" anchor taking the weight they leave
(1 − Σw, clamped), so a single photo is enough. The copy is thrown away after every image (reset per
image); the encoder, codebook, refiner body and the pristine DAM are never changed.

Layering note: the network (:mod:`.udair_net`) lives in the plugin rather than in ``core`` because it
exists only for this plugin; this module does no I/O except :func:`save_udair` / :func:`load_refiner`.
"""

from __future__ import annotations

import copy
import json
from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from ..core.tiling import tiled_forward
from ..core.errors import UserError
from .api import PluginManifest, RefinerPlugin
from .udair_net import (  # noqa: F401  (the network's names, public here as before)
    DAM, PAD, DegradationEncoder, Fuse, SqueezeExcite, UdairConfig, UdairNet, UdairOutput, VectorQuantizer, VQOutput,
    coral_loss, cscl_loss, feature_covariance,
)

FORMAT_VERSION = 1
WEIGHTS_FILE = "udair-v1.safetensors"


# ------------------------------------------------------------------------------- test-time adaptation
# tent-style small named functions: configure → collect_params → adapt_step (× steps) → reset.


def configure(net: UdairNet) -> DAM:
    """A fresh trainable copy of the pristine DAM (the net's own DAM is never touched)."""
    dam = copy.deepcopy(net.dam).train()
    for p in dam.parameters():
        p.requires_grad_(True)
    return dam


def collect_params(dam: DAM) -> list[nn.Parameter]:
    return list(dam.parameters())


def adapt_step(dam: DAM, feats: torch.Tensor, target_cov: torch.Tensor, opt: torch.optim.Optimizer) -> float:
    loss = coral_loss(target_cov, feature_covariance(dam(feats)))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach())


def reset(net: UdairNet) -> DAM:
    """Per-image reset: simply a new copy of the pristine DAM."""
    return configure(net)


# ------------------------------------------------------------------------------------------ runtime


class Anchors(NamedTuple):
    mean: torch.Tensor  # [C, d] mean pooled feature z per class
    cov: torch.Tensor  # [C, d, d] mean per-image covariance of the features per class


class UdairRefiner:
    """The loaded plugin: ``refine(degraded, restored, adapter_weights, steps=5)``."""

    def __init__(self, net: UdairNet, anchors: Anchors, *, meta: dict[str, Any] | None = None,
                 lr: float = 1e-2, tile: int = 512, overlap: int = 64, max_feature_side: int = 1024) -> None:
        self.net = net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.anchors = anchors
        self.meta = meta or {}
        self.lr, self.tile, self.overlap, self.max_feature_side = lr, tile, overlap, max_feature_side

    @property
    def classes(self) -> tuple[str, ...]:
        return self.net.config.classes

    @property
    def base_fingerprint(self) -> str | None:
        return self.meta.get("base_fingerprint")

    def anchor_mix(self, adapter_weights: dict[str, float]) -> tuple[torch.Tensor, list[str]]:
        """Weights [C] over the anchor classes from adapter weights; 'clean' takes 1 − Σw (clamped ≥ 0).
        Returns them and the adapter names the refiner has no anchor for (ignored)."""
        a = torch.zeros(len(self.classes))
        ignored = []
        for name, w in adapter_weights.items():
            if name in self.classes[1:]:
                a[self.classes.index(name)] = max(0.0, float(w))
            elif float(w) > 0:
                ignored.append(name)
        a[0] = max(0.0, 1.0 - float(a[1:].sum()))
        return a / a.sum(), ignored

    def target_covariance(self, mix: torch.Tensor) -> torch.Tensor:
        return torch.einsum("c,cij->ij", mix, self.anchors.cov)

    def _feature_view(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The part of the image the degradation features see: whole, or a central crop ≤ max_feature_side²."""
        _, h, w = x.shape
        s = self.max_feature_side
        y0, x0 = max(0, (h - s) // 2), max(0, (w - s) // 2)
        return x[:, y0 : y0 + s, x0 : x0 + s], y[:, y0 : y0 + s, x0 : x0 + s]

    def refine(self, degraded: torch.Tensor, restored: torch.Tensor, adapter_weights: dict[str, float] | None,
               *, steps: int = 5, lr: float | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        """Refine one restored image [3, H, W] in [0, 1] given its degraded input; ``steps`` DAM steps of
        TTA (0: the refiner alone). Returns (refined [3, H, W] in [0, 1], info) where info holds
        coral_before / coral_after, the anchor mix and ignored adapter names."""
        if degraded.shape != restored.shape or degraded.ndim != 3 or degraded.shape[0] != 3:
            raise ValueError(f"expected two RGB tensors [3, H, W] of one shape, got {tuple(degraded.shape)} "
                             f"and {tuple(restored.shape)}")
        x, y = degraded.float().cpu().clamp(0, 1), restored.float().cpu().clamp(0, 1)
        info: dict[str, Any] = {"steps": 0}
        if adapter_weights is None:
            mix, ignored = torch.zeros(len(self.classes)), []
            mix[0] = 1.0
            info["note"] = "no adapter weights given: TTA skipped"
            steps = 0
        else:
            mix, ignored = self.anchor_mix(adapter_weights)
        info["anchor_mix"] = {c: round(float(v), 4) for c, v in zip(self.classes, mix)}
        if ignored:
            info["ignored_adapters"] = ignored
        fx, fy = self._feature_view(x, y)
        with torch.no_grad():
            feats = self.net.features(fx[None], fy[None])
        target = self.target_covariance(mix)
        dam = reset(self.net)
        with torch.no_grad():
            before = float(coral_loss(target, feature_covariance(dam(feats))))
        if steps > 0:
            opt = torch.optim.AdamW(collect_params(dam), lr=lr or self.lr, weight_decay=0.0)
            with torch.enable_grad():
                for _ in range(steps):
                    adapt_step(dam, feats, target, opt)
        dam.eval()
        with torch.no_grad():
            adapted = dam(feats)
            after = float(coral_loss(target, feature_covariance(adapted)))
            e, _, vq = self.net.embed(adapted)
            refined = _tiled_decode(self.net, x, y, e, tile=self.tile, overlap=self.overlap)
        info.update(steps=steps, coral_before=before, coral_after=after, code=int(vq.index[0]))
        return refined.clamp(0, 1), info


def degradation_weights(adapters: list[str], weights: list[float],
                        seg_shares: dict[str, float] | None = None) -> dict[str, float] | None:
    """What picks the anchors for one image: the adapters' blend weights (the estimator's); when no adapter
    is active, the base's segmentation-head class shares (clean left out; it takes the rest); else None."""
    if adapters:
        return {n: float(w) for n, w in zip(adapters, weights)}
    if seg_shares is not None:
        return {k: float(v) for k, v in seg_shares.items() if k != "clean"}
    return None


def _tiled_decode(net: UdairNet, x: torch.Tensor, y: torch.Tensor, e: torch.Tensor, *, tile: int,
                  overlap: int) -> torch.Tensor:
    """net.decode over [3, H, W] images tile by tile (the body is local; e is global and fixed)."""
    xy = torch.cat([x, y])  # [6, H, W]; tiled_forward slices channels-first tensors of any depth
    res = tiled_forward(lambda t: (net.decode(t[:, :3], t[:, 3:], e), None), xy, tile=tile, overlap=overlap,
                        align=PAD)
    return res.image


# ------------------------------------------------------------------------------------- weights file


class UdairFileError(UserError):
    """A UDAIR weights file is missing, unreadable or not a UDAIR refiner. One-line message."""


def bundled_path() -> Path:
    return Path(str(resources.files("air_restore.registry") / "weights" / WEIGHTS_FILE))


def save_udair(net: UdairNet, anchors: Anchors, path: str | Path, *, base_fingerprint: str, adapters: list[str],
               training: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None) -> str:
    """Write the refiner (fp16 network, fp32 anchors) with self-describing metadata; returns its fingerprint."""
    from ..core.arch import fingerprint
    from ..core.io.weights import save_tensors

    tensors = {f"net.{k}": v.detach().cpu().half().contiguous() for k, v in net.state_dict().items()}
    tensors["anchors.mean"] = anchors.mean.detach().cpu().float().contiguous()
    tensors["anchors.cov"] = anchors.cov.detach().cpu().float().contiguous()
    fp = fingerprint(tensors)
    metadata = {
        "format_version": str(FORMAT_VERSION),
        "kind": "refiner",
        "name": "udair",
        "config": net.config.model_dump_json(),
        "fingerprint": fp,
        "base_fingerprint": base_fingerprint,
        "adapters": json.dumps(list(adapters)),
        "degradation": ",".join(net.config.classes[1:]),
        "training": json.dumps(training or {}),
        "metrics": json.dumps(metrics or {}),
    }
    save_tensors(tensors, Path(path), metadata)
    return fp


def read_udair(path: str | Path) -> tuple[UdairNet, Anchors, dict[str, Any]]:
    """Load a UDAIR file (fp32 in memory) and check its fingerprint; any problem is one UdairFileError."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from ..core.arch import fingerprint

    path = Path(path)
    if not path.is_file():
        raise UdairFileError(f"{path}: no such UDAIR weights file (train one with `air train udair`)")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
        if meta.get("kind") != "refiner" or meta.get("name") != "udair":
            raise UdairFileError(f"{path}: not a UDAIR refiner (metadata kind={meta.get('kind')!r})")
        if int(meta.get("format_version", "0")) > FORMAT_VERSION:
            raise UdairFileError(f"{path}: format version {meta['format_version']} is newer than this air-restore "
                                 f"understands ({FORMAT_VERSION}); upgrade air-restore")
        config = UdairConfig.model_validate_json(meta["config"])
        tensors = load_file(str(path))
        if meta.get("fingerprint") and fingerprint(tensors) != meta["fingerprint"]:
            raise UdairFileError(f"{path}: tensors do not match their recorded fingerprint; the file is damaged")
        net = UdairNet(config=config)
        net.load_state_dict({k[4:]: v.float() for k, v in tensors.items() if k.startswith("net.")}, strict=True)
        anchors = Anchors(tensors["anchors.mean"].float(), tensors["anchors.cov"].float())
        info = {"path": str(path), "base_fingerprint": meta.get("base_fingerprint"),
                "fingerprint": meta.get("fingerprint"), "adapters": json.loads(meta.get("adapters", "[]")),
                "training": json.loads(meta.get("training", "{}")), "metrics": json.loads(meta.get("metrics", "{}"))}
    except UdairFileError:
        raise
    except Exception as e:  # unreadable file, bad metadata, tensors that do not fit the config
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UdairFileError(f"{path}: not a readable UDAIR file ({first})") from None
    return net.eval(), anchors, info


def load_refiner(path: str | Path | None = None, **kw) -> UdairRefiner:
    """The UDAIR refiner from ``path`` (default: the bundled ``udair-v1.safetensors``)."""
    net, anchors, meta = read_udair(path or bundled_path())
    return UdairRefiner(net, anchors, meta=meta, **kw)


try:
    _VERSION = version("air-restore")
except PackageNotFoundError:  # a source tree that is not installed
    _VERSION = "0+unknown"

plugin = RefinerPlugin(
    PluginManifest(name="udair", kind="refiner", version=_VERSION,
                   description="UDAIR test-time adaptation: codebook-conditioned refiner, DAM tuned per image by CORAL."),
    load_refiner,
)
