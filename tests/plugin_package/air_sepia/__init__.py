"""A third-party degradation plugin for air-restore: an aged-photo sepia colour cast."""

import torch

from air_restore.plugins.api import DegradationPlugin, PluginManifest

SEPIA = torch.tensor([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]])


def synthesize(clean: torch.Tensor, generator: torch.Generator, severity) -> torch.Tensor:
    s = torch.as_tensor(severity, dtype=clean.dtype, device=clean.device).reshape(-1, 1, 1, 1)
    toned = torch.einsum("oc,bchw->bohw", SEPIA.to(clean), clean)
    jitter = 1 + 0.02 * torch.randn((clean.shape[0], 1, 1, 1), generator=generator, device=clean.device)
    return (clean * (1 - s) + toned * s * jitter).clamp(0, 1)


sepia = DegradationPlugin(
    PluginManifest(name="sepia", kind="degradation", version="0.2.0", description="Sepia colour cast of old prints."),
    synthesize,
)

NOT_A_PLUGIN = {"name": "notaplugin"}
