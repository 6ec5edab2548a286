"""Built-in degradation plugins. They register through the project's own entry points
(``air_restore.plugins`` in pyproject.toml), exactly like third-party plugins."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from ..core import degradations as D
from .api import DegradationPlugin, PluginManifest

try:
    _VERSION = version("air-restore")
except PackageNotFoundError:  # running from a source tree that is not installed
    _VERSION = "0+unknown"


def _builtin(name: str, description: str, fn) -> DegradationPlugin:
    return DegradationPlugin(
        PluginManifest(name=name, kind="degradation", version=_VERSION, description=description), fn
    )


noise = _builtin("noise", "Gaussian and Poisson–Gaussian sensor noise, σ up to 50/255.", D.noise)
blur = _builtin("blur", "Camera-shake motion blur and defocus blur.", D.blur)
haze = _builtin("haze", "Haze and fog by the atmospheric scattering model.", D.haze)
rain = _builtin("rain", "Layered, slanted rain streaks with a veil.", D.rain)
lowlight = _builtin("lowlight", "Under-exposure with sensor noise.", D.lowlight)
# Most photos users have are JPEGs, many recompressed: blocks, ringing and chroma smear from baseline JPEG
# (4:2:0, the standard tables), quality 95 at severity 0 down to about 8 at severity 1 (q 20 ≈ severity 0.9).
jpeg = _builtin("jpeg", "JPEG compression artefacts: 8×8 blocks, ringing, chroma smear (quality 95 → 8).", D.jpeg)
