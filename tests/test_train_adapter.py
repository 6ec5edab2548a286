"""Phase II: a real (tiny) LoRA adapter trained on the shipped base, saved in PEFT's layout."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from air_restore.cli.main import app
from air_restore.core.training.adapter import (
    Over, TrainAdapterConfig, grey_crops, paired_sampler, save_adapter, shuffle_colours, synthetic_sampler,
    train_adapter, with_clean,
)
from air_restore.core.lora import attach, blend
from air_restore.registry.adapters import read_peft_adapter
from air_restore.registry.discovery import get_degradation
from air_restore.registry.store import load_base

peft = pytest.importorskip("peft")
runner = CliRunner()


@pytest.fixture()
def clean_dir(tmp_path):
    from skimage import data

    d = tmp_path / "clean"
    d.mkdir()
    for k in ("astronaut", "coffee", "chelsea"):
        Image.fromarray(getattr(data, k)()).resize((72, 64)).save(d / f"{k}.png")
    return d


def test_cli_trains_saves_and_reports(clean_dir, tmp_path):
    out = tmp_path / "adapters" / "haze"
    r = runner.invoke(app, ["train", "adapter", "haze", "--synthetic", "haze", "--clean", str(clean_dir),
                            "--out", str(out), "--steps", "3", "--batch-size", "2", "--crop", "32"])
    assert r.exit_code == 0, r.output
    # PEFT's empty card template is not kept: an adapter's card is made by `air push` from its manifest
    assert sorted(p.name for p in out.iterdir()) == ["adapter_config.json", "adapter_model.safetensors",
                                                     "air_manifest.json"]
    base, info = load_base()
    with safe_open(str(out / "adapter_model.safetensors"), "pt") as f:
        manifest = json.loads(f.metadata()["air_manifest"])
    assert manifest == json.loads((out / "air_manifest.json").read_text())
    assert manifest["name"] == "haze" and manifest["base_fingerprint"] == info.fingerprint
    assert manifest["rank"] == 4 and manifest["targets"] == list(base.config.lora_targets)
    assert manifest["training"]["data"]["train_images"] == 2 and manifest["metrics"]["heldout_images"] == 1
    assert {"heldout_psnr_input", "heldout_psnr_base", "heldout_psnr_adapter"} <= set(manifest["metrics"])
    assert "held-out PSNR" in r.output
    # Plain peft loads the folder unchanged, and our blending reproduces it exactly.
    pm = peft.PeftModel.from_pretrained(copy.deepcopy(base), str(out)).eval()
    blended = copy.deepcopy(base)
    attach(blended, "haze", read_peft_adapter(out)[1])
    x = torch.rand(2, 3, 40, 48)
    with torch.no_grad(), blend(blended, torch.ones(2, 1)):
        assert torch.allclose(blended(x).image, pm(x).image, atol=1e-5)
    # Nothing is overwritten without --overwrite.
    r = runner.invoke(app, ["train", "adapter", "haze", "--synthetic", "haze", "--clean", str(clean_dir),
                            "--out", str(out), "--steps", "1", "--crop", "32"])
    assert r.exit_code == 2 and "--overwrite" in r.output


def test_training_changes_only_the_adapter(clean_dir):
    base, _ = load_base()
    before = {k: v.clone() for k, v in base.state_dict().items()}
    imgs = [torch.from_numpy(np.asarray(Image.open(p), dtype=np.float32) / 255).permute(2, 0, 1)
            for p in sorted(clean_dir.iterdir())]
    sampler = synthetic_sampler(imgs, get_degradation("noise").synthesize)
    model = train_adapter(base, sampler, config=TrainAdapterConfig(steps=2, batch_size=2, crop=32))
    assert all(torch.equal(before[k], v) for k, v in base.state_dict().items())
    lora = {n: p for n, p in model.named_parameters() if "lora_" in n}
    assert lora and all("lora_" in n for n, p in model.named_parameters() if p.requires_grad)
    assert any(p.abs().sum() > 0 for n, p in lora.items() if "lora_B" in n)  # B moved off zero


def test_the_same_seed_trains_the_same_adapter_whatever_came_before(clean_dir):
    """LoRA's initial weights come from the config's seed, not from whatever the process drew before."""
    base, _ = load_base()
    imgs = [torch.from_numpy(np.asarray(Image.open(p), dtype=np.float32) / 255).permute(2, 0, 1)
            for p in sorted(clean_dir.iterdir())]
    sampler = synthetic_sampler(imgs, get_degradation("noise").synthesize)

    def lora(seed: int, before: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(before)
        torch.rand(7)
        model = train_adapter(base, sampler, config=TrainAdapterConfig(steps=1, batch_size=2, crop=32, seed=seed))
        return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}

    a, b, c = lora(0, before=1), lora(0, before=2), lora(1, before=1)
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert not all(torch.equal(a[n], c[n]) for n in a)


def test_over_puts_the_degradation_on_top_of_others(clean_dir):
    """--over: a share of the crops gets another degradation first, and their target is the base's output on
    that background (what the base gives without the adapter's degradation); the other crops are unchanged."""
    base, _ = load_base()
    imgs = [torch.from_numpy(np.asarray(Image.open(p), dtype=np.float32) / 255).permute(2, 0, 1)
            for p in sorted(clean_dir.iterdir())]
    clean = torch.stack([im[:, :32, :32] for im in imgs])
    haze = get_degradation("haze").synthesize
    x, y = Over([haze], 1.0, base).apply(clean, torch.Generator().manual_seed(0))
    assert (x - clean).abs().mean() > 0.02  # every crop hazed
    with torch.no_grad():
        assert torch.allclose(y, base(x).image.clamp(0, 1), atol=1e-6)
    x0, y0 = Over([haze], 0.0, base).apply(clean, torch.Generator().manual_seed(0))
    assert torch.equal(x0, clean) and torch.equal(y0, clean)
    # In the sampler, the adapter's own degradation (noise) goes on top; seeded, so reproducible.
    noise = get_degradation("noise").synthesize
    sample = synthetic_sampler(imgs, noise, over=Over([haze], 0.5, base))
    (d1, t1), (d2, t2) = (sample(6, 32, torch.Generator().manual_seed(3)) for _ in range(2))
    assert torch.equal(d1, d2) and torch.equal(t1, t2)
    plain = synthetic_sampler(imgs, noise)(6, 32, torch.Generator().manual_seed(3))
    assert not torch.equal(plain[1], t1)  # some targets are base outputs, not clean crops


def test_cli_over_is_recorded(clean_dir, tmp_path):
    out = tmp_path / "noise"
    r = runner.invoke(app, ["train", "adapter", "noise", "--synthetic", "noise", "--over", "haze, rain",
                            "--over-share", "0.5", "--clean", str(clean_dir), "--out", str(out), "--steps", "2",
                            "--batch-size", "2", "--crop", "32"])
    assert r.exit_code == 0, r.output
    data = json.loads((out / "air_manifest.json").read_text())["training"]["data"]
    assert data["over"] == ["haze", "rain"] and data["over_share"] == 0.5


def test_family_draws_other_ways_the_degradation_looks():
    """--family: the noise adapter's family also holds luminance noise, the same in every channel; the noise
    plugin's own synthesizer draws each channel's noise apart."""
    from air_restore.registry.training import family_synthesizer

    grey = torch.full((60, 3, 32, 32), 0.5)

    def channel_corr(x):
        n = (x - grey).flatten(2)
        n = n - n.mean(2, keepdim=True)
        return (n[:, 0] * n[:, 1]).mean(1) / (n[:, 0].std(1) * n[:, 1].std(1)).clamp_min(1e-8)

    plain = get_degradation("noise").synthesize(grey, torch.Generator().manual_seed(0), 0.5)
    wide = family_synthesizer("noise")[0](grey, torch.Generator().manual_seed(0), 0.5)
    assert channel_corr(plain).abs().max() < 0.2
    luminance = int((channel_corr(wide) > 0.45).sum())
    assert 10 <= luminance <= 32 and int((channel_corr(wide).abs() < 0.2).sum()) >= 28  # a third, the rest per channel


def test_cli_family_is_recorded_and_used(clean_dir, tmp_path):
    args = ["--clean", str(clean_dir), "--steps", "1", "--batch-size", "2", "--crop", "32"]
    for out, extra in ((tmp_path / "plain", []), (tmp_path / "wide", ["--family"])):
        r = runner.invoke(app, ["train", "adapter", "haze", "--synthetic", "haze", *extra, *args, "--out", str(out)])
        assert r.exit_code == 0, r.output
    plain, wide = (json.loads((tmp_path / n / "air_manifest.json").read_text()) for n in ("plain", "wide"))
    assert wide["training"]["data"]["family"] == "widened" and "family" not in plain["training"]["data"]
    # Same seed, other synthesizer: the held-out photo is degraded differently.
    assert wide["metrics"]["heldout_psnr_input"] != plain["metrics"]["heldout_psnr_input"]


def test_lowlight_family_compresses_about_half_of_its_dark_crops():
    """The low-light adapter's family (core.families.ADAPTER_FAMILIES): every crop dark, and about half of them
    JPEG-compressed afterwards (base v1 leaves a JPEG-compressed dark photo dark, so the adapter must learn it)."""
    from skimage import data

    from air_restore.core.families import ADAPTER_FAMILIES, then_jpeg

    photo = torch.from_numpy(data.astronaut().astype(np.float32) / 255).permute(2, 0, 1)
    crops = torch.stack([photo[:, 40 * i : 40 * i + 64, 40 * i : 40 * i + 64] for i in range(8)] * 4)
    s = torch.rand(len(crops), generator=torch.Generator().manual_seed(1))
    dark = ADAPTER_FAMILIES["lowlight"](crops, torch.Generator().manual_seed(0), s)
    assert (dark.mean((1, 2, 3)) / crops.mean((1, 2, 3))).max() < 0.6  # every crop much darker
    # then_jpeg draws after its synthesizer: the same seed gives the same crops, half of them compressed
    ident = lambda x, g, s: x  # noqa: E731
    out = then_jpeg(ident)(crops, torch.Generator().manual_seed(0), s)
    changed = (out - crops).abs().flatten(1).amax(1) > 0
    assert 8 <= int(changed.sum()) <= 24
    assert torch.equal(out[~changed], crops[~changed])


def test_rain_family_is_the_plugin_then_jpeg_on_about_half():
    """The rain adapter's family (core.families.ADAPTER_FAMILIES): the rain plugin's streaks on every crop, and
    about half of the crops then JPEG-compressed (by either codec), as a phone saves a rainy photo."""
    from skimage import data

    from air_restore.core.families import ADAPTER_FAMILIES

    photo = torch.from_numpy(data.astronaut().astype(np.float32) / 255).permute(2, 0, 1)
    crops = torch.stack([photo[:, 40 * i : 40 * i + 64, 40 * i : 40 * i + 64] for i in range(8)] * 4)
    s = torch.full((len(crops),), 0.5)
    family = ADAPTER_FAMILIES["rain"](crops, torch.Generator().manual_seed(0), s)
    plugin = get_degradation("rain").synthesize(crops, torch.Generator().manual_seed(0), s).clamp(0, 1)
    # then_jpeg draws after the plugin: the same seed gives the same rainy crops, about half compressed
    compressed = (family - plugin).abs().flatten(1).amax(1) > 0
    assert 8 <= int(compressed.sum()) <= 24
    assert torch.equal(family[~compressed], plugin[~compressed])
    assert float((plugin - crops).abs().mean()) > 0.02  # the streaks are there in every crop


def test_jpeg_family_saves_noise_on_about_a_fifth_of_its_crops():
    """The JPEG adapter's family (core.families.ADAPTER_FAMILIES): every crop JPEG-compressed, and about a fifth
    of them noisy first (core.families.noisy_jpeg), as a camera saves its sensor noise. On a flat grey crop the
    codec alone leaves it flat; the noise, at σ 7.5 levels or more, survives it."""
    from air_restore.core.families import ADAPTER_FAMILIES

    crops = torch.full((40, 3, 64, 64), 0.5)
    out = ADAPTER_FAMILIES["jpeg"](crops, torch.Generator().manual_seed(0), torch.full((40,), 0.3))
    spread = (out - out.mean((2, 3), keepdim=True)).std(dim=(1, 2, 3)) * 255  # in 8-bit levels
    noisy = spread > 2
    assert 3 <= int(noisy.sum()) <= 16
    assert float(spread[~noisy].max()) < 1  # a clean flat crop stays flat through either codec
    assert float(spread[noisy].min()) > 3


def test_init_starts_from_the_given_adapter(clean_dir, tmp_path):
    """--init: training starts from an existing adapter's factors (at a vanishing learning rate it stays
    there), and the manifest says which; another rank or a folder that is no adapter is refused."""
    args = ["train", "adapter", "haze", "--synthetic", "haze", "--clean", str(clean_dir), "--batch-size", "2",
            "--crop", "32"]
    first = tmp_path / "first"
    assert runner.invoke(app, [*args, "--steps", "3", "--out", str(first)]).exit_code == 0
    for out, extra in ((tmp_path / "again", ["--init", str(first)]), (tmp_path / "fresh", [])):
        r = runner.invoke(app, [*args, *extra, "--steps", "1", "--lr", "1e-12", "--out", str(out)])
        assert r.exit_code == 0, r.output
    f0, again, fresh = (read_peft_adapter(tmp_path / n)[1] for n in ("first", "again", "fresh"))
    assert f0.keys() == again.keys()
    for k in f0:
        assert torch.allclose(again[k].B, f0[k].B, atol=1e-8) and torch.allclose(again[k].A, f0[k].A, atol=1e-8)
    assert all(float(v.B.abs().max()) < 1e-6 for v in fresh.values())  # a fresh LoRA starts at B = 0
    assert any(float(v.B.abs().max()) > 1e-4 for v in f0.values())
    data = json.loads((tmp_path / "again" / "air_manifest.json").read_text())["training"]["data"]
    assert data["init"]["name"] == "haze"
    for extra, message in ((["--init", str(first), "--rank", "8"], "rank 4, not --rank 8"),
                           (["--init", str(clean_dir)], "not an adapter folder")):
        r = runner.invoke(app, [*args, *extra, "--steps", "1", "--out", str(tmp_path / "o")])
        assert r.exit_code == 2 and message in r.output.replace("\n", " "), r.output
        assert not (tmp_path / "o").exists()


def test_interrupted_save_leaves_nothing(tmp_path, clean_dir):
    base, _ = load_base()

    class Boom:
        def save_pretrained(self, folder):
            (tmp_path / "x").mkdir(exist_ok=True)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        save_adapter(Boom(), tmp_path / "snow", {"name": "snow"})
    assert not (tmp_path / "snow").exists()
    assert not any(p.name.startswith(".snow") for p in tmp_path.iterdir())


@pytest.mark.parametrize(
    "args, message",
    [
        (["Snow", "--synthetic", "noise", "--clean", "{c}"], "lowercase"),
        (["snow"], "exactly one"),
        (["snow", "--synthetic", "noise"], "--clean"),
        (["snow", "--synthetic", "nope", "--clean", "{c}"], "no degradation plugin named 'nope'"),
        (["snow", "--synthetic", "noise", "--clean", "{c}", "--crop", "512"], "smaller than --crop"),
        (["snow", "--pairs", "{c}", "--over", "haze"], "--over needs --synthetic"),
        (["noise", "--synthetic", "noise", "--clean", "{c}", "--over", "haze,noise"], "not 'noise' itself"),
        (["noise", "--synthetic", "noise", "--clean", "{c}", "--over", "fog"], "no degradation plugin named 'fog'"),
        (["snow", "--pairs", "{c}", "--family"], "--family needs --synthetic"),
        (["snow", "--synthetic", "snow", "--clean", "{c}", "--family"], "no family for 'snow'"),
        (["snow", "--synthetic", "noise", "--clean", "{c}", "--shuffle-colours", "1.5"], "--shuffle-colours"),
        (["snow", "--synthetic", "noise", "--clean", "{c}", "--grey", "2"], "--grey"),
        (["snow", "--synthetic", "noise", "--clean", "{c}", "--clean-share", "-0.1"], "--clean-share"),
    ],
)
def test_cli_errors(clean_dir, tmp_path, args, message):
    r = runner.invoke(app, ["train", "adapter", *[a.format(c=clean_dir) for a in args], "--out", str(tmp_path / "o"),
                            "--steps", "1"])
    assert r.exit_code == 2, r.output
    assert message in r.output.replace("\n", " ")
    assert not (tmp_path / "o").exists()


def test_restore_with_adapter(clean_dir, tmp_path):
    out = tmp_path / "noise_ad"
    r = runner.invoke(app, ["train", "adapter", "noisy", "--synthetic", "noise", "--clean", str(clean_dir),
                            "--out", str(out), "--steps", "3", "--batch-size", "2", "--crop", "32", "--lr", "1e-2"])
    assert r.exit_code == 0, r.output
    src = clean_dir / "astronaut.png"

    def restored(*extra):
        dest = tmp_path / f"r{len(list(tmp_path.glob('r*.png')))}.png"
        res = runner.invoke(app, ["restore", str(src), "-o", str(dest), *extra])
        assert res.exit_code == 0, res.output
        return np.asarray(Image.open(dest))

    base = restored()
    assert np.array_equal(restored("--adapter", f"{out}=0"), base)  # weight 0 is the base
    assert not np.array_equal(restored("--adapter", str(out)), base)
    # An adapter trained for another base is refused, naming the base it needs.
    manifest = json.loads((out / "air_manifest.json").read_text())
    tensors = load_file(str(out / "adapter_model.safetensors"))
    manifest["base_fingerprint"] = "sha256:0000000000000000"
    save_file(tensors, str(out / "adapter_model.safetensors"), metadata={"format": "pt", "air_manifest": json.dumps(manifest)})
    res = runner.invoke(app, ["restore", str(src), "-o", str(tmp_path / "x.png"), "--adapter", str(out)])
    assert res.exit_code == 2 and "sha256:0000000000000000" in res.output and "retrain" in res.output
    res = runner.invoke(app, ["restore", str(src), "-o", str(tmp_path / "x.png"), "--adapter", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "nope" in res.output
    res = runner.invoke(app, ["restore", str(src), "-o", str(tmp_path / "x.png"), "--adapter", f"{out}=lots"])
    assert res.exit_code == 2 and "must be a number" in res.output


def test_shuffled_colours_reorder_both_crops_of_a_pair_alike():
    """--shuffle-colours: the adapter sees each photo in any of the six channel orders, so no colour prior of the
    training photos survives (their green shadows painted LOL's shadows green; NOTES.md)."""
    # A colourful photo: every channel at its own level, the degraded crop a fixed function of the clean one.
    clean = torch.stack([torch.full((40, 40), v) for v in (0.1, 0.5, 0.9)]) + 0.05 * torch.rand(3, 40, 40)
    crops = paired_sampler([clean ** 2], [clean])
    assert shuffle_colours(crops, 0.0) is crops
    x, y = shuffle_colours(crops, 1.0)(600, 16, torch.Generator().manual_seed(0))
    torch.testing.assert_close(x, y ** 2)  # the pair reordered alike
    orders = {tuple(int(i) for i in torch.argsort(c.mean((1, 2)))) for c in y}
    assert len(orders) == 6  # every order of the three levels
    means = y.mean((0, 2, 3))
    assert float(means.max() - means.min()) < 0.05  # no channel stands out any more (0.8 apart unshuffled)
    x, y = shuffle_colours(crops, 0.25)(400, 16, torch.Generator().manual_seed(1))
    kept = (y.mean((2, 3)).argsort(1) == torch.tensor([0, 1, 2])).all(1).float().mean()
    assert 0.7 < float(kept) < 0.85  # 75% kept, plus a sixth of the shuffled drawing the same order
    with pytest.raises(ValueError):
        shuffle_colours(crops, -0.1)


def test_grey_crops_turn_both_crops_of_a_pair_grey():
    """--grey: a share of the pairs read as a black-and-white photo, the degraded and the clean crop alike."""
    clean = torch.stack([torch.full((40, 40), v) for v in (0.1, 0.5, 0.9)]) + 0.05 * torch.rand(3, 40, 40)
    crops = paired_sampler([clean ** 2], [clean])
    assert grey_crops(crops, 0.0) is crops
    x, y = grey_crops(crops, 1.0)(50, 16, torch.Generator().manual_seed(0))
    luma = lambda t: (t * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)  # noqa: E731
    x0, y0 = crops(50, 16, torch.Generator().manual_seed(0))  # the same crops, not turned grey
    torch.testing.assert_close(y, luma(y0).expand_as(y0))
    torch.testing.assert_close(x, luma(x0).expand_as(x0))
    x, y = grey_crops(crops, 0.25)(400, 16, torch.Generator().manual_seed(1))
    is_grey = (y.std(1) < 1e-6).flatten(1).all(1)
    assert 0.18 < float(is_grey.float().mean()) < 0.32
    assert torch.equal(is_grey, (x.std(1) < 1e-6).flatten(1).all(1))  # both crops of a pair alike
    with pytest.raises(ValueError):
        grey_crops(crops, 1.5)


def test_clean_share_gives_a_share_of_the_crops_undegraded():
    """--clean-share: clean crops with themselves as the target, from a synthesizer and from pairs alike."""
    photo = torch.rand(3, 40, 40)
    noisy = lambda x, g, s: (x + 0.2 * torch.randn(x.shape, generator=g)).clamp(0, 1)  # noqa: E731
    for sampler in (synthetic_sampler([photo], noisy, keep_clean=0.3),
                    with_clean(paired_sampler([noisy(photo, torch.Generator().manual_seed(5), 1)], [photo]), 0.3)):
        x, y = sampler(400, 16, torch.Generator().manual_seed(0))
        same = (x == y).flatten(1).all(1).float().mean()
        assert 0.23 < float(same) < 0.37
    x, y = synthetic_sampler([photo], noisy)(100, 16, torch.Generator().manual_seed(0))
    assert not (x == y).flatten(1).all(1).any()
    with pytest.raises(ValueError):
        synthetic_sampler([photo], noisy, keep_clean=-0.5)


def test_cli_records_the_colour_grey_and_clean_shares_in_the_manifest(clean_dir, tmp_path):
    out = tmp_path / "ll"
    r = runner.invoke(app, ["train", "adapter", "lowlight", "--synthetic", "lowlight", "--clean", str(clean_dir),
                            "--out", str(out), "--steps", "2", "--batch-size", "2", "--crop", "32",
                            "--shuffle-colours", "1", "--grey", "0.5", "--clean-share", "0.1"])
    assert r.exit_code == 0, r.output
    data = json.loads((out / "air_manifest.json").read_text())["training"]["data"]
    assert (data["colour_shuffle"], data["grey"], data["clean_share"]) == (1.0, 0.5, 0.1)
