"""Deprecated: the plugin contract moved to :mod:`air_restore.plugins.api` (plugins should not import the
registry). This module re-exports it, with a DeprecationWarning, so existing third-party plugins keep
working; it will be removed in a later release."""

from __future__ import annotations

import warnings

from ..plugins.api import NAME_RE, DegradationPlugin, PluginManifest, RefinerPlugin, SynthesizeFn  # noqa: F401

warnings.warn(
    "air_restore.registry.manifest is deprecated; import PluginManifest, DegradationPlugin and RefinerPlugin "
    "from air_restore.plugins.api",
    DeprecationWarning,
    stacklevel=2,
)
