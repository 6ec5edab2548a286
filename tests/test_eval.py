"""`air eval` on real image files: paired folders and synthetic degradations."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from air_restore.cli.evaluate import parse_degrade, psnr_ssim
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
