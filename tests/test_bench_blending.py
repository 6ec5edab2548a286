"""benchmarks/blending.py (base vs estimator-blended vs oracle adapters) runs on a tiny configuration."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from PIL import Image

from air_restore.registry.store import BUNDLED_ORDER, bundled_estimator_path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def test_blending_script(tmp_path):
    from skimage import data

    clean = tmp_path / "clean"
    clean.mkdir()
    Image.fromarray(data.coffee()).resize((96, 80)).save(clean / "coffee.png")
    spec = importlib.util.spec_from_file_location("bench_blending", BENCH / "blending.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "b.json"
    res = mod.main(["--clean", str(clean), "--limit", "1", "--size", "64", "--out", str(out)])
    assert json.loads(out.read_text())["images_per_task"] == 1
    assert [r["task"] for r in res["single"]] == list(mod.SINGLE)
    assert [r["task"] for r in res["mixed"]] == ["noise+blur", "haze+noise", "rain+lowlight", "lowlight+noise"]
    for r in res["single"] + res["mixed"]:
        assert 0 < r["input"] < 60 and 0 < r["blended"] < 60
        if r["task"] in res["adapters"] or "+" in r["task"]:
            assert r["top1"] in (0.0, 1.0)  # one image per task: the estimator's first choice is right or wrong
        assert set(r["mean_weights"]) == set(res["adapters"])
    assert {r["task"] for r in res["single"]} <= set(res["adapters"])  # every plugin's task has its adapter (snow too)
    assert res["estimator_top1_single"] == pytest.approx(sum(r["top1"] for r in res["single"]) / len(res["single"]))
    # The shipped estimator again, as --estimator and as --baseline-estimator: its column is the same pipeline
    # (fallback and the jpeg rule included), so every row gives the same blend twice.
    est = str(bundled_estimator_path())
    res = mod.main(["--clean", str(clean), "--limit", "1", "--size", "64", "--estimator", est,
                    "--baseline-estimator", est, "--without", "jpeg"])
    for r in res["single"] + res["mixed"] + [res["clean"]]:
        assert r["blended_baseline"] == pytest.approx(r["blended"], abs=1e-6), r["task"]


def test_add_degradation_script(tmp_path):
    from skimage import data

    clean = tmp_path / "clean"
    clean.mkdir()
    for k in ("astronaut", "coffee", "chelsea"):
        Image.fromarray(getattr(data, k)()).resize((72, 64)).save(clean / f"{k}.png")
    spec = importlib.util.spec_from_file_location("bench_add", BENCH / "add_degradation.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.main(["--name", "sleet", "--plugin", "snow", "--data", str(clean), "--steps", "2", "--estimator-steps",
                    "2", "--eval-images", "1", "--crop", "32", "--out", str(tmp_path / "a.json")])
    tasks = {t["task"]: t for t in res["tasks"]}
    assert tasks["sleet"]["new"] and set(tasks) == {"sleet", *BUNDLED_ORDER, "clean photos"}  # realnoise: camera_noise stands in
    assert tasks["clean photos"]["input"] == 100.0 and not tasks["clean photos"]["new"]  # the input is the clean photo
    assert res["adapter"]["name"] == "sleet"
