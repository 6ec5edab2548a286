"""`air eval` on real image files: paired folders and synthetic degradations."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from air_restore.core.evaluation import parse_degrade
from air_restore.core.metrics import psnr_ssim
from air_restore.cli.main import app

runner = CliRunner()


def _photos(n=2, size=(96, 80)):
    from skimage import data

    return [np.asarray(Image.fromarray(getattr(data, k)()).resize(size)) for k in ("astronaut", "coffee", "chelsea")[:n]]


@pytest.fixture()
def pairs(tmp_path):
    d = tmp_path / "pairs"
    (d / "clean").mkdir(parents=True)
    (d / "degraded").mkdir()
    rng = np.random.default_rng(0)
    for i, p in enumerate(_photos()):
        Image.fromarray(p).save(d / "clean" / f"{i}.png")
        noisy = np.clip(p + rng.normal(0, 25, p.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(d / "degraded" / f"{i}.png")
    return d


def test_psnr_ssim_known_values():
    x = torch.rand(3, 32, 32)
    p, s = psnr_ssim(x, (x * 255).round() / 255)
    assert p > 100 and s == pytest.approx(1.0, abs=1e-6)
    y = (x + 0.1).clamp(0, 1)
    p2, _ = psnr_ssim(y, x)
    mse = (((y * 255).round() / 255 - x) ** 2).mean().item()
    assert p2 == pytest.approx(-10 * np.log10(mse), abs=1e-3)


def test_eval_pairs_writes_csv_and_improves_noise(pairs, tmp_path):
    out = tmp_path / "r.csv"
    r = runner.invoke(app, ["eval", "--pairs", str(pairs), "--csv", str(out), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(open(out)))
    assert [row["image"] for row in rows] == ["0.png", "1.png"]
    for row in rows:
        assert float(row["restored_psnr"]) > float(row["input_psnr"])  # σ=25 noise is removed
    assert "restored" in r.output and "gain" in r.output


def test_eval_synthetic(tmp_path):
    d = tmp_path / "clean"
    d.mkdir()
    for i, p in enumerate(_photos(1)):
        Image.fromarray(p).save(d / f"{i}.png")
    r = runner.invoke(app, ["eval", "--clean", str(d), "--degrade", "noise:0.5", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "severity 0.5" in r.output.replace("\n", " ") and "restored" in r.output


@pytest.mark.parametrize(
    "setup, args, message",
    [
        ("no-clean-dir", ["--pairs", "{d}"], "clean/"),
        ("unmatched", ["--pairs", "{d}"], "no clean image"),
        ("sizes", ["--pairs", "{d}"], "sizes differ"),
        ("empty", ["--pairs", "{d}"], "no images"),
        ("ok", [], "exactly one"),
        ("ok", ["--pairs", "{d}", "--clean", "{d}"], "exactly one"),
        ("ok", ["--clean", "{d}"], "--degrade"),
        ("ok", ["--clean", "{d}/clean", "--degrade", "snowstorm"], "no degradation plugin named 'snowstorm'"),
        ("ok", ["--clean", "{d}/clean", "--degrade", "noise:lots"], "severity must be a number"),
    ],
)
def test_eval_errors_are_clear(tmp_path, pairs, setup, args, message):
    d = pairs
    if setup == "no-clean-dir":
        for f in (d / "clean").iterdir():
            f.unlink()
        (d / "clean").rmdir()
    elif setup == "unmatched":
        (d / "clean" / "1.png").rename(d / "clean" / "other.png")
    elif setup == "sizes":
        Image.fromarray(_photos(1, size=(64, 64))[0]).save(d / "clean" / "0.png")
    elif setup == "empty":
        for f in (d / "degraded").iterdir():
            f.unlink()
    r = runner.invoke(app, ["eval", *[a.format(d=d) for a in args], "--device", "cpu"])
    assert r.exit_code == 2, r.output
    assert message in r.output.replace("\n", " "), r.output


def test_parse_degrade():
    assert parse_degrade("haze") == ("haze", 0.5)
    assert parse_degrade("rain:0.25") == ("rain", 0.25)
    with pytest.raises(ValueError):
        parse_degrade("rain:2")


# --- NIQE (no reference) -------------------------------------------------------------------------------

def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a.astype(np.float32) / 255).permute(2, 0, 1).contiguous()


@pytest.mark.parametrize("name, reference", [
    # BasicSR 1.4.2's calculate_niqe run in float64 (benchmarks/niqe_check.py; results/niqe_check.json)
    ("astronaut", 3.100451533184568),
    ("coffee", 4.115331588269311),
    ("chelsea", 2.6255266796680012),
    ("rocket", 6.970949396701565),
])
def test_niqe_matches_basicsr_reference(name, reference):
    from skimage import data

    from air_restore.core.niqe import niqe

    assert niqe(_tensor(getattr(data, name)())) == pytest.approx(reference, abs=1e-4)


def test_niqe_clean_photo_scores_better_than_noisy_or_blurred():
    from skimage import data

    from air_restore.core.niqe import niqe
    from air_restore.core.degradations import gaussian_kernel, conv_per_image

    clean = _tensor(data.astronaut())
    noisy = (clean + torch.randn(clean.shape, generator=torch.Generator().manual_seed(0)) * 40 / 255).clamp(0, 1)
    blurred = conv_per_image(clean[None], gaussian_kernel(torch.tensor([3.0]), 21))[0]
    n_clean, n_noisy, n_blur = niqe(clean), niqe(noisy), niqe(blurred)
    assert n_clean < 4 < n_noisy and n_clean + 2 < n_blur, (n_clean, n_noisy, n_blur)


def test_niqe_pieces_follow_the_reference_algorithm():
    from air_restore.core import niqe as N

    m = N.pristine_model()
    assert m.mu.shape == (36,) and m.cov.shape == (36, 36) and m.window.sum() == pytest.approx(1)
    # MATLAB imresize(·, 0.5) of a constant is the constant; rows of the resize matrix sum to 1.
    r = N._matlab_resize_matrix(96, 0.5)
    assert r.shape == (48, 96) and np.allclose(r.sum(1), 1)
    # The AGGD fit recovers a Gaussian's shape (α = 2) and scale (β = σ·√2 for exp(−(|x|/β)^α)) from samples,
    # and a Laplacian's shape (α = 1).
    x = np.random.default_rng(0).normal(0, 0.7, (1, 200_000))
    alpha, bl, br = N.aggd_fit(x)
    assert alpha[0] == pytest.approx(2, abs=0.05)
    assert bl[0] == pytest.approx(0.7 * 2**0.5, abs=0.01) and br[0] == pytest.approx(0.7 * 2**0.5, abs=0.01)
    assert N.aggd_fit(np.random.default_rng(0).laplace(0, 1, (1, 200_000)))[0][0] == pytest.approx(1, abs=0.05)
    # 2 scales × 18 features per 96-px patch.
    feats = N.patch_features(np.random.default_rng(1).normal(size=(192, 96)), 96)
    assert feats.shape == (2, 18)
    with pytest.raises(ValueError, match="two 96×96 patches"):
        N.niqe(torch.rand(3, 100, 100))


def test_eval_no_reference_writes_niqe_csv(tmp_path):
    d = tmp_path / "real"
    d.mkdir()
    for i, p in enumerate(_photos(2, size=(224, 200))):
        Image.fromarray(p).save(d / f"{i}.png")
    Image.fromarray(_photos(1, size=(64, 64))[0]).save(d / "tiny.png")
    out = tmp_path / "n.csv"
    r = runner.invoke(app, ["eval", "--no-reference", str(d), "--csv", str(out), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(open(out)))
    assert [row["image"] for row in rows] == ["0.png", "1.png"]  # tiny.png is too small for NIQE
    for row in rows:
        assert 0 < float(row["input_niqe"]) < 30 and 0 < float(row["restored_niqe"]) < 30
    text = r.output.replace("\n", " ")
    assert "skipped tiny.png" in text and "NIQE" in text and "restored lower" in text


def test_eval_no_reference_needs_exactly_one_source(tmp_path, pairs):
    r = runner.invoke(app, ["eval", "--no-reference", str(pairs / "clean"), "--pairs", str(pairs), "--device", "cpu"])
    assert r.exit_code == 2 and "exactly one" in r.output.replace("\n", " ")
