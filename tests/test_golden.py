"""`air restore`'s outputs, pinned: the shipped examples (96² centre crops) through the real command with
each flag that changes the computation, compared with reference outputs committed in ``tests/golden/``.

Any change to the code path or the bundled weights that moves an output by more than one 8-bit level fails
here. When a change is meant to move them (new weights, a better gate), regenerate the references and say
why in the commit:

    python tests/test_golden.py --update
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from air_restore.cli.main import app

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


def crop(example: str, dest: Path) -> Path:
    """The centre ``CROP``² of a shipped example, saved as PNG."""
    im = Image.open(REPO / "examples" / example).convert("RGB")
    x0, y0 = (im.width - CROP) // 2, (im.height - CROP) // 2
    im.crop((x0, y0, x0 + CROP, y0 + CROP)).save(dest)
    return dest


def restore(example: str, args: list[str], workdir: Path) -> np.ndarray:
    """The 8-bit RGB output of `air restore` (in this process, the real command) on a crop of ``example``."""
    src, out = crop(example, workdir / f"in_{example}"), workdir / f"out_{len(list(workdir.iterdir()))}.png"
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


def update() -> None:
    """Regenerate every reference (one torch thread, as the test suite runs)."""
    import tempfile

    import torch

    torch.set_num_threads(1)
    GOLDEN.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        for name, example, args in CASES:
            Image.fromarray(restore(example, args, Path(d))).save(GOLDEN / f"{name}.png", optimize=True)
            print(GOLDEN / f"{name}.png")


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        raise SystemExit(__doc__)
    update()
