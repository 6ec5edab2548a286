"""Tests for the UDAIR refiner plugin: VQ, CSCL, CORAL, the DAM's test-time adaptation (reset per
image, frozen parts untouched), discovery through entry points, a tiny training run, and the shipped
weights on a real image."""

from __future__ import annotations

import hashlib
import time
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
import torch

from air_restore.plugins.udair_training import TrainUdairConfig, train_udair
from air_restore.plugins import udair as U
from air_restore.registry import discovery
from air_restore.plugins.api import PluginManifest, RefinerPlugin

REPO = Path(__file__).resolve().parents[1]
TINY = U.UdairConfig(classes=("clean", "noise", "haze"), feat=8, codebook=16, width=8, middle_blocks=1)


def _hash(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().contiguous().numpy().tobytes())
    return h.hexdigest()


def _tiny_refiner(seed: int = 0) -> U.UdairRefiner:
    torch.manual_seed(seed)
    net = U.UdairNet(config=TINY)
    d = TINY.feat
    a = torch.randn(3, d, d)
    anchors = U.Anchors(torch.randn(3, d), a @ a.transpose(1, 2) / d + 0.1 * torch.eye(d))
    return U.UdairRefiner(net, anchors)


def _image(seed: int = 0, size: int = 48) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand((1, 3, 6, 6), generator=g)
    img = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)[0]
    return (img + 0.05 * torch.randn(img.shape, generator=g)).clamp(0, 1)


# ---------------------------------------------------------------------------------------------- VQ


def test_vq_picks_the_nearest_code_and_passes_gradients_straight_through() -> None:
    vq = U.VectorQuantizer(codes=4, dim=2)
    with torch.no_grad():
        vq.codebook.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]))
    z = torch.tensor([[0.9, 0.2], [0.1, 0.1], [4.0, 4.5], [0.2, 0.8]], requires_grad=True)
    out = vq(z)
    assert out.index.tolist() == [1, 0, 3, 2]
    assert torch.equal(out.quantized.detach(), vq.codebook[out.index].detach())  # forward: the code itself
    (out.quantized * torch.arange(8.0).view(4, 2)).sum().backward()
    assert torch.equal(z.grad, torch.arange(8.0).view(4, 2))  # backward: identity to z
    # Commitment and codebook losses: β·‖z − sg(q)‖² + ‖sg(z) − q‖²
    expected = (1 + vq.commitment) * (vq.codebook[out.index].detach() - z.detach()).square().mean()
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)


# -------------------------------------------------------------------------------------------- CSCL


def test_cscl_is_lower_when_same_degradation_features_align() -> None:
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])
    centres = torch.randn(3, 16, generator=g)
    aligned = centres[labels] + 0.05 * torch.randn(9, 16, generator=g)
    scrambled = torch.randn(9, 16, generator=g)
    l_aligned = U.cscl_loss(aligned, labels, torch.Generator().manual_seed(1))
    l_random = U.cscl_loss(scrambled, labels, torch.Generator().manual_seed(1))
    assert l_aligned.item() < 0.1 < l_random.item()
    # Positives are other images of the same class: identical copies of one image per class reach ~0.
    assert U.cscl_loss(centres[labels], labels, torch.Generator().manual_seed(2)).item() < 0.01


def test_cscl_gradient_pulls_positives_together() -> None:
    labels = torch.tensor([0, 0, 1, 1])
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(3), requires_grad=True)
    opt = torch.optim.SGD([z], lr=0.5)
    before = U.cscl_loss(z, labels, torch.Generator().manual_seed(0)).item()
    for i in range(20):
        loss = U.cscl_loss(z, labels, torch.Generator().manual_seed(i))
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = U.cscl_loss(z, labels, torch.Generator().manual_seed(0)).item()
    assert after < before
    zn = torch.nn.functional.normalize(z.detach(), dim=1)
    assert (zn[0] @ zn[1]) > (zn[0] @ zn[2]) and (zn[2] @ zn[3]) > (zn[1] @ zn[3])


def test_cscl_without_any_positive_is_zero() -> None:
    z = torch.randn(3, 4, requires_grad=True)
    assert U.cscl_loss(z, torch.tensor([0, 1, 2]), torch.Generator()).item() == 0.0


# ------------------------------------------------------------------------------------------- CORAL


def test_coral_matches_a_hand_computation() -> None:
    # Features of 2 channels at 4 positions: columns are positions.
    f = torch.tensor([[1.0, 2.0, 3.0, 4.0], [2.0, 0.0, 2.0, 0.0]]).view(1, 2, 2, 2)
    # By hand: means 2.5 and 1; cov = Σ (x − μ)(x − μ)ᵀ / (N − 1)
    #   var0 = (2.25 + .25 + .25 + 2.25)/3 = 5/3, var1 = 4/3, cov01 = (−1.5 + .5 + .5 − 1.5)/3 = −2/3
    c_t = U.feature_covariance(f)
    assert torch.allclose(c_t, torch.tensor([[5 / 3, -2 / 3], [-2 / 3, 4 / 3]]))
    c_s = torch.eye(2)
    # ‖C_s − C_t‖²_F / (4·2²) = ((2/3)² + (2/3)² + (2/3)² + (1/3)²) / 16 = (13/9) / 16
    assert U.coral_loss(c_s, c_t).item() == pytest.approx(13 / 9 / 16, rel=1e-6)


# --------------------------------------------------------------------------------------------- DAM


def test_dam_is_the_identity_until_adapted() -> None:
    dam = U.DAM(8)
    f = torch.randn(2, 8, 5, 5)
    assert torch.equal(dam(f), f)


def test_tta_lowers_coral_and_leaves_every_frozen_part_unchanged() -> None:
    ref = _tiny_refiner()
    x = _image(1)
    y = (x * 0.9 + 0.05).clamp(0, 1)
    before = _hash(ref.net)
    parts = {n: _hash(getattr(ref.net, n)) for n in ("encoder", "dam", "vq", "gate", "middle", "ending")}
    anchors = ref.anchors.cov.clone()
    out1, info1 = ref.refine(x, y, {"noise": 0.8, "haze": 0.1}, steps=5)
    assert info1["steps"] == 5
    assert info1["coral_after"] < info1["coral_before"]
    assert _hash(ref.net) == before  # base-side parts: encoder, codebook, refiner body, pristine DAM
    assert {n: _hash(getattr(ref.net, n)) for n in parts} == parts
    assert torch.equal(ref.anchors.cov, anchors)
    assert all(not p.requires_grad for p in ref.net.parameters())
    # Reset per image: a second call on the same image starts from the same DAM and gives the same result.
    out2, info2 = ref.refine(x, y, {"noise": 0.8, "haze": 0.1}, steps=5)
    assert info2["coral_before"] == info1["coral_before"] and torch.allclose(out1, out2)
    # Another image in between does not leak into the next one.
    ref.refine(_image(7), _image(8), {"haze": 1.0}, steps=5)
    out3, info3 = ref.refine(x, y, {"noise": 0.8, "haze": 0.1}, steps=5)
    assert info3["coral_before"] == info1["coral_before"] and torch.allclose(out1, out3)
    assert out1.shape == x.shape and 0 <= out1.min() and out1.max() <= 1


def test_anchor_mix_follows_the_adapter_weights() -> None:
    ref = _tiny_refiner()
    mix, ignored = ref.anchor_mix({"noise": 0.0, "haze": 0.0})
    assert mix.tolist() == [1.0, 0.0, 0.0]  # nothing detected: the clean anchor
    mix, ignored = ref.anchor_mix({"noise": 1.0, "haze": 1.0, "snow": 0.7})
    assert mix.tolist() == [0.0, 0.5, 0.5] and ignored == ["snow"]
    mix, _ = ref.anchor_mix({"noise": 0.3})
    assert torch.allclose(mix, torch.tensor([0.7, 0.3, 0.0]))
    assert torch.allclose(ref.target_covariance(mix), 0.7 * ref.anchors.cov[0] + 0.3 * ref.anchors.cov[1])


def test_degradation_weights_prefer_adapters_then_segmentation_shares() -> None:
    assert U.degradation_weights(["noise", "haze"], [0.2, 0.9], {"clean": 1.0}) == {"noise": 0.2, "haze": 0.9}
    assert U.degradation_weights([], [], {"clean": 0.6, "haze": 0.4}) == {"haze": 0.4}
    assert U.degradation_weights([], [], None) is None


def test_no_steps_means_the_refiner_alone() -> None:
    ref = _tiny_refiner()
    x = _image(2)
    _, info = ref.refine(x, x, {"noise": 1.0}, steps=0)
    assert info["coral_before"] == info["coral_after"]
    _, info = ref.refine(x, x, None)
    assert info["steps"] == 0 and "skipped" in info["note"]


def test_tiled_refine_matches_whole_image() -> None:
    ref = _tiny_refiner()
    with torch.no_grad():
        for p in ref.net.parameters():  # non-trivial residual branches and head
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    x, y = _image(3, 160), _image(4, 160)
    whole, _ = ref.refine(x, y, {"noise": 1.0}, steps=0)
    ref.tile, ref.overlap = 96, 48
    tiled, _ = ref.refine(x, y, {"noise": 1.0}, steps=0)
    assert (whole - tiled).abs().max() < 0.02


# --------------------------------------------------------------------------------- plugin and files


def test_plugin_is_discovered_through_entry_points() -> None:
    records = {r.entry_point.name: r for r in discovery.discover()}
    assert "udair" in records and records["udair"].error is None
    plugin = discovery.get_refiner("udair")
    assert isinstance(plugin, RefinerPlugin) and plugin.manifest.kind == "refiner"
    assert records["udair"].entry_point.value == "air_restore.plugins.udair:plugin"
    with pytest.raises(KeyError, match="refiner, not a degradation"):
        discovery.get_degradation("udair")
    with pytest.raises(KeyError, match="no refiner plugin named 'noise'|is a degradation, not a refiner"):
        discovery.get_refiner("noise")


def test_in_memory_entry_point_loads_a_refiner() -> None:
    ep = EntryPoint("udair", "air_restore.plugins.udair:plugin", discovery.GROUP)
    rec = discovery.load(ep, "air-restore")
    assert rec.error is None and rec.plugin is U.plugin


def test_refiner_plugin_refuses_a_degradation_manifest() -> None:
    with pytest.raises(ValueError, match="kind='refiner'"):
        RefinerPlugin(PluginManifest(name="x", kind="degradation", version="1", description="d"), lambda: None)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    ref = _tiny_refiner()
    path = tmp_path / "u.safetensors"
    U.save_udair(ref.net, ref.anchors, path, base_fingerprint="sha256:abc", adapters=["noise"],
                 training={"steps": 3}, metrics={"val_psnr_refined": 30.0})
    loaded = U.load_refiner(path)
    assert loaded.base_fingerprint == "sha256:abc" and loaded.meta["metrics"]["val_psnr_refined"] == 30.0
    assert torch.equal(loaded.anchors.cov, ref.anchors.cov)
    x = _image(5)
    a, _ = ref.refine(x, x, {"noise": 1.0}, steps=2)
    b, _ = loaded.refine(x, x, {"noise": 1.0}, steps=2)
    assert (a - b).abs().max() < 1e-2  # fp16 storage of the network
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(U.UdairFileError):
        U.load_refiner(path)


# ---------------------------------------------------------------------------------------- training


def test_tiny_training_run_finishes_and_returns_anchors() -> None:
    photos = [_image(i, 40) for i in range(8)]

    def noise(x, g, s):
        return (x + s.view(-1, 1, 1, 1) * 0.2 * torch.randn(x.shape, generator=g)).clamp(0, 1)

    def haze(x, g, s):
        return x * (1 - 0.5 * s.view(-1, 1, 1, 1)) + 0.5 * s.view(-1, 1, 1, 1)

    cfg = TrainUdairConfig(steps=6, per_class=2, crop=32, pool=4, val_images=2, val_crop=32, val_every=3,
                           anchor_crops=2, anchor_crop=32, model=TINY)
    net, anchors, info = train_udair(photos, [noise, haze], lambda x: x, config=cfg, log=lambda s: None)
    assert info["training"]["steps"] == 6 and len(info["training"]["history"]) == 2
    assert anchors.mean.shape == (3, TINY.feat) and anchors.cov.shape == (3, TINY.feat, TINY.feat)
    assert torch.allclose(anchors.cov, anchors.cov.transpose(1, 2), atol=1e-6)
    assert {"val_psnr_restored", "val_psnr_refined", "gain_noise"} <= set(info["metrics"])
    assert torch.equal(net.dam.down.weight, torch.zeros_like(net.dam.down.weight))  # DAM untouched
    timed = cfg.model_copy(update={"steps": 100_000, "time_budget": 1.0, "val_every": 10**6})
    started = time.monotonic()
    _, _, info = train_udair(photos, [noise, haze], lambda x: x, config=timed, log=lambda s: None)
    assert 2 <= info["training"]["steps"] < 100_000 and time.monotonic() - started < 10
    assert info["training"]["history"][-1]["step"] == info["training"]["steps"]  # validated where it stopped


# ------------------------------------------------------------------------------------- shipped file


@pytest.mark.skipif(not U.bundled_path().is_file(), reason="udair-v1.safetensors not shipped yet")
def test_shipped_weights_refine_a_real_image() -> None:
    from air_restore.core.io.images import read_image
    from air_restore.core.io.weights import read_base_info
    from air_restore.registry.store import bundled_base_path

    ref = U.load_refiner()
    assert ref.base_fingerprint == read_base_info(bundled_base_path()).fingerprint
    assert U.bundled_path().stat().st_size < 1_000_000
    img = read_image(REPO / "examples" / "noisy_astronaut.png").rgb[:, :96, :96]
    restored = img.clamp(0, 1)  # the refiner accepts any restored image; the base is tested elsewhere
    out, info = ref.refine(img, restored, {"noise": 1.0}, steps=5)
    assert out.shape == img.shape and torch.isfinite(out).all()
    assert info["coral_after"] < info["coral_before"]


# ---------------------------------------------------------------------------------------------- CLI


@pytest.mark.skipif(not U.bundled_path().is_file(), reason="udair-v1.safetensors not shipped yet")
def test_air_restore_tta_explain_reports_coral(tmp_path: Path, monkeypatch) -> None:
    from PIL import Image
    from typer.testing import CliRunner

    from air_restore.cli.main import app

    monkeypatch.setenv("AIR_HOME", str(tmp_path / "home"))  # no local adapters: the bundled set only
    src = Image.open(REPO / "examples" / "noisy_astronaut.png").convert("RGB").crop((0, 0, 64, 64))
    src.save(tmp_path / "a.png")
    res = CliRunner().invoke(app, ["restore", str(tmp_path / "a.png"), "--tta", "--explain", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "a_restored.png").is_file()
    assert "UDAIR TTA: CORAL" in res.output
