"""``air push`` / ``air pull`` end to end against a real local Hub (tests/hub_server.py), never the internet.

The CLI runs in subprocesses: huggingface_hub reads HF_ENDPOINT, HF_HOME and HF_HUB_OFFLINE when it is
imported, so each command gets its own environment (tmp Hugging Face cache, tmp $AIR_HOME, a token).
The adapter is a real (tiny) LoRA trained on the shipped base in a fixture.
"""

from __future__ import annotations

import copy
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load, load_file, save, save_file

from air_restore.core.training.adapter import TrainAdapterConfig, build_manifest, save_adapter, synthetic_sampler, train_adapter
from air_restore.registry import hub as hubmod
from air_restore.registry.discovery import get_degradation
from air_restore.registry.store import install_adapter, remove_adapter
from air_restore.registry.store import load_base

from hub_server import HubServer

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "noisy_astronaut.png"
REPO = "alice/air-grain"
WRITE, READ = "hf_write_token", "hf_read_token"
pytestmark = pytest.mark.slow


# --------------------------------------------------------------------------------------------- helpers


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Env:
    """One user's machine: its own $AIR_HOME and Hugging Face cache, talking to ``endpoint``."""

    def __init__(self, root: Path, endpoint: str, token: str | None = WRITE) -> None:
        self.root, self.endpoint, self.token = root, endpoint, token
        self.home, self.hf = root / "air", root / "hf"

    def env(self, **extra: str | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "AIR_"))}
        env.update(HF_ENDPOINT=self.endpoint, HF_HUB_DISABLE_XET="1", HF_HOME=str(self.hf),
                   HF_HUB_CACHE=str(self.hf / "hub"), AIR_HOME=str(self.home), HF_HUB_DISABLE_TELEMETRY="1",
                   HF_HUB_DISABLE_PROGRESS_BARS="1", OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
        if self.token:
            env["HF_TOKEN"] = self.token
        for k, v in extra.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        return env

    def air(self, *args: str, timeout: float = 120, **extra: str | None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "air_restore.cli.main", *args], env=self.env(**extra),
                              capture_output=True, text=True, timeout=timeout, cwd=self.root)

    def adapters(self) -> list[str]:
        d = self.home / "adapters"
        return sorted(p.name for p in d.iterdir()) if d.is_dir() else []

    def source(self, name: str) -> dict:
        return json.loads((self.home / "adapters" / name / "air_source.json").read_text())


def ok(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    return r.stderr + r.stdout


def one_error(r: subprocess.CompletedProcess, *needles: str) -> str:
    """A failed command: exit 2, exactly one line on stderr, no traceback, saying ``needles``."""
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2, r.stdout + r.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def with_manifest(weights: bytes, tensors_fn=None, **manifest_changes) -> tuple[bytes, dict]:
    """A copy of adapter_model.safetensors bytes with its tensors and/or manifest changed."""
    n = int.from_bytes(weights[:8], "little")
    meta = json.loads(weights[8:8 + n])["__metadata__"]
    manifest = {**json.loads(meta["air_manifest"]), **manifest_changes}
    tensors = load(weights)
    if tensors_fn is not None:
        tensors = tensors_fn(tensors)
    return save(tensors, metadata={**meta, "air_manifest": json.dumps(manifest)}), manifest


@contextmanager
def store_at(home: Path):
    """Point registry.store at ``home`` for in-process calls."""
    old = os.environ.get("AIR_HOME")
    os.environ["AIR_HOME"] = str(home)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("AIR_HOME")
        else:
            os.environ["AIR_HOME"] = old


def index_for(name: str, files: dict[str, bytes]) -> bytes:
    return (json.dumps(hubmod.make_index(name, files), indent=1) + "\n").encode()


# -------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def server():
    with HubServer() as s:
        yield s


@pytest.fixture(scope="module")
def adapters(tmp_path_factory):
    """Two versions of a real adapter "grain" (v2: different weights, same manifest)."""
    from skimage import data

    root = tmp_path_factory.mktemp("adapters")
    base, info = load_base()
    photo = torch.from_numpy(np.asarray(Image.fromarray(data.astronaut()).resize((64, 64)), dtype=np.float32) / 255)
    sampler = synthetic_sampler([photo.permute(2, 0, 1)], get_degradation("noise").synthesize)
    cfg = TrainAdapterConfig(steps=2, batch_size=1, crop=32, lr=1e-2)
    model = train_adapter(base, sampler, config=cfg)
    manifest = build_manifest("grain", info.fingerprint, cfg, base.config.lora_targets,
                              data={"kind": "synthetic", "plugin": "noise", "train_images": 1, "heldout_images": 1},
                              metrics={"heldout_images": 1, "heldout_psnr_input": 20.5, "heldout_psnr_base": 27.25,
                                       "heldout_psnr_adapter": 28.0}, wall_s=1.0)
    v1 = save_adapter(model, root / "v1" / "grain", manifest)
    v2 = root / "v2" / "grain"
    shutil.copytree(v1, v2)
    tensors = load_file(str(v2 / "adapter_model.safetensors"))
    with safe_open(str(v2 / "adapter_model.safetensors"), "pt") as f:
        meta = f.metadata()
    save_file({k: t * 1.5 if "lora_B" in k else t for k, t in tensors.items()}, str(v2 / "adapter_model.safetensors"),
              metadata=meta)
    return {"v1": v1, "v2": v2, "fingerprint": info.fingerprint}


@pytest.fixture(scope="module")
def pushed(server, adapters, tmp_path_factory):
    """alice pushes v1, then v2, of "grain" to a private repo alice/air-grain; returns (env, sha1, sha2)."""
    alice = Env(tmp_path_factory.mktemp("alice"), server.url)
    with store_at(alice.home):
        install_adapter(adapters["v1"])
    r1 = alice.air("push", "grain", "--repo", REPO, "--private")
    out = ok(r1)
    sha1 = server.head(REPO)
    assert f"commit {sha1}" in out and f"air pull {REPO}@{sha1}" in out
    with store_at(alice.home):
        install_adapter(adapters["v2"], overwrite=True)
    ok(alice.air("push", "grain", "--repo", REPO))
    sha2 = server.head(REPO)
    assert sha2 != sha1 and server.repos[REPO].private
    return alice, sha1, sha2


# ---------------------------------------------------------------------------------------------- tests


def test_parse_repo_spec_and_pickles():
    assert hubmod.parse_repo_spec("alice/air-snow") == ("alice/air-snow", None)
    assert hubmod.parse_repo_spec("alice/air-snow@" + "a" * 40) == ("alice/air-snow", "a" * 40)
    for bad in ("air-snow", "alice/air-snow@", "a/b/c", "../x", "alice/air snow"):
        with pytest.raises(ValueError, match="ORG/NAME"):
            hubmod.parse_repo_spec(bad)
    assert hubmod.pickle_like(["a.safetensors", "x/model.BIN", "opt.pt", "README.md", "c.ckpt"]) == [
        "c.ckpt", "opt.pt", "x/model.BIN"]


def test_push_uploads_peft_layout_card_and_samples(server, adapters, pushed):
    _, sha1, sha2 = pushed
    files = server.files(REPO, sha1)
    assert {"adapter_config.json", "adapter_model.safetensors", "air_manifest.json", "air_files.json", "README.md",
            "samples/input.png", "samples/base.png", "samples/adapter.png"} <= set(files)
    assert files["adapter_model.safetensors"] == (adapters["v1"] / "adapter_model.safetensors").read_bytes()
    index = json.loads(files["air_files.json"])
    for p in hubmod.ADAPTER_FILES:
        assert index["files"][p] == {"sha256": hubmod.sha256_bytes(files[p]), "size": len(files[p])}
    card = files["README.md"].decode()
    head = card.split("---")[1]
    assert "library_name: air-restore" in head and "- image-restoration" in head and "- lora" in head
    assert adapters["fingerprint"] in head and adapters["fingerprint"] in card.split("---", 2)[2]
    assert "27.25 dB" in card and "28.00 dB" in card and "+0.75 dB" in card  # metrics table from the manifest
    assert "![input](samples/input.png)" in card and "`noise` plugin" in card
    imgs = {k: np.asarray(Image.open(io.BytesIO(files[f"samples/{k}.png"]))) for k in ("input", "base", "adapter")}
    assert all(im.shape == (256, 256, 3) for im in imgs.values())
    assert not np.array_equal(imgs["base"], imgs["adapter"]) and not np.array_equal(imgs["input"], imgs["base"])
    # The second push changed only the weights; the index follows.
    later = server.files(REPO, sha2)
    assert later["adapter_model.safetensors"] == (adapters["v2"] / "adapter_model.safetensors").read_bytes()
    assert json.loads(later["air_files.json"])["files"]["adapter_model.safetensors"]["sha256"] == hubmod.sha256_bytes(
        later["adapter_model.safetensors"])


def test_pull_restore_pin_and_offline(server, adapters, pushed, tmp_path):
    _, sha1, sha2 = pushed
    bob = Env(tmp_path, server.url, token=READ)  # a read token is enough to pull from a private repo
    out = ok(bob.air("pull", REPO))
    assert bob.adapters() == ["grain"] and f"{REPO}@{sha2[:12]}" in out and "--adapters grain=1" in out
    src = bob.source("grain")
    assert src["kind"] == "hub" and src["repo"] == REPO and src["revision"] == sha2
    assert "already installed" in ok(bob.air("pull", REPO))

    # Plain peft loads the downloaded folder (the Hugging Face cache snapshot) unchanged.
    peft = pytest.importorskip("peft")
    from air_restore.core.lora import attach, blend
    from air_restore.registry.adapters import read_peft_adapter

    snapshot = bob.hf / "hub" / "models--alice--air-grain" / "snapshots" / sha2
    base = load_base()[0]
    pm = peft.PeftModel.from_pretrained(copy.deepcopy(base), str(snapshot)).eval()
    blended = copy.deepcopy(base)
    attach(blended, "grain", read_peft_adapter(bob.home / "adapters" / "grain")[1])
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad(), blend(blended, torch.ones(1, 1)):
        assert torch.allclose(blended(x).image, pm(x).image, atol=1e-5)

    # Pin the first push: same repo, so the installed adapter is replaced by that exact commit.
    out = ok(bob.air("pull", f"{REPO}@{sha1}"))
    assert "updated" in out and bob.source("grain")["revision"] == sha1
    assert (bob.home / "adapters" / "grain" / "adapter_model.safetensors").read_bytes() == (
        adapters["v1"] / "adapter_model.safetensors").read_bytes()

    # Offline: the installed revision is reported installed and restores (with the pulled adapter, as
    # registry.pipeline does in-process), without one request to the Hub.
    n = len(server.requests)
    out = ok(bob.air("pull", f"{REPO}@{sha1}", HF_HUB_OFFLINE="1"))
    assert "already installed" in out and "HF_HUB_OFFLINE" in out
    dest = tmp_path / "out.png"
    ok(bob.air("restore", str(EXAMPLE), "-o", str(dest), "--adapters", "grain=1",
               HF_HUB_OFFLINE="1", HF_ENDPOINT=f"http://127.0.0.1:{closed_port()}"))
    from air_restore.core.io.images import read_image
    from air_restore.registry.pipeline import load_restorer

    with store_at(bob.home):
        r = load_restorer()
        assert "grain" in r.adapters
        rgb = read_image(EXAMPLE).rgb
        with_grain = r.restore(rgb, r.weights_from({"grain": 1.0})).image
        base_only = r.restore(rgb, r.weights_from({})).image
    got = torch.from_numpy(np.asarray(Image.open(dest), dtype=np.float32) / 255).permute(2, 0, 1)
    assert (got - with_grain).abs().max() < 1.5 / 255
    assert (with_grain - base_only).abs().max() > 2 / 255

    # Removed from the store, it is re-installed offline from the Hugging Face cache, hashes checked.
    with store_at(bob.home):
        remove_adapter("grain")
    out = ok(bob.air("pull", f"{REPO}@{sha1}", HF_HUB_OFFLINE="1"))
    assert bob.adapters() == ["grain"] and bob.source("grain")["revision"] == sha1
    assert len(server.requests) == n


def test_refusals_leave_nothing_installed(server, adapters, pushed, tmp_path):
    _, _, sha2 = pushed
    files = server.files(REPO, sha2)
    weights = files["adapter_model.safetensors"]

    # 1. A file changed after the push (air_files.json not updated): refused on the hash.
    server.create_repo("alice/tampered")
    tampered, _ = with_manifest(weights, lambda t: {k: v * 3 if "lora_B" in k else v for k, v in t.items()})
    server.commit("alice/tampered", {**files, "adapter_model.safetensors": tampered})
    # 2. A well-formed adapter made for another base: refused before its weights are downloaded.
    server.create_repo("alice/other-base")
    other_fp = "sha256:00000000deadbeef"
    ob, m = with_manifest(weights, base_fingerprint=other_fp)
    payload = {"adapter_config.json": files["adapter_config.json"], "adapter_model.safetensors": ob,
               "air_manifest.json": (json.dumps(m, indent=1) + "\n").encode()}
    server.commit("alice/other-base", {**payload, "air_files.json": index_for("grain", payload)})
    # 3. A pickle beside the adapter: the whole repo is refused before anything is downloaded.
    server.create_repo("alice/pickled")
    server.commit("alice/pickled", {**files, "training/optimizer.pt": b"\x80\x04K\x01."})

    carol = Env(tmp_path, server.url)
    one_error(carol.air("pull", "alice/tampered"), "adapter_model.safetensors", "hash recorded at push time")
    n = len(server.requests)
    one_error(carol.air("pull", "alice/other-base"), other_fp, adapters["fingerprint"], "needs base")
    assert not any("/resolve/" in p and p.endswith("adapter_model.safetensors") for _, p in server.requests[n:])
    n = len(server.requests)
    one_error(carol.air("pull", "alice/pickled"), "training/optimizer.pt", "safetensors only")
    assert not any("/resolve/" in p for _, p in server.requests[n:])
    assert carol.adapters() == []
    assert not carol.home.exists() or not [p for p in carol.home.iterdir() if p.name.startswith(".")]
    one_error(carol.air("pull", "alice/nope"), "no repo alice/nope")
    one_error(carol.air("pull", REPO, HF_TOKEN=None), f"no repo {REPO}", "private")
    one_error(carol.air("pull", f"{REPO}@v9"), "no revision 'v9'")


def test_tokens_and_network_errors_are_one_line(server, adapters, pushed, tmp_path):
    dave = Env(tmp_path, server.url, token=None)
    with store_at(dave.home):
        install_adapter(adapters["v1"])
    one_error(dave.air("push", "grain", "--repo", "dave/air-grain"), "no Hugging Face token", "hf auth login")
    # A bundled adapter could be pushed but never pulled back (pull refuses bundled names): refused up front.
    n = len(server.requests)
    one_error(dave.air("push", "noise", "--repo", "dave/air-noise", HF_TOKEN=WRITE), "'noise' is a bundled adapter",
              "another name")
    assert "dave/air-noise" not in server.repos and len(server.requests) == n
    one_error(dave.air("push", "grain", "--repo", "dave/air-grain", HF_TOKEN="hf_wrong"), "401", "invalid or expired")
    one_error(dave.air("push", "grain", "--repo", "dave/air-grain", HF_TOKEN=READ), "403", "write to dave")
    assert "dave/air-grain" not in server.repos
    # No network (nothing listens on the port): fails at once, without huggingface_hub's retry loop.
    down = f"http://127.0.0.1:{closed_port()}"
    for args in (("pull", REPO), ("push", "grain", "--repo", "dave/air-grain"), ("search",)):
        t = time.monotonic()
        r = dave.air(*args, HF_ENDPOINT=down, HF_TOKEN=WRITE, timeout=60)
        elapsed = time.monotonic() - t
        one_error(r, "cannot reach the Hugging Face Hub", down)
        assert elapsed < 15, f"{args[0]} took {elapsed:.1f} s to fail"


def test_search_lists_tagged_repos(server, pushed, tmp_path):
    out = ok(Env(tmp_path, server.url).air("search", "grain"))
    assert REPO in out and "1 found" in out



def test_estimator_views_travel_with_the_adapter(server, adapters, tmp_path):
    """An adapter trained on real pairs keeps estimator views beside it; push and pull carry them, hash-checked,
    so the puller's `air train estimator` has examples of it (and of its clean versions) without its plugin."""
    from skimage import data

    from air_restore.registry.add_degradation import estimator_sources
    from air_restore.core.training.estimator import load_views, save_views
    from air_restore.registry.store import local_adapters

    folder = tmp_path / "src" / "grain"
    shutil.copytree(adapters["v1"], folder)
    photo = torch.from_numpy(np.asarray(data.coffee(), dtype=np.float32) / 255).permute(2, 0, 1)
    save_views(folder, [photo], torch.Generator().manual_seed(0), count=6, clean=[photo.clamp(0.1, 0.9)])
    for who in ("erin", "frank", "gina"):
        (tmp_path / who).mkdir()
    erin = Env(tmp_path / "erin", server.url)
    with store_at(erin.home):
        install_adapter(folder)
    ok(erin.air("push", "grain", "--repo", "erin/air-grain"))
    sha = server.head("erin/air-grain")
    files = server.files("erin/air-grain", sha)
    views = (folder / hubmod.VIEWS_FILE).read_bytes()
    assert files[hubmod.VIEWS_FILE] == views
    assert json.loads(files["air_files.json"])["files"][hubmod.VIEWS_FILE]["sha256"] == hubmod.sha256_bytes(views)
    assert f"| {hubmod.VIEWS_FILE} |" in files["README.md"].decode()

    frank = Env(tmp_path / "frank", server.url)
    ok(frank.air("pull", "erin/air-grain"))
    assert (frank.home / "adapters" / "grain" / hubmod.VIEWS_FILE).read_bytes() == views
    with store_at(frank.home):
        pulled = [a for a in local_adapters() if a.name == "grain"]
        sources, missing = estimator_sources(pulled)
        assert missing == [] and torch.equal(sources["grain"].views, load_views(folder))
        assert sources["grain"].clean_views.shape == sources["grain"].views.shape
        assert not torch.equal(sources["grain"].clean_views, sources["grain"].views)
        assert "already installed" in ok(frank.air("pull", "erin/air-grain"))  # intact, views included

    # Views changed after the push are refused on the hash; views of the wrong kind on their format.
    server.create_repo("erin/bad-views")
    server.commit("erin/bad-views", {**files, hubmod.VIEWS_FILE: views[:-8] + b"\x00" * 8})
    server.create_repo("erin/odd-views")
    odd = {**files, hubmod.VIEWS_FILE: save({"views": torch.zeros(2, 3, 8, 8)})}
    odd_payload = {p: odd[p] for p in (*hubmod.ADAPTER_FILES, hubmod.VIEWS_FILE)}
    server.commit("erin/odd-views", {**odd, "air_files.json": index_for("grain", odd_payload)})
    server.create_repo("erin/odd-clean")
    u8 = torch.zeros(2, 2, 3, 8, 8, dtype=torch.uint8)
    odd = {**files, hubmod.VIEWS_FILE: save({"views": u8, "clean": u8[:1].clone()})}  # clean views of another shape
    odd_payload = {p: odd[p] for p in (*hubmod.ADAPTER_FILES, hubmod.VIEWS_FILE)}
    server.commit("erin/odd-clean", {**odd, "air_files.json": index_for("grain", odd_payload)})
    gina = Env(tmp_path / "gina", server.url)
    one_error(gina.air("pull", "erin/bad-views"), hubmod.VIEWS_FILE, "hash recorded at push time")
    one_error(gina.air("pull", "erin/odd-views"), hubmod.VIEWS_FILE, "uint8")
    one_error(gina.air("pull", "erin/odd-clean"), hubmod.VIEWS_FILE, "same shape")
    assert gina.adapters() == []
