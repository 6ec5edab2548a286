"""The plugin contract: what a degradation or refiner plugin — built-in or third-party — is made of.

A plugin package needs only this module and ``air_restore.core``::

    from .api import DegradationPlugin, PluginManifest, severity_tensor, uniform

    def synthesize(clean, g, severity):      # [B, 3, H, W] in [0, 1], a torch.Generator, float or [B]
        s = severity_tensor(severity, clean.shape[0], clean.device)
        ...
        return degraded                     # same shape, in [0, 1]; all randomness from ``g``

    plugin = DegradationPlugin(PluginManifest(name="sepia", kind="degradation", version="1.0",
                                              description="Old-photo sepia toning."), synthesize)

and an entry point in the group ``air_restore.plugins`` naming ``plugin``. ``air plugins validate NAME``
checks it; ``air_restore.plugins.testing`` is the same check as a pytest suite for your own CI.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Literal, Protocol

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

# Public helpers for writing synthesizers (seeded randomness, severity checks, colour, kernels).
from ..core.synthesis import (  # noqa: F401  (re-exported)
    choice, conv_per_image, gaussian_kernel, linear_to_srgb, per_image, rand, randn, severity_tensor, smooth_field,
    splat_path, srgb_to_linear, uniform,
)

__all__ = [
    "NAME_RE", "PluginManifest", "Synthesizer", "SynthesizeFn", "DegradationPlugin", "RefinerPlugin",
    "choice", "conv_per_image", "gaussian_kernel", "linear_to_srgb", "per_image", "rand", "randn", "severity_tensor",
    "smooth_field", "splat_path", "srgb_to_linear", "uniform",
]

#: A name users type (plugins, adapters): lowercase letters, digits, '_', starting with a letter, ≤ 32.
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class PluginManifest(BaseModel):
    """What a plugin declares about itself; validated when the plugin is loaded."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="Unique lowercase name, e.g. 'snow'; used on the command line.")
    kind: Literal["degradation", "refiner"] = Field(description="A degradation (adapter) or a refiner.")
    version: str = Field(description="The plugin's own version.")
    description: str = Field(description="One line shown by `air list`.")
    base_fingerprint: str | None = Field(
        None, description="Fingerprint of the base model its weights were trained on; None if it ships no weights."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError(
                f"plugin name {v!r} must be lowercase letters, digits or '_', start with a letter, ≤ 32 chars"
            )
        return v


class Synthesizer(Protocol):
    """``synthesize(clean [B, 3, H, W] in [0, 1], generator, severity float or [B]) -> degraded``, same
    shape and range; the same generator state gives the same output."""

    def __call__(self, clean: torch.Tensor, g: torch.Generator, severity: float | torch.Tensor, /) -> torch.Tensor:
        ...


SynthesizeFn = Callable[[torch.Tensor, torch.Generator, "float | torch.Tensor"], torch.Tensor]


@dataclass(frozen=True)
class DegradationPlugin:
    """A degradation: its manifest and an optional synthesizer ``synthesize(clean, generator, severity)``."""

    manifest: PluginManifest
    synthesize: SynthesizeFn | None = None

    @property
    def name(self) -> str:
        return self.manifest.name


@dataclass(frozen=True)
class RefinerPlugin:
    """A refiner: runs after the base and adapters on the restored image. ``load()`` returns an object
    with ``refine(degraded, restored, adapter_weights, steps=...) -> (image, info)`` (e.g. UDAIR TTA)."""

    manifest: PluginManifest
    load: Callable[[], Any]

    def __post_init__(self) -> None:
        if self.manifest.kind != "refiner":
            raise ValueError(
                f"RefinerPlugin {self.manifest.name!r} has manifest kind {self.manifest.kind!r}; set kind='refiner'"
            )

    @property
    def name(self) -> str:
        return self.manifest.name
