"""End-to-end tests of `air restore` and friends, on real image files and the shipped weights."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from air_restore.cli.main import app
from air_restore.registry.store import BUNDLED_ORDER

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
runner = CliRunner()


def _photo(path: Path, size=(96, 72), mode="RGB", **save) -> Path:
    """A small real photo (scikit-image's astronaut) saved in the given mode and format."""
    from skimage import data

    im = Image.fromarray(data.astronaut()).resize(size, Image.BICUBIC)
    if mode != "RGB":
        im = im.convert(mode)
    im.save(path, **save)
    return path


def _air(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255**2 / max(mse, 1e-10))


def test_help_teaches():
    r = _air("restore", "--help")
    assert r.exit_code == 0
    for word in ("--explain", "--overwrite", "--tile", "--device", "Examples"):
        assert word in r.output
    r = runner.invoke(app, [])
    assert "restore" in r.output and "train" in r.output


def test_no_help_page_shows_a_value_for_an_on_off_option():
    """Every command's --help, groups included: flags (and --help itself) show no `<bool>` type, which
    reads as if they took a value."""
    import typer

    def walk(cmd, path):
        yield path
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, [*path, name])

    pages = list(walk(typer.main.get_command(app), []))
    assert len(pages) > 15
    for path in pages:
        r = runner.invoke(app, [*path, "--help"], terminal_width=200)
        assert r.exit_code == 0, (path, r.output)
        assert "--help" in r.output and "<bool>" not in r.output, (path, r.output)


def test_a_clean_photo_comes_back_as_it_went_in_and_explain_says_why(tmp_path):
    from skimage import data

    src = tmp_path / "cat.png"
    Image.fromarray(np.ascontiguousarray(data.chelsea()[:256, :320])).save(src)
    out = tmp_path / "out.png"
    r = _air("restore", str(src), "-o", str(out), "--explain")
    assert r.exit_code == 0, r.output
    assert "looks clean as a whole, so the gate kept 100% of the input" in r.output.replace("\n", " ")
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(src)))
    r = _air("restore", str(src), "-o", str(tmp_path / "raw.png"), "--no-gate", "--explain")
    assert r.exit_code == 0 and "looks clean" not in r.output
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "raw.png")), np.asarray(Image.open(src)))


def test_explain_says_why_a_night_sky_stays_dark(tmp_path):
    """A well-exposed photo under a noisy black band: the band comes back as it went in, and --explain says
    that the estimator found the photo exposed as meant (core.routing.KeepDark)."""
    import torch
    from skimage import data

    a = np.ascontiguousarray(data.astronaut())
    g = torch.Generator().manual_seed(0)
    a[:192] = (255 * (0.02 + 0.01 * torch.randn((192, 512, 3), generator=g))).round().clamp(0, 255).byte().numpy()
    src = tmp_path / "night.png"
    Image.fromarray(a).save(src)
    r = _air("restore", str(src), "-o", str(tmp_path / "out.png"), "--explain")
    assert r.exit_code == 0, r.output
    assert "finds it exposed as meant" in r.output and "a night sky stays dark" in r.output.replace("\n", " ")
    out = np.asarray(Image.open(tmp_path / "out.png")).astype(int)
    assert np.abs(out[:176] - a[:176].astype(int)).mean() < 1.5  # in 8-bit levels


def test_explain_says_why_a_bright_defocused_band_is_not_dehazed(tmp_path):
    """A photo under a bright, defocused band the head reads as haze: neither the estimator nor a veil shows haze, the
    band comes back as it went in, and --explain says why (core.routing.KeepHaze)."""
    import torch
    import torch.nn.functional as F
    from skimage import data

    a = torch.from_numpy(np.ascontiguousarray(data.astronaut())).permute(2, 0, 1).float() / 255
    a[:, :170] = 0.6 + 0.35 * F.avg_pool2d(a[None, :, :170], 31, 1, 15, count_include_pad=False)[0]
    src = tmp_path / "bright.png"
    Image.fromarray((255 * a).round().byte().permute(1, 2, 0).numpy()).save(src)
    r = _air("restore", str(src), "-o", str(tmp_path / "out.png"), "--explain")
    assert r.exit_code == 0, r.output
    text = r.output.replace("\n", " ")
    assert "neither the estimator (haze 0.0" in text and "of what looks hazy as it came" in text
    out = np.asarray(Image.open(tmp_path / "out.png")).astype(int)
    assert np.abs(out[:170] - np.asarray(Image.open(src))[:170].astype(int)).mean() < 2.5  # in 8-bit levels


def test_restore_example_improves_it(tmp_path):
    """The shipped noisy example gets closer to the clean photo it was made from."""
    from skimage import data

    out = tmp_path / "out.png"
    r = _air("restore", str(EXAMPLES / "noisy_astronaut.png"), "-o", str(out))
    assert r.exit_code == 0, r.output
    clean = data.astronaut()
    noisy = np.asarray(Image.open(EXAMPLES / "noisy_astronaut.png"))
    restored = np.asarray(Image.open(out))
    assert restored.shape == clean.shape
    assert _psnr(restored, clean) > _psnr(noisy, clean) + 5


def test_default_output_beside_input_and_no_overwrite(tmp_path):
    src = _photo(tmp_path / "a.jpg")
    before = src.read_bytes()
    assert _air("restore", str(src)).exit_code == 0
    dest = tmp_path / "a_restored.jpg"
    assert dest.exists() and Image.open(dest).format == "JPEG"
    first = dest.read_bytes()
    r = _air("restore", str(src))
    assert r.exit_code == 1 and "--overwrite" in r.output
    assert dest.read_bytes() == first and src.read_bytes() == before
    assert _air("restore", str(src), "--overwrite").exit_code == 0


def test_refuses_to_write_over_input(tmp_path):
    src = _photo(tmp_path / "a.png")
    before = src.read_bytes()
    r = _air("restore", str(src), "-o", str(src))
    assert r.exit_code == 1 and "--overwrite" in r.output
    assert src.read_bytes() == before


@pytest.mark.parametrize(
    "name,mode,check",
    [
        ("gray.png", "L", lambda im: im.mode == "L"),
        ("rgba.png", "RGBA", lambda im: im.mode == "RGBA"),
        ("pal.png", "P", lambda im: im.mode in ("RGB", "P")),
        ("cmyk.jpg", "CMYK", lambda im: im.format == "JPEG"),
        ("photo.webp", "RGB", lambda im: im.format == "WEBP"),
        ("photo.bmp", "RGB", lambda im: im.format == "BMP"),
        ("photo.tif", "RGB", lambda im: im.format == "TIFF"),
    ],
)
def test_formats_and_modes_round_trip(tmp_path, name, mode, check):
    src = _photo(tmp_path / name, mode=mode)
    out = tmp_path / "out" / name
    r = _air("restore", str(src), "-o", str(out))
    assert r.exit_code == 0, r.output
    im = Image.open(out)
    assert im.size == Image.open(src).size
    assert check(im), (im.mode, im.format)


def test_rgba_alpha_untouched(tmp_path):
    src = tmp_path / "rgba.png"
    rgb = np.asarray(Image.open(_photo(tmp_path / "x.png")))
    alpha = np.tile(np.linspace(0, 255, rgb.shape[1]).astype(np.uint8), (rgb.shape[0], 1))
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(src)
    out = tmp_path / "o.png"
    assert _air("restore", str(src), "-o", str(out)).exit_code == 0
    assert np.array_equal(np.asarray(Image.open(out))[..., 3], alpha)


def test_16bit_stays_16bit(tmp_path):
    src = tmp_path / "g16.png"
    g = (np.asarray(Image.open(_photo(tmp_path / "x.png")).convert("L")).astype(np.uint16) * 257)
    Image.fromarray(g).save(src)
    out = tmp_path / "o.png"
    assert _air("restore", str(src), "-o", str(out)).exit_code == 0
    res = np.asarray(Image.open(out))
    assert res.dtype == np.uint16 or Image.open(out).mode.startswith("I")
    assert res.max() > 255  # real 16-bit values, not 8-bit ones stored in 16 bits


def test_batch_keeps_going_and_reports_failures(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    _photo(src / "good1.png")
    _photo(src / "good2.jpg")
    (src / "empty.png").write_bytes(b"")
    (src / "text.png").write_text("not an image")
    good = (src / "trunc.png")
    _photo(good)
    good.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    out = tmp_path / "out"
    r = _air("restore", str(src), "-o", str(out))
    assert r.exit_code == 1
    assert "2 restored, 3 failed" in r.output
    for bad in ("empty.png", "text.png", "trunc.png"):
        assert any(bad in line and "error" in line for line in r.output.splitlines()), r.output
    assert sorted(p.name for p in out.iterdir()) == ["good1.png", "good2.jpg"]


def test_missing_input_and_bad_options(tmp_path):
    r = _air("restore", str(tmp_path / "nope.png"))
    assert r.exit_code == 2 and "nope.png" in r.output
    src = _photo(tmp_path / "a.png")
    assert _air("restore", str(src), "--tile", "100").exit_code == 2
    assert _air("restore", str(src), "--tile", "64", "--overlap", "64").exit_code == 2
    assert _air("restore", str(src), "--device", "tpu").exit_code == 2


def test_missing_or_corrupt_weights(tmp_path):
    src = _photo(tmp_path / "a.png")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 100)
    for weights in (tmp_path / "missing.safetensors", bad):
        r = _air("restore", str(src), "--weights", str(weights))
        assert r.exit_code == 2 and weights.name in r.output
    assert not (tmp_path / "a_restored.png").exists()


def test_huge_image_refused_clearly(tmp_path):
    src = _photo(tmp_path / "a.png")
    r = _air("restore", str(src), "--max-pixels", "1000")
    text = " ".join(r.output.split())
    assert r.exit_code == 1 and "too large" in text and "GB of memory" in text and "--max-pixels" in text


def test_explain_writes_map_and_shares(tmp_path):
    out = tmp_path / "r.png"
    r = _air("restore", str(EXAMPLES / "rainy_coffee.png"), "-o", str(out), "--explain")
    assert r.exit_code == 0, r.output
    m = Image.open(tmp_path / "r_map.png")
    src = Image.open(EXAMPLES / "rainy_coffee.png")
    assert m.width == src.width and m.height > src.height  # overlay plus legend
    shares = {}
    for line in r.output.splitlines():
        parts = [p.strip() for p in line.replace("│", "|").split("|")]
        if len(parts) == 2 and parts[1].endswith("%"):
            shares[parts[0]] = float(parts[1][:-1])
    assert set(shares) == {"clean", "noise", "blur", "haze", "rain", "lowlight"}
    assert abs(sum(shares.values()) - 100) < 0.5
    assert max(shares, key=shares.get) == "rain"  # the example is a rainy photo


def test_explain_says_when_the_noise_weight_makes_way_for_haze(tmp_path):
    """core.routing.Yield, as --explain reports it on the shipped hazy example."""
    r = _air("restore", str(EXAMPLES / "hazy_chelsea.png"), "-o", str(tmp_path / "h.png"), "--explain")
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "the noise weight was multiplied by" in text and "1 − the haze weight" in text
    assert "restored twice: a scene-wide correction (haze or low light) led the first pass" in text  # Sequel


def test_explain_says_when_the_brightness_was_refitted_on_a_dark_photo(tmp_path):
    """core.tone.ToneGuard, as --explain reports it on the shipped dark example; not on the hazy one."""
    r = _air("restore", str(EXAMPLES / "dark_rocket.png"), "-o", str(tmp_path / "d.png"), "--explain")
    assert r.exit_code == 0, r.output
    assert "low light led, so the large-scale brightness was refitted to the input's" in " ".join(r.output.split())
    r = _air("restore", str(EXAMPLES / "hazy_chelsea.png"), "-o", str(tmp_path / "h.png"), "--explain")
    assert r.exit_code == 0 and "refitted" not in r.output

def test_tiled_restore_has_no_seams(tmp_path):
    """Small tiles and whole-image inference give the same picture."""
    src = _photo(tmp_path / "a.png", size=(300, 260))
    whole, tiled = tmp_path / "w.png", tmp_path / "t.png"
    assert _air("restore", str(src), "-o", str(whole), "--tile", "512").exit_code == 0
    assert _air("restore", str(src), "-o", str(tiled), "--tile", "192", "--overlap", "96").exit_code == 0
    assert _psnr(np.asarray(Image.open(whole)), np.asarray(Image.open(tiled))) > 40


def test_list_and_version_show_builtins():
    r = runner.invoke(app, ["list"])
    assert r.exit_code == 0
    for name in ("noise", "blur", "haze", "rain", "lowlight"):
        assert name in r.output
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and "air-restore" in r.output and "[noise]" in r.output


def _nested_venv(env_dir: Path) -> Path:
    """A fresh venv that sees the packages of the interpreter running the tests (torch, and air-restore as
    installed there) as a venv made with ``system_site_packages`` sees the system's; returns its python.
    ``system_site_packages`` itself would give the *base* interpreter's packages, which lack torch when the
    tests run in a virtual environment (README's command on a fresh machine, issue #13); here a .pth file
    runs ``site.addsitedir`` on this interpreter's site directories, after the venv's own."""
    import site
    import sysconfig

    venv.create(env_dir, system_site_packages=False, with_pip=True)
    py = env_dir / "bin" / "python"
    inner = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                           check=True, capture_output=True, text=True).stdout.strip()
    outer = [d for d in dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"],
                                       *site.getsitepackages()]) if Path(d).is_dir()]
    (Path(inner) / "_outer_site.pth").write_text(f"import site; list(map(site.addsitedir, {outer!r}))\n")
    return py


@pytest.mark.slow
def test_pip_install_in_fresh_venv_gives_working_air(tmp_path):
    """A non-editable install (wheel built from the source tree) carries the weights and `air restore` works.

    The venv sees the test environment's packages (torch etc.) but gets its own copy of air-restore
    (:func:`_nested_venv`).
    """
    if shutil.which("git") is None:
        pytest.skip("git is needed to copy the tracked source tree")
    src = tmp_path / "src"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    for f in files:
        if (REPO / f).is_file():
            (src / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, src / f)
    env_dir = tmp_path / "venv"
    py = _nested_venv(env_dir)
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    # Build the wheel as `pip install .` does (isolated build), then install it into the venv.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"), str(src)],
                   check=True, env=env, capture_output=True)
    wheel = next((tmp_path / "dist").glob("air_restore-*.whl"))
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--ignore-installed", str(wheel)],
                   check=True, env=env, capture_output=True)
    where = subprocess.run([str(py), "-c", "import air_restore.registry.store as s; print(s.bundled_base_path())"],
                           check=True, capture_output=True, text=True, env=env, cwd=tmp_path).stdout.strip()
    assert where.startswith(str(env_dir)), where
    assert Path(where).stat().st_size > 1_000_000
    out = tmp_path / "restored.png"
    r = subprocess.run([str(env_dir / "bin" / "air"), "restore", str(EXAMPLES / "noisy_astronaut.png"), "-o", str(out)],
                       capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert Image.open(out).size == (512, 512)
    # The bundled adapters and estimator are in the wheel too, and the pipeline uses them.
    code = ("from air_restore.registry.pipeline import load_restorer; r = load_restorer(); "
            "print(','.join(r.adapters), r.estimator_path, len(r.warnings))")
    got = subprocess.run([str(py), "-c", code], check=True, capture_output=True, text=True, env=env,
                         cwd=tmp_path).stdout.split()
    assert got[0] == ",".join(BUNDLED_ORDER) and got[1].startswith(str(env_dir)) and got[2] == "0", got


@pytest.mark.slow
def test_third_party_plugin_package_is_discovered(tmp_path):
    """A real plugin package (tests/plugin_package), built and pip-installed into a venv, is found through
    its entry point; its broken entry points are listed with their reason and stop nothing."""
    env_dir = tmp_path / "venv"
    py = _nested_venv(env_dir)
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "COLUMNS": "200"}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"),
                    str(REPO / "tests" / "plugin_package")], check=True, env=env, capture_output=True)
    wheel = next((tmp_path / "dist").glob("air_sepia-*.whl"))
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True, env=env, capture_output=True)
    r = subprocess.run([str(py), "-m", "air_restore.cli.main", "list"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    lines = {line.split()[0]: line for line in r.stdout.splitlines() if line.strip()}
    assert "air-sepia[sepia]" in lines["sepia"] and lines["sepia"].rstrip().endswith("ok")
    assert "broken" in lines["ghost"] and "missing_module" in lines["ghost"]
    assert "broken" in lines["notaplugin"] and "not a DegradationPlugin" in lines["notaplugin"]
    for name in ("noise", "blur", "haze", "rain", "lowlight"):
        assert lines[name].rstrip().endswith("ok")
    # The plugin's synthesizer is usable through the CLI like a built-in one.
    clean = tmp_path / "clean"
    clean.mkdir()
    _photo(clean / "a.png", size=(64, 48))
    r = subprocess.run([str(py), "-m", "air_restore.cli.main", "eval", "--clean", str(clean), "--degrade", "sepia:0.8",
                        "--device", "cpu"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "sepia" in r.stdout


def test_file_names_with_brackets_are_printed_verbatim(tmp_path):
    """Square brackets in names are not eaten as rich markup, in results or in errors."""
    src = _photo(tmp_path / "shot[1].png")
    r = _air("restore", str(src), "--explain")
    assert r.exit_code == 0 and "shot[1].png" in r.output and "shot[1]_restored_map.png" in r.output
    (tmp_path / "bad[2].png").write_text("nope")
    r = _air("restore", str(tmp_path / "bad[2].png"))
    assert r.exit_code == 1 and "bad[2].png" in r.output


def test_rerun_on_a_folder_skips_earlier_outputs(tmp_path):
    _photo(tmp_path / "a.png")
    assert _air("restore", str(tmp_path), "--explain").exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "a_restored.png", "a_restored_map.png"]
    r = _air("restore", str(tmp_path), "--overwrite")
    assert r.exit_code == 0 and "skipping 2 earlier output(s)" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "a_restored.png", "a_restored_map.png"]
    # Named explicitly, an output is restored like any image.
    assert _air("restore", str(tmp_path / "a_restored.png")).exit_code == 0
    assert (tmp_path / "a_restored_restored.png").exists()


@pytest.mark.parametrize("spec", ["rain=nan", "rain=inf", "rain=-0.5", "rain=100", "noise=1,rain=1.6"])
def test_out_of_range_adapter_weights_are_refused(tmp_path, spec):
    """nan/inf/negative/huge weights once gave black or saturated images with exit code 0."""
    src = _photo(tmp_path / "p.png")
    r = _air("restore", str(src), "--adapters", spec)
    assert r.exit_code == 2 and "out of range" in r.output and "0 (off)" in " ".join(r.output.split())
    assert not (tmp_path / "p_restored.png").exists()
    r = _air("restore", str(src), "--adapter", f"{tmp_path}=nan")
    assert r.exit_code == 2 and "out of range" in r.output


def test_file_like_output_with_several_inputs_is_refused(tmp_path):
    a, b = _photo(tmp_path / "a.png"), _photo(tmp_path / "b.png")
    r = _air("restore", str(a), str(b), "-o", str(tmp_path / "out.png"))
    assert r.exit_code == 2 and "give -o a folder" in r.output
    assert not (tmp_path / "out.png").exists()


def test_explain_never_overwrites_an_existing_map(tmp_path):
    src = _photo(tmp_path / "p.png")
    mine = tmp_path / "p_restored_map.png"
    mine.write_bytes(b"my own file")
    r = _air("restore", str(src), "--explain")
    assert r.exit_code == 1 and "p_restored_map.png: already exists" in " ".join(r.output.split())
    assert mine.read_bytes() == b"my own file" and not (tmp_path / "p_restored.png").exists()
    assert _air("restore", str(src), "--explain", "--overwrite").exit_code == 0
    with Image.open(mine) as im:
        assert im.format == "PNG"


def test_a_file_that_appears_while_writing_is_not_replaced(tmp_path):
    """Two runs writing the same output: the second one's final move must not clobber the first's."""
    from air_restore.core.io.images import atomic_write

    dest = tmp_path / "out.png"

    def write(f):
        dest.write_bytes(b"the other run")  # the other run finishes first
        f.write(b"ours")

    with pytest.raises(FileExistsError, match="another run"):
        atomic_write(dest, write, replace=False)
    assert dest.read_bytes() == b"the other run"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]  # our temporary file is gone too


def test_temporary_files_of_killed_writers_are_swept(tmp_path):
    """SIGKILL during a write leaves `.NAME.xxxx.tmp`; the next write of that output removes it once it is
    an hour old, and leaves younger ones (a live writer's) and other files alone."""
    from air_restore.core.io.files import STALE_TMP_S, atomic_write

    dest = tmp_path / "p_restored.png"
    stale, young, other = (tmp_path / ".p_restored.png.dead0000.tmp", tmp_path / ".p_restored.png.live0000.tmp",
                           tmp_path / ".other.png.dead0000.tmp")
    for p in (stale, young, other):
        p.write_bytes(b"")
    old = os.path.getmtime(stale) - STALE_TMP_S - 10
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    atomic_write(dest, lambda f: f.write(b"x"))
    assert not stale.exists() and young.exists() and other.exists() and dest.read_bytes() == b"x"


def test_an_unwritable_output_folder_is_refused_before_any_work(tmp_path):
    """#13.11: the folder is named (not a temporary file) and nothing is computed first. /proc refuses
    new files even to root, so this holds on CI machines that run as root."""
    src = Path(__file__).resolve().parents[1] / "examples" / "hazy_chelsea.png"
    r = CliRunner().invoke(app, ["restore", str(src), "-o", "/proc/air-out.png"])
    assert r.exit_code == 2, r.output
    assert "/proc: cannot write in this folder" in r.output and ".tmp" not in r.output
    assert "→" not in r.output


def test_results_go_to_stdout_and_diagnostics_to_stderr(tmp_path):
    """#13.11: `air restore ... > log` keeps what was written where; warnings and errors stay on stderr."""
    src = Path(__file__).resolve().parents[1] / "examples" / "hazy_chelsea.png"
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    r = subprocess.run([sys.executable, "-m", "air_restore.cli.main", "restore", str(src), str(bad), "-o",
                        str(tmp_path / "out"), "--explain"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1
    assert f"→ {tmp_path / 'out' / 'hazy_chelsea.png'}" in r.stdout and "share of the image" in r.stdout
    assert "1 restored, 1 failed" in r.stdout
    assert "bad.png" in r.stderr and "bad.png" not in r.stdout


def test_progress_in_a_log_file_prints_a_line_every_tenth():
    """Where stderr is not a terminal (nohup, CI, a log file) a bar cannot redraw, and rich shows it only
    when the job ends: StageBars also prints one plain line per tenth of each stage."""
    import io

    from rich.console import Console

    from air_restore.cli.ui import StageBars

    buf = io.StringIO()
    with StageBars({"adapter": "training rain"}, fields=True, out=Console(file=buf, width=100)) as bars:
        for i in range(1, 38):
            bars("adapter", i, 37, info=f"loss {1 / i:.3f}")
        bars("views", 5, 5)
    lines = [ln for ln in buf.getvalue().splitlines() if ": " in ln]
    assert [ln.split(":")[1].split()[0] for ln in lines[:-1]] == [f"{-(-37 * k // 10)}/37" for k in range(1, 11)]
    assert lines[3] == "training rain: 15/37 loss 0.067" and lines[-1] == "views: 5/5"


def test_progress_raises_a_ctrl_c_that_was_swallowed():
    """A KeyboardInterrupt raised inside a weakref callback is printed and dropped by Python; one landed in
    importlib's module-lock callback and a 100000-step `air add-degradation` ran on after Ctrl-C (CI). Under
    StageBars the press is latched: the next progress report raises it again. The handler is put back after."""
    import io
    import signal

    from rich.console import Console

    from air_restore.cli.ui import CtrlC, StageBars

    # Python's own handler, as under a terminal (a pytest started with `&` or nohup inherits SIGINT ignored)
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with StageBars(out=Console(file=io.StringIO())) as bars:
                bars("adapter", 1, 10)
                try:
                    os.kill(os.getpid(), signal.SIGINT)
                    time.sleep(1.0)
                except KeyboardInterrupt:
                    pass  # what a weakref callback does to it
                bars("adapter", 2, 10)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        with StageBars(out=Console(file=io.StringIO())) as bars:  # a new job starts unlatched
            bars("adapter", 1, 10)
        with CtrlC(at_once=False) as ctrl_c:  # latched only: raised where the job checks, not where it was
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)
            assert ctrl_c.pressed
            with pytest.raises(KeyboardInterrupt):
                ctrl_c.check()
            with pytest.raises(KeyboardInterrupt):  # pressed twice: out at once
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1.0)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # ignored stays ignored: nothing latched, nothing raised
        with StageBars(out=Console(file=io.StringIO())) as bars:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)
            bars("adapter", 1, 10)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, outer)


def test_restore_interrupted_keeps_what_is_done_and_says_so(tmp_path):
    """Ctrl-C in `air restore FOLDER`: exit 130 and one line counting what was restored and what was not; the
    outputs already written stay whole, and the one being written when the key came is not left half-written."""
    import signal

    src, out = tmp_path / "shots", tmp_path / "out"
    src.mkdir()
    for i in range(12):
        _photo(src / f"{i:02d}.png", size=(480, 320))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    start = ("import signal, runpy; signal.signal(signal.SIGINT, signal.default_int_handler); "
             "runpy.run_module('air_restore.cli.main', run_name='__main__')")  # as a terminal would (see test_store)
    p = subprocess.Popen([sys.executable, "-c", start, "restore", str(src), "-o", str(out)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (out.is_dir() and any(out.glob("*.png"))):
            time.sleep(0.05)
        assert any(out.glob("*.png")), "nothing was restored"
        p.send_signal(signal.SIGINT)
        output, _ = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 130, output
    written = sorted(out.iterdir())
    assert 0 < len(written) < 12, output  # interrupted part-way
    line = next(ln for ln in output.splitlines() if ln.startswith("interrupted:"))
    assert line.startswith(f"interrupted: {len(written)} restored, 0 failed, {12 - len(written)} not done"), line
    for f in written:  # whole images, no temporaries
        assert f.suffix == ".png" and Image.open(f).size == (480, 320)
        Image.open(f).load()
