"""`air restore`'s outputs, pinned: the shipped examples (96² centre crops) through the real command with
each flag that changes the computation, compared with reference outputs committed in ``tests/golden/``;
and 5 CBSD68 photos, each degraded by another built-in plugin, with every such flag.

CBSD68 is licensed for research only, so its outputs are not committed: ``tests/golden/cbsd68.json`` holds,
per case, the mean and spread of the degraded input and the 8×8 block means and root mean squares of what
`air restore` changed (output − input, in 8-bit levels). Those cases need ``../shared/data/eval/CBSD68`` (or
``$AIR_DATA/eval/CBSD68``) and skip without it.

Any change to the code path or the bundled weights that moves an output by more than one 8-bit level fails
here. When a change is meant to move them (new weights, a better gate), regenerate the references and say
why in the commit:

    python tests/test_golden.py --update
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from air_restore.cli.main import app
from air_restore.core.metrics import quantize8
from air_restore.registry.discovery import get_degradation

REPO = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).resolve().parent / "golden"
CROP = 96
#: (reference name, shipped example, extra `air restore` arguments). fp32 everywhere: `--precision auto`
#: picks bf16 on CPUs that have it, which moves outputs by design.
CASES = [
    ("noisy_astronaut", "noisy_astronaut.png", []),
    ("rainy_coffee", "rainy_coffee.png", []),
    ("hazy_chelsea", "hazy_chelsea.png", []),
    ("dark_rocket", "dark_rocket.png", []),
    ("rainy_coffee_no_adapters", "rainy_coffee.png", ["--no-adapters"]),
    ("rainy_coffee_adapters", "rainy_coffee.png", ["--adapters", "rain=1,noise=0.5"]),
    ("rainy_coffee_tiles", "rainy_coffee.png", ["--tile", "64", "--overlap", "16"]),
    ("noisy_astronaut_strength", "noisy_astronaut.png", ["--strength", "0.5"]),
    ("rainy_coffee_no_gate", "rainy_coffee.png", ["--no-gate"]),
    ("noisy_astronaut_tta", "noisy_astronaut.png", ["--tta"]),
]


#: The first 5 CBSD68 photos by name, each degraded by one plugin at severity 0.5 (seeded), through each flag.
CBSD68 = Path(os.environ.get("AIR_DATA", REPO.parent / "shared" / "data")) / "eval" / "CBSD68"
CBSD_PHOTOS = ["noise", "rain", "haze", "lowlight", "blur"]
CBSD_FLAGS = {"default": [], "no_adapters": ["--no-adapters"], "adapters": ["--adapters", "rain=1,noise=0.5"],
              "tta": ["--tta"], "tiles": ["--tile", "64", "--overlap", "16"]}
CBSD_CASES = [(i, plugin, flag) for i, plugin in enumerate(CBSD_PHOTOS) for flag in CBSD_FLAGS]
BLOCK = 8
needs_cbsd68 = pytest.mark.skipif(not CBSD68.is_dir(), reason=f"needs the shared evaluation data ({CBSD68})")


def crop(example: str, dest: Path) -> Path:
    """The centre ``CROP``² of a shipped example, saved as PNG."""
    im = Image.open(REPO / "examples" / example).convert("RGB")
    x0, y0 = (im.width - CROP) // 2, (im.height - CROP) // 2
    im.crop((x0, y0, x0 + CROP, y0 + CROP)).save(dest)
    return dest


def degraded_cbsd68(index: int, plugin: str, dest: Path) -> Path:
    """The centre ``CROP``² of the ``index``-th CBSD68 photo by name, degraded by ``plugin`` at severity 0.5."""
    path = sorted(CBSD68.glob("*.png"))[index]
    im = Image.open(path).convert("RGB")
    x0, y0 = (im.width - CROP) // 2, (im.height - CROP) // 2
    x = torch.from_numpy(np.array(im.crop((x0, y0, x0 + CROP, y0 + CROP)))).permute(2, 0, 1).float() / 255
    y = get_degradation(plugin).synthesize(x[None], torch.Generator().manual_seed(index), 0.5).clamp(0, 1)
    Image.fromarray(quantize8(y[0]).mul(255).round().byte().permute(1, 2, 0).numpy()).save(dest)
    return dest


def change(src: Path, out: np.ndarray) -> np.ndarray:
    """What `air restore` changed, per ``BLOCK``×``BLOCK`` block and channel: the mean of output − input and
    its root mean square (what a denoiser removes averages out of the mean), in 8-bit levels."""
    d = out.astype(np.float64) - np.asarray(Image.open(src).convert("RGB"), dtype=np.float64)
    d = d.reshape(CROP // BLOCK, BLOCK, CROP // BLOCK, BLOCK, 3)
    return np.stack([d.mean(axis=(1, 3)), np.sqrt((d ** 2).mean(axis=(1, 3)))])


def fingerprint(path: Path) -> np.ndarray:
    """The mean and standard deviation of each channel, in 8-bit levels: which degraded photo this is, with
    room for a rounding flip of the synthesizer on another CPU (a hash would have none)."""
    a = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
    return np.concatenate([a.mean(axis=(0, 1)), a.std(axis=(0, 1))])


def restore(example: str | Path, args: list[str], workdir: Path) -> np.ndarray:
    """The 8-bit RGB output of `air restore` (in this process, the real command) on a crop of ``example``
    (a shipped example's name), or on the image file ``example`` as it is."""
    src = example if isinstance(example, Path) else crop(example, workdir / f"in_{example}")
    out = workdir / f"out_{len(list(workdir.iterdir()))}.png"
    r = CliRunner().invoke(app, ["restore", str(src), "-o", str(out), "--precision", "fp32", "--device", "cpu",
                                 *args], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return np.asarray(Image.open(out).convert("RGB"))


@pytest.mark.parametrize("name,example,args", CASES, ids=[c[0] for c in CASES])
def test_air_restore_output_is_pinned(name, example, args, tmp_path):
    got = restore(example, args, tmp_path)
    ref = np.asarray(Image.open(GOLDEN / f"{name}.png").convert("RGB"))
    diff = np.abs(got.astype(int) - ref.astype(int))
    moved = float((diff > 0).mean())
    # Float sums in another order (thread count, CPU vector width) may flip a rounding: one level, rarely.
    assert diff.max() <= 1 and moved < 0.01, (
        f"`air restore {' '.join(args)}` on {example}: output moved from tests/golden/{name}.png by up to "
        f"{diff.max()} levels on {moved:.1%} of the values. If that is meant (new weights or a new gate), "
        "regenerate with `python tests/test_golden.py --update` and say why in the commit.")


@needs_cbsd68
@pytest.mark.parametrize("index,plugin,flag", CBSD_CASES, ids=[f"{p}-{f}" for _, p, f in CBSD_CASES])
def test_air_restore_output_on_cbsd68_is_pinned(index, plugin, flag, tmp_path):
    ref = json.loads((GOLDEN / "cbsd68.json").read_text())[f"{plugin}-{flag}"]
    src = degraded_cbsd68(index, plugin, tmp_path / "in.png")
    assert np.abs(fingerprint(src) - np.asarray(ref["input"])).max() <= 0.05, (
        f"the {plugin}-degraded CBSD68 photo is not the one pinned: the data or the {plugin} synthesizer "
        "changed; if meant, regenerate with `python tests/test_golden.py --update`")
    got = change(src, restore(src, CBSD_FLAGS[flag], tmp_path))
    diff = np.abs(got - np.asarray(ref["change"]))
    # One-level rounding flips on under 1% of the values move a block's mean by a small fraction of a level.
    assert diff.max() <= 0.5 and diff.mean() <= 0.05, (
        f"`air restore {' '.join(CBSD_FLAGS[flag])}` on {plugin}-degraded CBSD68 photo {index}: what it "
        f"changed moved by up to {diff.max():.2f} levels (a block mean or RMS; on average {diff.mean():.3f}) from "
        "tests/golden/cbsd68.json. If that is meant, regenerate with `python tests/test_golden.py --update` "
        "and say why in the commit.")


def update() -> None:
    """Regenerate every reference (one torch thread, as the test suite runs)."""
    import tempfile

    torch.set_num_threads(1)
    GOLDEN.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        for name, example, args in CASES:
            Image.fromarray(restore(example, args, Path(d))).save(GOLDEN / f"{name}.png", optimize=True)
            print(GOLDEN / f"{name}.png")
        if not CBSD68.is_dir():
            print(f"{CBSD68} is missing: tests/golden/cbsd68.json left as it is")
            return
        pinned = {}
        for index, plugin, flag in CBSD_CASES:
            work = Path(d) / f"{plugin}-{flag}"
            work.mkdir()
            src = degraded_cbsd68(index, plugin, work / "in.png")
            pinned[f"{plugin}-{flag}"] = {"input": np.round(fingerprint(src), 3).tolist(), "change": np.round(
                change(src, restore(src, CBSD_FLAGS[flag], work)), 2).tolist()}
        (GOLDEN / "cbsd68.json").write_text(json.dumps(pinned, indent=None) + "\n")
        print(GOLDEN / "cbsd68.json")


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        raise SystemExit(__doc__)
    update()
