"""Typed plugin records: the manifest every plugin (built-in or third-party) carries."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

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
