"""``air batch`` on a real local Ray instance: same outputs as ``air restore``, bad images recorded,
a driver killed with SIGKILL and rerun loses nothing and duplicates nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
AIR = [sys.executable, "-m", "air_restore.cli.main"]


def _need_ray():
    try:
        import ray.data  # noqa: F401
    except ImportError:
        pytest.skip('Ray Data is not installed (pip install "air-restore[scale]")')


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """40 small photos cut from the shipped examples (PNG, JPEG, gray, 16-bit, RGBA), 2 in a subfolder,
    and one corrupt file."""
    d = tmp_path_factory.mktemp("archive")
    sources = [Image.open(p).convert("RGB") for p in sorted((ROOT / "examples").glob("*.png"))]
    for i in range(40):
        src = sources[i % len(sources)]
        x, y = (i * 37) % (src.width - 160), (i * 23) % (src.height - 120)
        im = src.crop((x, y, x + 160, y + 120))
        name = f"img{i:02d}"
        if i % 10 == 1:
            im.save(d / f"{name}.jpg", quality=90)
        elif i % 10 == 2:
            im.convert("L").save(d / f"{name}.png")
        elif i % 10 == 3:
            Image.fromarray((np.asarray(im.convert("L")).astype(np.uint16) * 257)).save(d / f"{name}.png")
        elif i % 10 == 4:
            im.convert("RGBA").save(d / f"{name}.png")
        else:
            im.save(d / f"{name}.png")
    (d / "more").mkdir()
    for i in range(2):
        sources[i].crop((0, 0, 128, 96)).save(d / "more" / f"deep{i}.png")
    (d / "broken.png").write_bytes((ROOT / "examples" / "hazy_chelsea.png").read_bytes()[:200])
    return d


def _env(tmp_path: Path) -> dict:
    return {**os.environ, "AIR_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}


def _outputs(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


def _pixels(p: Path) -> np.ndarray:
    with Image.open(p) as im:
        im.load()  # a truncated file fails here
        return np.asarray(im).astype(np.int64)


@pytest.mark.slow
def test_batch_equals_air_restore_and_records_bad_images(archive, tmp_path):
    _need_ray()
    env = _env(tmp_path)
    out = tmp_path / "out"
    r = subprocess.run([*AIR, "batch", str(archive), str(out), "--workers", "2", "--batch-size", "4"],
                       env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 1, r.stderr  # one image failed
    assert "42 restored, 0 already done, 1 failed (of 43)" in r.stdout, r.stdout + r.stderr
    assert "broken.png" in r.stderr
    errors = [json.loads(line) for line in (out / "_air_errors.jsonl").read_text().splitlines()]
    assert [Path(e["path"]).name for e in errors] == ["broken.png"] and errors[0]["reason"]

    ref = tmp_path / "ref"
    for src, dst in ((archive, ref), (archive / "more", ref / "more")):
        subprocess.run([*AIR, "restore", str(src), "-o", str(dst), "--device", "cpu"], env=env,
                       capture_output=True, timeout=900)
    want = sorted(x for x in _outputs(ref))
    assert _outputs(out) == sorted(want + ["_air_errors.jsonl"])
    for rel in want:
        a, b = _pixels(out / rel), _pixels(ref / rel)
        assert a.shape == b.shape, rel
        one = 257 if a.max() > 255 else 1  # 1/255 of the range, in 8 or 16 bits
        assert np.abs(a - b).max() <= one, rel

    # A rerun has nothing left to do but the bad image.
    r = subprocess.run([*AIR, "batch", str(archive), str(out)], env=env, capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 1 and "0 restored, 42 already done, 1 failed" in r.stdout, r.stdout + r.stderr


@pytest.mark.slow
def test_a_killed_job_resumes_without_loss_or_duplicates(archive, tmp_path):
    _need_ray()
    env = _env(tmp_path)
    out = tmp_path / "out"
    cmd = [*AIR, "batch", str(archive), str(out), "--workers", "1", "--batch-size", "1"]
    job = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    try:
        deadline = time.time() + 300
        while len([p for p in _outputs(out) if not p.startswith("_")]) < 5:
            assert job.poll() is None and time.time() < deadline, "the job ended before it could be killed"
            time.sleep(0.05)
        os.kill(job.pid, signal.SIGKILL)  # the driver, outright
        job.wait()
    finally:
        time.sleep(1)
        try:  # and whatever Ray processes it started, as when the whole machine goes down
            os.killpg(job.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    done_before = [p for p in _outputs(out) if not p.startswith("_") and not Path(p).name.startswith(".")]
    assert 5 <= len(done_before) < 42, done_before

    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 1, r.stderr
    assert f"{42 - len(done_before)} restored, {len(done_before)} already done, 1 failed" in r.stdout, r.stderr
    files = _outputs(out)
    good = sorted(str(p.relative_to(archive)) for p in archive.rglob("*") if p.is_file() and p.name != "broken.png")
    assert files == sorted(good + ["_air_errors.jsonl"])  # each image once, no temporary file left
    for rel in good:
        _pixels(out / rel)  # none truncated


def test_batch_without_ray_says_how_to_get_it(tmp_path):
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    r = subprocess.run([*AIR, "batch", str(tmp_path), str(tmp_path / "out")], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and 'pip install "air-restore[scale]"' in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()


def test_the_output_tree_is_left_out_of_the_input_and_cannot_be_the_input(tmp_path):
    _need_ray()
    from air_restore.registry.batch import BatchError, Where, run_batch

    (tmp_path / "a" / "b").mkdir(parents=True)
    for rel in ("x.png", "a/y.jpg", "a/b/z.tif", ".hidden.png", "notes.txt", "out/x.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    assert Where.parse(str(tmp_path)).list_images(skip=Where.parse(str(tmp_path / "out"))) == [
        "a/b/z.tif", "a/y.jpg", "x.png"]
    with pytest.raises(BatchError, match="another folder"):
        run_batch(str(tmp_path), str(tmp_path))
    with pytest.raises(BatchError, match="not a folder"):
        run_batch(str(tmp_path / "x.png"), str(tmp_path / "o"))


def test_a_worker_reads_and_writes_through_a_pyarrow_file_system(tmp_path):
    """The s3://, gs:// path, on pyarrow's local file system: listing, resume check, download, upload."""
    _need_ray()
    from pyarrow import fs as pafs

    from air_restore.registry.batch import RestoreWorker, Where

    (tmp_path / "in" / "sub").mkdir(parents=True)
    Image.open(ROOT / "examples" / "hazy_chelsea.png").crop((0, 0, 96, 64)).save(tmp_path / "in" / "sub" / "a.png")
    (tmp_path / "in" / "bad.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "out").mkdir()
    src = Where("remote-in", pafs.LocalFileSystem(), str(tmp_path / "in"))
    dst = Where("remote-out", pafs.LocalFileSystem(), str(tmp_path / "out"))
    assert src.list_images() == ["bad.jpg", "sub/a.png"] and not dst.exists("sub/a.png")
    cfg = {"input": str(tmp_path / "in"), "output": str(tmp_path / "out"), "weights": None, "device": "cpu",
           "use_adapters": True, "tta": False, "adapters": None, "tile": 512, "overlap": 128,
           "max_pixels": 10**6, "overwrite": False, "threads": 1}
    worker = type("W", (RestoreWorker,), {"CFG": cfg})()
    worker.src, worker.dst = src, dst
    got = worker({"path": np.array(["sub/a.png", "bad.jpg"], dtype=object)})
    assert got["ok"] == [True, False] and "bad.jpg" not in got["reason"][1] and got["reason"][1]
    assert dst.exists("sub/a.png")
    direct = tmp_path / "direct.png"
    from air_restore.registry import load_pipeline

    load_pipeline(device="cpu")(tmp_path / "in" / "sub" / "a.png", direct)
    assert np.abs(_pixels(tmp_path / "out" / "sub" / "a.png") - _pixels(direct)).max() <= 1


@pytest.mark.slow
def test_workers_that_cannot_start_end_the_job_in_one_line(tmp_path):
    """A pipeline the workers cannot load (here a base file that does not exist; the CLI checks it first,
    the library may not) is one BatchError naming the cause, not Ray's stack trace."""
    _need_ray()
    from air_restore.registry.batch import BatchError, run_batch

    (tmp_path / "in").mkdir()
    Image.open(ROOT / "examples" / "hazy_chelsea.png").crop((0, 0, 64, 48)).save(tmp_path / "in" / "a.png")
    with pytest.raises(BatchError, match="the workers failed: .*missing.safetensors"):
        run_batch(str(tmp_path / "in"), str(tmp_path / "out"), weights=str(tmp_path / "missing.safetensors"))
    assert not (tmp_path / "out" / "a.png").exists()
