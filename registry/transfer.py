"""Adapters to and from the Hugging Face Hub: ``air push`` (upload with an index of sha256 hashes and a
model card) and ``air pull`` (pin the revision to its commit, check every file against the index, refuse
pickles and adapters for another base, install atomically). Names, the index, errors and the network
settings they share are in :mod:`.hub`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.training import VIEWS_FILE
from .card import SAMPLE_FILES, model_card, png_bytes
from .hub import (
    ADAPTER_FILES, INDEX_FILE, META_TIMEOUT, SHA_RE, HubError, PullResult, PushResult, _endpoint, _offline, check_file,
    check_views, hub_errors, indexed, installed_from, make_index, parse_index, parse_repo_spec, pickle_like,
    push_repo_id,
)

if TYPE_CHECKING:
    import torch


# ---------------------------------------------------------------------------------------------- push


def adapter_payload(folder: Path) -> tuple[dict, dict[str, bytes]]:
    """(manifest, {path: bytes}) of the adapter files to upload. ``air_manifest.json`` is written from the
    safetensors metadata, so the two cannot disagree."""
    from .adapters import AdapterFileError, read_manifest, read_peft_adapter

    folder = Path(folder)
    manifest = read_manifest(folder)
    if not manifest:
        raise AdapterFileError(f"{folder}: no air-restore manifest")
    read_peft_adapter(folder)  # readable LoRA, safetensors only
    payload = {p: (folder / p).read_bytes() for p in ADAPTER_FILES[:2]}
    payload["air_manifest.json"] = (json.dumps(manifest, indent=1) + "\n").encode()
    if (folder / VIEWS_FILE).is_file():
        check_views(folder / VIEWS_FILE, str(folder))
        payload[VIEWS_FILE] = (folder / VIEWS_FILE).read_bytes()
    return manifest, payload


def write_token(token: str | None = None) -> str:
    """The token to push with (``token``, else huggingface_hub's: HF_TOKEN, `hf auth login`); refuses
    offline mode and a missing token up front, before any work."""
    from huggingface_hub import get_token

    if _offline():
        raise HubError("HF_HUB_OFFLINE=1 is set: `air push` needs the network; unset it to push")
    token = token or get_token()
    if not token:
        raise HubError("no Hugging Face token found: run `hf auth login`, or set HF_TOKEN to a token with write access")
    return token


def ensure_repo(repo_id: str, *, private: bool = False, branch: str | None = None, token: str | None = None) -> str:
    """Create ``repo_id`` (private if asked) and ``branch`` if they do not exist; returns the branch. The
    first request of a push: a bad token, missing rights or no network fail here, before any work."""
    from huggingface_hub import HfApi

    push_repo_id(repo_id)
    token = write_token(token)
    branch = branch or "main"
    api = HfApi(token=token)
    with hub_errors(repo_id, branch, writing=True):
        api.create_repo(repo_id, private=True if private else None, exist_ok=True)
        if branch != "main":
            api.create_branch(repo_id, branch=branch, exist_ok=True)
    return branch


def check_pushable(name: str) -> None:
    """Refuse to push a bundled adapter: `air pull` refuses bundled names (they would shadow them), so such
    a repo could never be pulled back. Called before anything is created on the Hub."""
    from .store import BUNDLED_ORDER

    if name in BUNDLED_ORDER:
        raise HubError(f"{name!r} is a bundled adapter: it already ships with air-restore, and a repo of it could "
                       "not be pulled (pull refuses bundled names); to share your own version, train it under "
                       "another name (air add-degradation NAME ...)")


def push_adapter(folder: Path, repo_id: str, *, private: bool = False, branch: str | None = None,
                 samples: dict[str, torch.Tensor] | None = None, samples_note: str | None = None,
                 token: str | None = None) -> PushResult:
    """Upload the adapter in ``folder`` (PEFT layout + manifest) to ``repo_id`` in one commit, with
    ``air_files.json``, a model card and the before/after ``samples`` (see :func:`before_after`).
    Creates the repo and the branch if needed (:func:`ensure_repo`)."""
    from huggingface_hub import CommitOperationAdd, HfApi

    manifest, payload = adapter_payload(folder)
    check_pushable(manifest["name"])
    token = write_token(token)
    branch = ensure_repo(repo_id, private=private, branch=branch, token=token)
    index = make_index(manifest["name"], payload)
    files = dict(payload)
    files[INDEX_FILE] = (json.dumps(index, indent=1) + "\n").encode()
    if samples is not None:
        files.update({SAMPLE_FILES[k]: png_bytes(v) for k, v in samples.items()})
    files["README.md"] = model_card(manifest, index, repo_id=repo_id, branch=branch,
                                    samples_note=samples_note if samples is not None else None).encode()
    with hub_errors(repo_id, branch, writing=True):
        info = HfApi(token=token).create_commit(
            repo_id, [CommitOperationAdd(path_in_repo=p, path_or_fileobj=b) for p, b in sorted(files.items())],
            commit_message=f"air push {manifest['name']}", revision=branch,
        )
    return PushResult(repo_id, branch, info.oid, str(info.commit_url), index["files"], samples is not None)


# ---------------------------------------------------------------------------------------------- pull


def check_manifest(manifest_path: Path, index: dict, where: str) -> dict:
    """The downloaded ``air_manifest.json``, checked: JSON object, valid name, a base fingerprint."""
    from ..plugins.api import NAME_RE

    try:
        manifest = json.loads(manifest_path.read_text())
    except (ValueError, UnicodeDecodeError):
        raise HubError(f"{where}: air_manifest.json is not JSON") from None
    if not isinstance(manifest, dict):
        raise HubError(f"{where}: air_manifest.json is not a manifest")
    name = manifest.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise HubError(f"{where}: manifest name {name!r} is not a valid adapter name")
    if index.get("name") != name:
        raise HubError(f"{where}: {INDEX_FILE} is for {index.get('name')!r} but the manifest says {name!r}")
    if not isinstance(manifest.get("base_fingerprint"), str):
        raise HubError(f"{where}: the manifest records no base fingerprint")
    return manifest


def _describe(source: dict) -> str:
    if source.get("kind") == "hub":
        return f"from {source.get('repo')}@{str(source.get('revision'))[:12]}"
    return f"from {source.get('from', 'a local folder')}" if source else "locally"


def pull_adapter(spec: str, *, base_fingerprint: str | None = None, weights: Path | None = None,
                 overwrite: bool = False, token: str | None = None, timeout: float = META_TIMEOUT) -> PullResult:
    """Download ``ORG/NAME[@REVISION]`` at one commit, verify it, and install it in the local store.

    Refuses (HubError) pickle-like files in the repo, files that do not match ``air_files.json``, an
    adapter made for a base other than ``base_fingerprint`` (default: that of ``weights``, else of the
    bundled base), and a name already used by an adapter that
    came from elsewhere (unless ``overwrite``). An adapter already installed from the same repo is
    replaced (an update, or a pin to an older commit). Pulling an installed commit again is a no-op.
    """
    from huggingface_hub import HfApi, hf_hub_download

    repo_id, rev = parse_repo_spec(spec)
    offline = _offline()
    if rev is not None and SHA_RE.match(rev) and (hit := installed_from(repo_id, commit=rev)):
        return PullResult(hit.name, repo_id, rev, hit.path, "already installed", offline=offline)
    listing: list[str] | None = None
    if offline:
        if rev is None or not SHA_RE.match(rev):
            if hit := installed_from(repo_id, requested=rev or "main"):
                return PullResult(hit.name, repo_id, hit.source["revision"], hit.path, "already installed", offline=True)
            raise HubError(f"HF_HUB_OFFLINE=1 is set and {repo_id}@{rev or 'main'} is not installed; pull it once "
                           "with network access, or give the commit sha of a revision in the Hugging Face cache")
        sha = rev
    else:
        with hub_errors(repo_id, rev):
            info = HfApi(token=token).model_info(repo_id, revision=rev, timeout=timeout)
        sha = str(info.sha)
        listing = [s.rfilename for s in info.siblings or []]
        bad = pickle_like(listing)
        if bad:
            raise HubError(f"{repo_id}@{sha[:12]} holds pickle-like file(s) {', '.join(bad)}, which can run code "
                           "when loaded; air-restore accepts safetensors only, so nothing was downloaded")
        if hit := installed_from(repo_id, commit=sha):
            return PullResult(hit.name, repo_id, sha, hit.path, "already installed")
    where = f"{repo_id}@{sha[:12]}"

    def fetch(name: str) -> Path:
        if listing is not None and name not in listing:
            raise HubError(f"{where} has no {name}: it is not an adapter pushed with `air push`")
        with hub_errors(repo_id, sha):
            return Path(hf_hub_download(repo_id, name, revision=sha, token=token, etag_timeout=timeout))

    index = parse_index(fetch(INDEX_FILE).read_bytes(), where)
    manifest_path = fetch("air_manifest.json")
    check_file(manifest_path, index["files"]["air_manifest.json"], "air_manifest.json", where)
    manifest = check_manifest(manifest_path, index, where)
    name, need = manifest["name"], manifest["base_fingerprint"]
    from .adapters import AdapterFileError, read_manifest, read_peft_adapter
    from .store import BUNDLED_ORDER, air_home, install_adapter, local_adapters
    from ..core.io.weights import ModelFileError, read_base_info
    from .store import bundled_base_path

    if base_fingerprint is None:
        try:
            base_fingerprint = read_base_info(weights or bundled_base_path()).fingerprint
        except ModelFileError as e:
            raise HubError(str(e)) from None
    if need != base_fingerprint:
        raise HubError(f"{where}: adapter {name!r} was trained for base {need}, but the installed base is "
                       f"{base_fingerprint}; it needs base {need} (or retrain it on yours with `air train adapter`)")
    if name in BUNDLED_ORDER:
        raise HubError(f"{where}: adapter {name!r} has the name of a bundled adapter; it cannot be installed")
    status, previous = "installed", None
    current = next((a for a in local_adapters() if a.name == name), None)
    if current is not None:
        same_repo = current.source.get("kind") == "hub" and current.source.get("repo") == repo_id
        if not (same_repo or overwrite):
            raise HubError(f"an adapter named {name!r} is already installed ({_describe(current.source)}); "
                           f"pass --overwrite to replace it with {where}")
        status = "updated" if same_repo else "replaced"
        previous = current.source.get("revision") if same_repo else _describe(current.source)
    paths = {"air_manifest.json": manifest_path}
    for p in (q for q in indexed(index) if q != "air_manifest.json"):  # the manifest was fetched above
        paths[p] = fetch(p)
        check_file(paths[p], index["files"][p], p, where)
    if VIEWS_FILE in paths:
        check_views(paths[VIEWS_FILE], where)

    home = air_home()
    home.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".pull-", dir=home))
    try:
        for p, src in paths.items():
            shutil.copyfile(src, stage / p)
        (stage / INDEX_FILE).write_text(json.dumps(index, indent=1) + "\n")
        try:
            embedded = read_manifest(stage)
            read_peft_adapter(stage)
        except AdapterFileError as e:
            raise HubError(f"{where}: {e}") from None
        if embedded != manifest:
            raise HubError(f"{where}: air_manifest.json differs from the manifest inside adapter_model.safetensors")
        source = {"kind": "hub", "repo": repo_id, "revision": sha, "requested": rev or "main",
                  "endpoint": _endpoint(), "pulled": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        try:
            dest = install_adapter(stage, source=source, overwrite=current is not None)
        except (AdapterFileError, FileExistsError) as e:
            raise HubError(f"{where}: {e}") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return PullResult(name, repo_id, sha, dest, status, previous, offline)
