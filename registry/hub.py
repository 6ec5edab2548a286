"""Share adapters on the Hugging Face Hub: ``air push`` and ``air pull`` (DESIGN.md, "Hub").

A repo made by ``air push`` holds one adapter::

    adapter_config.json            PEFT's layout: plain ``peft.PeftModel.from_pretrained`` loads the repo
    adapter_model.safetensors      (our manifest also in its metadata, key air_manifest)
    air_manifest.json
    air_estimator_views.safetensors   only for an adapter trained on real pairs: 48 small uint8 views of
                                   its degraded photos, so `air train estimator` can learn to recognise it
                                   where its plugin is not installed
    air_files.json                 sha256 and size of the files above, recorded at push time
    README.md                      model card: library air-restore, tags, base fingerprint, metrics, samples
    samples/{input,base,adapter}.png   before/after at 256 px, made by the project at push time

``air pull`` resolves the revision asked for to a commit sha and reads everything at that sha. Before
anything is downloaded it refuses a repo that holds a pickle-like file; it refuses an adapter made for
another base before downloading its weights; it checks every file against ``air_files.json``; then it
registers the adapter with :func:`air_restore.registry.store.install_adapter` (atomic). Files pass
through the Hugging Face cache, so a pulled revision can be re-installed with ``HF_HUB_OFFLINE=1``.

What the hashes protect against: a file changed, truncated or swapped after the push without
``air_files.json`` being rewritten. They do not authenticate the author: whoever can push to the repo
can rewrite ``air_files.json`` too, so pin a commit sha you trust (``air pull ORG/NAME@SHA``).

An unreachable Hub fails fast: every command starts with a request huggingface_hub does not retry
(create_repo, model_info, a file HEAD), and :func:`configure_http` gives its shared HTTP client a
connect timeout. Every failure is a one-line :class:`HubError`, and the failures that need no adapter
code (no network, no token, unknown repo or revision, pickle files) come before torch is imported.

This module holds what push and pull share (names, the file index, errors, the network) and ``air
search``; the transfers are in :mod:`.transfer`, the model card and samples in :mod:`.card`.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from ..core.training import VIEWS_FILE  # estimator views beside an adapter, optional
from .card import LIBRARY
from ..core.errors import InvalidValueError, UserError

if TYPE_CHECKING:
    from .store import InstalledAdapter

# torch, the store and huggingface_hub are imported where they are used: a command that fails on the
# network or on a refused repo answers before paying for torch's import (seconds on a small machine).

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "air_manifest.json")
OPTIONAL_FILES = (VIEWS_FILE,)
INDEX_FILE = "air_files.json"
INDEX_FORMAT = 1
# Formats that can run code when loaded (pickle and its wrappers); a repo holding one is refused whole.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")
REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
SHA_RE = re.compile(r"^[0-9a-f]{40}$")
CONNECT_TIMEOUT = 5.0  # seconds to open a connection to the Hub
READ_TIMEOUT = 30.0  # seconds without a byte before a request fails
META_TIMEOUT = 10.0  # whole-request limit for small metadata requests (repo info, file HEAD)


class HubError(UserError):
    """A Hub operation failed or was refused. One-line message that says what to do."""


@dataclass(frozen=True)
class PushResult:
    repo_id: str
    branch: str
    commit: str  # the commit sha to pin
    url: str
    files: dict[str, dict[str, Any]]  # air_files.json's "files"
    samples: bool


@dataclass(frozen=True)
class PullResult:
    name: str
    repo_id: str
    commit: str
    path: Path
    status: str  # "installed" | "updated" | "replaced" | "already installed"
    previous: str | None = None  # for "updated"/"replaced": what was there before
    offline: bool = False


# ---------------------------------------------------------------------------------------------- names


def parse_repo_spec(spec: str) -> tuple[str, str | None]:
    """``ORG/NAME[@REVISION]`` → (repo id, revision or None); anything else is a ValueError naming the form."""
    repo, sep, rev = spec.partition("@")
    if not REPO_RE.match(repo) or ".." in repo or (sep and not rev) or "@" in rev or rev.startswith("/"):
        raise InvalidValueError(f"{spec!r} is not ORG/NAME or ORG/NAME@REVISION "
                         "(e.g. alice/air-snow, alice/air-snow@main, alice/air-snow@<commit sha>)")
    return repo, rev or None


def push_repo_id(repo_id: str) -> str:
    """A repo to push to: ``ORG/NAME``, no revision (the branch is given separately)."""
    if "@" in repo_id:
        raise InvalidValueError(f"--repo {repo_id!r}: give ORG/NAME, and the branch with --revision")
    return parse_repo_spec(repo_id)[0]


def pickle_like(paths: list[str]) -> list[str]:
    """The paths whose format can execute code when loaded (sorted)."""
    return sorted(p for p in paths if p.lower().endswith(PICKLE_SUFFIXES))


# ---------------------------------------------------------------------------------------- file index


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def make_index(name: str, payload: dict[str, bytes]) -> dict[str, Any]:
    """``air_files.json`` for the adapter files in ``payload`` (path → bytes), optional files included."""
    paths = ADAPTER_FILES + tuple(p for p in OPTIONAL_FILES if p in payload)
    return {"format": INDEX_FORMAT, "name": name,
            "files": {p: {"sha256": sha256_bytes(payload[p]), "size": len(payload[p])} for p in paths}}


def indexed(index: dict[str, Any]) -> tuple[str, ...]:
    """The adapter files an index records: the required ones, then the optional ones it lists."""
    return ADAPTER_FILES + tuple(p for p in OPTIONAL_FILES if p in index["files"])


def parse_index(raw: bytes, where: str) -> dict[str, Any]:
    """A checked ``air_files.json``: format known, every adapter file listed with a sha256 and a size."""
    try:
        index = json.loads(raw)
    except ValueError:
        raise HubError(f"{where}: {INDEX_FILE} is not JSON") from None
    if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT or not isinstance(index.get("files"), dict):
        raise HubError(f"{where}: {INDEX_FILE} has an unknown format (upgrade air-restore?)")
    for p in indexed(index):
        entry = index["files"].get(p)
        if not (isinstance(entry, dict) and isinstance(entry.get("sha256"), str) and isinstance(entry.get("size"), int)):
            raise HubError(f"{where}: {INDEX_FILE} does not record {p}")
    return index


def check_views(path: Path, where: str) -> None:
    """Refuse a views file that is not one uint8 tensor ``views`` [N, V, 3, S, S] in safetensors (N samples of
    V views each, as ``core.training.estimator.save_views`` writes them), with at most one more, ``clean``, of
    the same shape (views of their clean versions)."""
    from safetensors import SafetensorError, safe_open

    found = {}
    try:
        with safe_open(str(path), framework="np") as f:
            keys = sorted(f.keys())
            if keys in (["views"], ["clean", "views"]):
                found = {k: (f.get_slice(k).get_shape(), f.get_slice(k).get_dtype()) for k in keys}
    except (SafetensorError, OSError, ValueError) as e:
        raise HubError(f"{where}: {VIEWS_FILE} is not a readable safetensors file ({e})") from None
    shape, dtype = found.get("views", (None, None))
    if (shape is None or dtype != "U8" or len(shape) != 5 or shape[2] != 3 or shape[3] != shape[4]
            or found.get("clean", (shape, dtype)) != (shape, dtype)):
        raise HubError(f"{where}: {VIEWS_FILE} must hold one uint8 tensor 'views' [N, V, 3, S, S] (and 'clean' of "
                       f"the same shape) (found {keys} {shape or ''} {dtype or ''})")


def check_file(path: Path, entry: dict[str, Any], name: str, where: str) -> None:
    """Refuse ``path`` unless its size and sha256 are those recorded at push time."""
    size, digest = path.stat().st_size, sha256_file(path)
    if size != entry["size"] or digest != entry["sha256"]:
        raise HubError(f"{where}: {name} does not match the hash recorded at push time (sha256 {digest[:12]}…, "
                       f"expected {entry['sha256'][:12]}…); the file was changed or corrupted, refusing to install it")


def _intact(folder: Path) -> bool:
    """Whether a store folder still matches the ``air_files.json`` it was installed with."""
    try:
        index = parse_index((folder / INDEX_FILE).read_bytes(), str(folder))
        for p in indexed(index):
            check_file(folder / p, index["files"][p], p, str(folder))
    except (OSError, HubError):
        return False
    return True


def installed_from(repo_id: str, *, commit: str | None = None, requested: str | None = None) -> InstalledAdapter | None:
    """The intact store adapter pulled from ``repo_id`` at ``commit`` (or asked for as ``requested``)."""
    from .store import local_adapters

    for a in local_adapters():
        s = a.source
        if a.error or s.get("kind") != "hub" or s.get("repo") != repo_id:
            continue
        if (commit is not None and s.get("revision") == commit) or (requested is not None and s.get("requested") == requested):
            if _intact(a.path):
                return a
    return None


# ------------------------------------------------------------------------------------------ network


def _network_errors() -> tuple[type[BaseException], ...]:
    """Transport errors of the HTTP library huggingface_hub uses (httpx2, httpx or requests, whichever it
    imported); looked up in sys.modules so that nothing extra is imported."""
    found: list[type[BaseException]] = []
    for module, names in (("httpx2", ("TransportError",)), ("httpx", ("TransportError",)),
                          ("requests", ("ConnectionError", "Timeout"))):
        mod = sys.modules.get(module)
        for n in names:
            if mod is not None and isinstance(getattr(mod, n, None), type):
                found.append(getattr(mod, n))
    return tuple(found)


def _endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def _network_message(e: BaseException) -> str:
    return (f"cannot reach the Hugging Face Hub at {_endpoint()} ({type(e).__name__}); check your connection "
            "(or HF_ENDPOINT). Adapters already pulled keep working offline; set HF_HUB_OFFLINE=1 to skip the network")


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), type(e).__name__)


def _auth_message(status: int, repo_id: str, writing: bool) -> str:
    if status == 401:
        return ("the Hub refused the token (401 Unauthorized): it is invalid or expired; "
                "run `hf auth login` or set HF_TOKEN to a valid token")
    what = f"write to {repo_id.split('/')[0]}" if writing else f"read {repo_id}"
    return f"the token may not {what} (403 Forbidden); use a token with that access (`hf auth login`, HF_TOKEN)"


@contextmanager
def hub_errors(repo_id: str, revision: str | None = None, *, writing: bool = False) -> Iterator[None]:
    """Turn huggingface_hub's and the HTTP library's exceptions into one-line :class:`HubError` messages."""
    from huggingface_hub.errors import (
        HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled, RemoteEntryNotFoundError,
        RepositoryNotFoundError, RevisionNotFoundError,
    )

    where = f"{repo_id}@{revision}" if revision else repo_id
    try:
        yield
    except OfflineModeIsEnabled:
        raise HubError(f"HF_HUB_OFFLINE=1 is set, so {where} cannot be fetched; unset it to use the network") from None
    except RevisionNotFoundError:
        raise HubError(f"{repo_id} has no revision {revision!r} (give a branch, a tag or a commit sha)") from None
    except RemoteEntryNotFoundError as e:
        missing = str(e.response.url).rsplit("/", 1)[-1] if e.response is not None else "a file"
        raise HubError(f"{where} has no {missing}: it is not an adapter pushed with `air push`") from None
    except RepositoryNotFoundError as e:
        status = e.response.status_code if e.response is not None else 404
        if status == 401 and writing:
            raise HubError(_auth_message(401, repo_id, writing)) from None
        raise HubError(f"no repo {repo_id} on {_endpoint()}, or it is private and your token cannot read it "
                       "(`hf auth login`, HF_TOKEN)") from None
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else None
        if status in (401, 403):
            raise HubError(_auth_message(status, repo_id, writing)) from None
        raise HubError(f"the Hub answered {status} for {where}: {_first_line(e)}") from None
    except LocalEntryNotFoundError as e:
        cause = e.__cause__ or e.__context__
        if cause is not None and isinstance(cause, _network_errors()):
            raise HubError(_network_message(cause)) from None
        if _offline():
            raise HubError(f"HF_HUB_OFFLINE=1 is set and {where} is not in the Hugging Face cache; "
                           "pull it once with network access") from None
        raise HubError(f"{where}: {_first_line(e)}") from None
    except _network_errors() as e:
        raise HubError(_network_message(e)) from None


def configure_http(*, connect_timeout: float = CONNECT_TIMEOUT, read_timeout: float = READ_TIMEOUT) -> None:
    """Give huggingface_hub's shared HTTP client a connect timeout (its default is none), so requests
    without their own timeout (create_repo, commits) fail in seconds when the Hub cannot be reached."""
    from huggingface_hub import get_session

    client = get_session()
    client.timeout = type(client.timeout)(read_timeout, connect=connect_timeout)


def _offline() -> bool:
    from huggingface_hub import constants

    return constants.is_offline_mode()


# -------------------------------------------------------------------------------------------- search


def search_adapters(query: str | None = None, *, limit: int = 50, token: str | None = None) -> list[dict[str, Any]]:
    """Repos on the Hub tagged ``air-restore`` (matching ``query`` if given): id, last change, tags."""
    from huggingface_hub import HfApi

    if _offline():
        raise HubError("HF_HUB_OFFLINE=1 is set: searching the Hub needs the network; unset it to search")
    with hub_errors("air-restore adapters"):
        # huggingface_hub retries list_models for ~25 s when the Hub cannot be reached; one plain
        # request first (not retried) makes an offline search fail in seconds.
        from huggingface_hub import get_session
        from huggingface_hub.utils import hf_raise_for_status

        hf_raise_for_status(get_session().get(f"{_endpoint()}/api/models", params={"filter": LIBRARY, "limit": 1}))
        models = list(HfApi(token=token).list_models(filter=LIBRARY, search=query or None, limit=limit))
    return [{"repo": m.id, "modified": m.last_modified, "tags": list(m.tags or [])} for m in models]
