"""The plugin contract suite (air_restore.plugins.testing) on our own plugins, as a plugin author runs it,
and proof that it catches a plugin that breaks the contract. Also: the old import path still works."""

from __future__ import annotations

import importlib
import sys
import warnings

import pytest
import torch

from air_restore.plugins import builtin, snow
from air_restore.plugins.api import DegradationPlugin, PluginManifest
from air_restore.plugins.testing import DegradationContract
from air_restore.registry.store import bundled_dir


class TestSnowContract(DegradationContract):
    plugin = snow.plugin


class TestJpegContract(DegradationContract):
    plugin = builtin.jpeg


class TestNoiseWithItsAdapter(DegradationContract):
    plugin = builtin.noise
    adapter_dir = bundled_dir() / "adapters" / "noise"


def _global_rng_synth(x, g, severity):
    return (x + 0.1 * torch.randn(x.shape)).clamp(0, 1)  # ignores g: not reproducible from the seed


class _Bad(DegradationContract):
    plugin = DegradationPlugin(PluginManifest(name="bad", kind="degradation", version="0", description="x"),
                               _global_rng_synth)


def test_the_contract_catches_a_synthesizer_that_ignores_its_generator():
    photos = torch.rand(2, 3, 32, 32)
    with pytest.raises(AssertionError, match="global RNG"):
        _Bad().test_synthesizer_draws_randomness_from_its_generator_only(photos)
    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):  # a severity of 1.5 passes silently
        _Bad().test_synthesizer_refuses_a_severity_outside_0_1(photos, 1.5)


def test_the_old_manifest_module_still_works_with_a_deprecation_warning():
    sys.modules.pop("air_restore.registry.manifest", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = importlib.import_module("air_restore.registry.manifest")
    assert old.PluginManifest is PluginManifest and old.DegradationPlugin is DegradationPlugin
    assert any(issubclass(w.category, DeprecationWarning) and "plugins.api" in str(w.message) for w in caught)
