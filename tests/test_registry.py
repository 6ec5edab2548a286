"""Tests for air_restore.registry: the base-weights store, plugin discovery and manifests.

Store tests write real safetensors files in tmp_path. Discovery is tested through the installed
entry points (the five built-ins) and through EntryPoint objects built in memory.
"""

from __future__ import annotations

import os
import stat
import sys
from importlib.metadata import EntryPoint, version
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from air_restore.core import degradations as D
from air_restore.core.arch import FORMAT_VERSION, AirUNet, AirUNetConfig, fingerprint
from air_restore.registry import discovery
from air_restore.registry.discovery import GROUP, PluginLoadError, discover, find, get_degradation, load
from air_restore.plugins.api import DegradationPlugin, PluginManifest
from air_restore.core.io.weights import ModelFileError, read_base_info, save_base
from air_restore.registry.store import bundled_base_path, load_base

TINY = AirUNetConfig(width=8, enc_blocks=(1,), dec_blocks=(1,), middle_blocks=1)
BUILTINS = ("blur", "haze", "lowlight", "noise", "rain")


def _tiny_model(seed: int = 0) -> AirUNet:
    torch.manual_seed(seed)
    model = AirUNet(config=TINY)
    with torch.no_grad():  # non-trivial residual scales, so every weight matters
        for name, p in model.named_parameters():
            if name.endswith((".beta", ".gamma")):
                p.normal_()
    return model


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, AirUNet, str]:
    model = _tiny_model()
    path = tmp_path / "base.safetensors"
    fp = save_base(model, path, training={"steps": 12, "data": {"images": 3}}, metrics={"val_psnr": 27.5})
    return path, model, fp


def _metadata(path: Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata())


# --------------------------------------------------------------------------------------------- store


def test_save_then_read_info_round_trips(saved) -> None:
    path, model, fp = saved
    info = read_base_info(path)
    assert info.path == path
    assert info.config == TINY
    assert info.fingerprint == fp
    assert info.training == {"steps": 12, "data": {"images": 3}}
    assert info.metrics == {"val_psnr": 27.5}
    meta = _metadata(path)
    assert meta["kind"] == "base" and meta["format_version"] == str(FORMAT_VERSION)
    assert meta["degradation"] == "noise,blur,haze,rain,lowlight"


def test_saved_tensors_are_fp16_and_load_back_as_fp32(saved) -> None:
    path, model, fp = saved
    stored = load_file(str(path))
    assert set(stored) == set(model.state_dict())
    assert all(t.dtype == torch.float16 for t in stored.values())
    assert fingerprint(stored) == fp  # the fingerprint is of the stored tensors, wherever they are read

    loaded, info = load_base(path)
    assert not loaded.training and loaded.config == TINY and info.fingerprint == fp
    for k, v in loaded.state_dict().items():
        assert v.dtype == torch.float32
        assert torch.equal(v, model.state_dict()[k].half().float()), k
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).image, model(x).image, atol=2e-2, rtol=0)


def test_save_base_can_keep_fp32(tmp_path: Path) -> None:
    model = _tiny_model()
    path = tmp_path / "b32.safetensors"
    save_base(model, path, dtype=torch.float32)
    loaded, _ = load_base(path)
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, model.state_dict()[k])


def test_save_base_leaves_no_temporary_files(tmp_path: Path) -> None:
    save_base(_tiny_model(), tmp_path / "sub" / "base.safetensors")
    save_base(_tiny_model(1), tmp_path / "sub" / "base.safetensors")  # overwrite in place
    assert os.listdir(tmp_path / "sub") == ["base.safetensors"]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_saved_file_permissions_follow_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    old = os.umask(umask)
    try:
        save_base(_tiny_model(), tmp_path / "base.safetensors")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "base.safetensors").st_mode) == mode


def _rewrite(src: Path, dst: Path, *, tensors=None, metadata=None) -> Path:
    """Copy a base file with tensors and/or metadata replaced."""
    save_file(tensors if tensors is not None else load_file(str(src)), str(dst),
              metadata=metadata if metadata is not None else _metadata(src))
    return dst


def _bad_files(src: Path, d: Path) -> dict[str, Path]:
    meta = _metadata(src)
    tensors = load_file(str(src))
    edited = dict(tensors)
    edited["ending.bias"] = edited["ending.bias"] + 0.125
    wider = AirUNetConfig(width=16, enc_blocks=(1,), dec_blocks=(1,), middle_blocks=1)
    (d / "hello.safetensors").write_text("hello, I am not a safetensors file")
    (d / "empty.safetensors").write_bytes(b"")
    (d / "truncated.safetensors").write_bytes(src.read_bytes()[:-100])
    return {
        "missing": d / "nope.safetensors",
        "directory": d,
        "not-safetensors": d / "hello.safetensors",
        "empty": d / "empty.safetensors",
        "truncated": d / "truncated.safetensors",
        "no-metadata": _rewrite(src, d / "nometa.safetensors", metadata={}),
        "kind-adapter": _rewrite(src, d / "adapter.safetensors", metadata={**meta, "kind": "adapter"}),
        "edited-tensor": _rewrite(src, d / "edited.safetensors", tensors=edited),
        "newer-format": _rewrite(src, d / "newer.safetensors",
                                 metadata={**meta, "format_version": str(FORMAT_VERSION + 1)}),
        "no-config": _rewrite(src, d / "noconfig.safetensors",
                              metadata={k: v for k, v in meta.items() if k != "config"}),
        "bad-config": _rewrite(src, d / "badconfig.safetensors", metadata={**meta, "config": '{"width": 2}'}),
        "config-mismatch": _rewrite(src, d / "mismatch.safetensors",
                                    metadata={**meta, "config": wider.model_dump_json()}),
        "missing-tensor": _rewrite(
            src, d / "missing_tensor.safetensors",
            tensors={k: v for k, v in tensors.items() if k != "ending.bias"},
            metadata={**meta, "fingerprint": fingerprint({k: v for k, v in tensors.items() if k != "ending.bias"})},
        ),
    }


BAD_CASES = {
    "missing": "no such model file",
    "directory": "no such model file",
    "not-safetensors": "not a readable safetensors",
    "empty": "not a readable safetensors",
    "truncated": "not a readable safetensors",
    "no-metadata": "not an air-restore base model",
    "kind-adapter": "not an air-restore base model",
    "edited-tensor": "fingerprint",
    "newer-format": "newer",
    "no-config": "invalid model config",
    "bad-config": "invalid model config",
    "config-mismatch": "do not fit",
    "missing-tensor": "do not fit",
}


@pytest.mark.parametrize("case", BAD_CASES)
def test_load_base_refuses_bad_files_with_the_path_in_the_message(saved, tmp_path: Path, case: str) -> None:
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    path = _bad_files(saved[0], bad_dir)[case]
    with pytest.raises(ModelFileError, match=BAD_CASES[case]) as err:
        load_base(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    "case", list(BAD_CASES)
)
def test_model_file_errors_are_one_line(saved, tmp_path: Path, case: str) -> None:
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    with pytest.raises(ModelFileError) as err:
        load_base(_bad_files(saved[0], bad_dir)[case])
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("field, value", [("format_version", "1.0"), ("training", "{oops"), ("metrics", "n/a")])
def test_malformed_metadata_is_a_model_file_error(saved, tmp_path: Path, field: str, value: str) -> None:
    path = _rewrite(saved[0], tmp_path / "malformed.safetensors", metadata={**_metadata(saved[0]), field: value})
    with pytest.raises(ModelFileError, match=str(path).replace("\\", "\\\\")):
        load_base(path)


def test_bundled_weights_load_and_are_small() -> None:
    path = bundled_base_path()
    assert path.is_file()
    assert path.stat().st_size < 8 * 1024 * 1024
    model, info = load_base()
    assert info.path == path
    assert info.config == model.config
    assert info.config.classes[0] == "clean"
    assert info.fingerprint == fingerprint(load_file(str(path)))
    assert {"val_psnr", "val_seg_acc"} <= set(info.metrics)
    assert info.training.get("steps", 0) > 0
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert not model.training


# ----------------------------------------------------------------------------------------- discovery


@pytest.fixture
def fresh_discovery():
    discover.cache_clear()
    yield
    discover.cache_clear()


def test_builtins_are_discovered_through_the_installed_entry_points(fresh_discovery) -> None:
    records = {r.entry_point.name: r for r in discover()}
    assert set(BUILTINS) <= set(records)
    for name in BUILTINS:
        r = records[name]
        assert r.error is None and isinstance(r.plugin, DegradationPlugin)
        assert r.package == "air-restore"
        assert r.display == f"air-restore[{name}]"
        assert r.entry_point.group == GROUP
        assert r.plugin.manifest.kind == "degradation"
        assert r.plugin.manifest.version == version("air-restore")
    assert get_degradation("noise").synthesize is D.noise
    assert get_degradation("lowlight").synthesize is D.lowlight
    keys = [(ep.name, pkg) for ep, pkg in find()]
    assert keys == sorted(keys)


@pytest.mark.parametrize("name", BUILTINS)
def test_every_builtin_synthesizer_keeps_shape_range_and_determinism(name: str, fresh_discovery) -> None:
    synth = get_degradation(name).synthesize
    x = torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    a = synth(x, torch.Generator().manual_seed(1), 0.5)
    b = synth(x, torch.Generator().manual_seed(1), 0.5)
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, x)


def test_unknown_degradation_lists_the_available_ones(fresh_discovery) -> None:
    with pytest.raises(KeyError, match="nope") as err:
        get_degradation("nope")
    for name in BUILTINS:
        assert name in str(err.value)


def _ep(name: str, value: str) -> EntryPoint:
    return EntryPoint(name, value, GROUP)


def test_load_a_good_entry_point() -> None:
    r = load(_ep("noise", "air_restore.plugins.builtin:noise"), "my-pkg")
    assert r.error is None and r.plugin is not None and r.plugin.name == "noise"
    assert r.display == "my-pkg[noise]"


def test_load_a_module_that_does_not_exist() -> None:
    r = load(_ep("snow", "air_restore_snow_does_not_exist:snow"), "air-snow")
    assert r.plugin is None
    assert "import failed" in r.error and "ModuleNotFoundError" in r.error
    assert "air_restore_snow_does_not_exist" in r.error


def test_load_a_module_that_raises_at_import(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "air_snow_broken_mod.py").write_text("raise RuntimeError('snowflake melted')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        r = load(_ep("snow", "air_snow_broken_mod:snow"), "air-snow")
    finally:
        sys.modules.pop("air_snow_broken_mod", None)
    assert r.plugin is None
    assert "import failed" in r.error and "RuntimeError" in r.error and "snowflake melted" in r.error


def test_load_a_missing_attribute() -> None:
    r = load(_ep("snow", "air_restore.plugins.builtin:snow"), "air-snow")
    assert r.plugin is None and "AttributeError" in r.error


def test_load_an_object_that_is_not_a_plugin() -> None:
    r = load(_ep("noise", "air_restore.core.degradations:noise"), "air-noise")
    assert r.plugin is None
    assert "not a DegradationPlugin" in r.error and "function" in r.error


def test_load_a_plugin_whose_manifest_name_differs() -> None:
    r = load(_ep("snow", "air_restore.plugins.builtin:rain"), "air-snow")
    assert r.plugin is None
    assert "'snow'" in r.error and "'rain'" in r.error


def test_one_broken_plugin_does_not_stop_the_others_and_name_conflicts_are_errors(fresh_discovery, monkeypatch) -> None:
    fake = [
        (_ep("blur", "air_restore.plugins.builtin:blur"), "air-restore"),
        (_ep("haze", "air_restore.plugins.builtin:haze"), "air-restore"),
        (_ep("haze", "air_restore.plugins.builtin:haze"), "air-haze-deluxe"),
        (_ep("snow", "air_restore_snow_does_not_exist:snow"), "air-snow"),
    ]
    monkeypatch.setattr(discovery, "find", lambda: fake)
    records = discover()
    assert [r.display for r in records] == [
        "air-restore[blur]", "air-restore[haze]", "air-haze-deluxe[haze]", "air-snow[snow]",
    ]
    assert records[0].error is None
    assert all("name conflict" in r.error for r in records[1:3])
    assert "import failed" in records[3].error
    assert get_degradation("blur").synthesize is D.blur
    with pytest.raises(PluginLoadError, match=r"air-snow\[snow\]"):
        get_degradation("snow")
    with pytest.raises(PluginLoadError, match="name conflict"):
        get_degradation("haze")
    with pytest.raises(KeyError) as err:
        get_degradation("noise")
    assert err.value.args[0].endswith("available: blur")  # only working plugins are offered


# ------------------------------------------------------------------------------------------ manifest


def _manifest(**kw) -> PluginManifest:
    base = {"name": "snow", "kind": "degradation", "version": "1.0", "description": "Snowfall."}
    return PluginManifest(**{**base, **kw})


@pytest.mark.parametrize("name", ["Snow", "1abc", "", "snow-storm", "snow storm", "_snow", "a" * 33, "snöw"])
def test_manifest_rejects_bad_names(name: str) -> None:
    with pytest.raises(ValidationError, match="lowercase"):
        _manifest(name=name)


@pytest.mark.parametrize("name", ["snow", "a", "snow_2", "a" * 32])
def test_manifest_accepts_good_names(name: str) -> None:
    assert _manifest(name=name).name == name


def test_manifest_rejects_unknown_kind_and_extra_fields_and_is_frozen() -> None:
    with pytest.raises(ValidationError):
        _manifest(kind="filter")
    with pytest.raises(ValidationError):
        _manifest(colour="white")
    m = _manifest()
    with pytest.raises(ValidationError):
        m.name = "rain"  # type: ignore[misc]
    assert m.base_fingerprint is None
    assert all(f.description for f in PluginManifest.model_fields.values())
