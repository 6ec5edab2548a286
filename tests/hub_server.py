"""A small, real Hugging Face Hub for tests: a stdlib HTTP server on 127.0.0.1 speaking the part of the Hub
protocol that huggingface_hub 2.x uses for ``air push``/``air pull`` (read from its source:
``hf_api.py``, ``_commit_api.py``, ``lfs.py``, ``file_download.py``). Point ``HF_ENDPOINT`` at
:attr:`HubServer.url` and set ``HF_HUB_DISABLE_XET=1`` (uploads then use the LFS protocol).

Endpoints (model repos only):

- ``POST /api/repos/create``                              create_repo (an initial commit with .gitattributes)
- ``POST /api/validate-yaml``                             card metadata check before a README commit
- ``GET  /api/whoami-v2``                                 whoami
- ``GET  /api/models``                                    list_models (filter=tag, search=substring)
- ``GET  /api/models/{repo}[/revision/{rev}]``            model_info / repo_info (siblings; sizes with blobs=1)
- ``GET  /api/models/{repo}/tree/{rev}[/{path}]``         list_repo_tree (recursive=1)
- ``POST /api/models/{repo}/branch/{branch}``             create_branch
- ``POST /api/models/{repo}/preupload/{rev}``             upload mode per file (lfs for binaries)
- ``POST /{repo}.git/info/lfs/objects/batch``             LFS batch (basic transfer)
- ``PUT  /lfs-objects/{oid}``                              LFS object upload (sha256 checked)
- ``POST /api/models/{repo}/commit/{rev}``                commit, NDJSON (file, lfsFile, deletedFile)
- ``HEAD/GET /{repo}/resolve/{rev}/{path}``               file metadata (X-Repo-Commit, ETag) and bytes

Auth: ``Authorization: Bearer TOKEN``; tokens are in :attr:`HubServer.tokens` (token → (user, "write" |
"read")). An unknown token is a 401 everywhere (like the Hub); writing needs a write token (401 without
one, 403 with a read token); a private repo reads as "not found" (401 RepoNotFound) without a valid token.

Test helpers: :meth:`HubServer.commit` (a server-side commit: add or replace files, e.g. a tampered file
or a pickle), :meth:`HubServer.head`, and :attr:`HubServer.requests` (what was asked, to check that an
offline command sent nothing). Run ``python tests/hub_server.py`` to start one by hand.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".png", ".jpg", ".bin", ".pt", ".pth", ".pkl", ".ckpt", ".npz", ".gz", ".zip")
SHA_RE = re.compile(r"^[0-9a-f]{40}$")
GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.png filter=lfs diff=lfs merge=lfs -text\n"


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class Entry:
    """One file of a commit; its bytes are in HubServer.blobs under sha256."""

    sha256: str
    size: int
    lfs: bool

    def pointer(self) -> bytes:
        return f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {self.size}\n".encode()

    def oid(self, blobs: dict[str, bytes]) -> str:
        """The git oid (of the LFS pointer for LFS files), as the Hub reports it."""
        return git_blob_oid(self.pointer() if self.lfs else blobs[self.sha256])

    def etag(self, blobs: dict[str, bytes]) -> str:
        return self.sha256 if self.lfs else git_blob_oid(blobs[self.sha256])


@dataclass
class Commit:
    sha: str
    parent: str | None
    message: str
    files: dict[str, Entry]
    date: str


@dataclass
class Repo:
    repo_id: str
    private: bool
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)
    created: str = ""


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None,
                 body: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}
        self.body = {"error": message, **(body or {})}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


class HubServer:
    """``with HubServer() as hub: ...`` — a Hub on 127.0.0.1 at ``hub.url``, in a background thread."""

    def __init__(self, tokens: dict[str, tuple[str, str]] | None = None) -> None:
        self.tokens = tokens if tokens is not None else {"hf_write_token": ("alice", "write"), "hf_read_token": ("bob", "read")}
        self.repos: dict[str, Repo] = {}
        self.blobs: dict[str, bytes] = {}  # sha256 hex → bytes (regular files and LFS objects)
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.RLock()
        self._counter = 0
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="hub-server", daemon=True)

    def __enter__(self) -> "HubServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # ------------------------------------------------------------------ test helpers (server side)

    def head(self, repo_id: str, branch: str = "main") -> str:
        return self.repos[repo_id].branches[branch]

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        with self.lock:
            c = self._resolve(self.repos[repo_id], revision)
            return {p: self.blobs[e.sha256] for p, e in c.files.items()}

    def create_repo(self, repo_id: str, *, private: bool = False) -> str:
        """A new repo with the Hub's initial commit (.gitattributes); returns that commit's sha."""
        with self.lock:
            repo = self.repos[repo_id] = Repo(repo_id, private, created=_now())
            return self._new_commit(repo, "main", {".gitattributes": self._store(".gitattributes", GITATTRIBUTES)}, (),
                                    "initial commit")

    def commit(self, repo_id: str, files: dict[str, bytes], *, message: str = "server-side commit",
               branch: str = "main", delete: tuple[str, ...] = ()) -> str:
        """Add or replace ``files`` (path → bytes) on ``branch`` in a new commit; returns its sha."""
        with self.lock:
            repo = self.repos[repo_id]
            entries = {p: self._store(p, data) for p, data in files.items()}
            return self._new_commit(repo, branch, entries, delete, message)

    # ------------------------------------------------------------------ model

    def _store(self, path: str, data: bytes) -> Entry:
        digest = hashlib.sha256(data).hexdigest()
        self.blobs[digest] = data
        return Entry(digest, len(data), self._is_lfs(path, len(data), data[:512]))

    @staticmethod
    def _is_lfs(path: str, size: int, sample: bytes) -> bool:
        return path.endswith(LFS_SUFFIXES) or size > 10_000_000 or b"\0" in sample

    def _new_commit(self, repo: Repo, branch: str, add: dict[str, Entry], delete, message: str) -> str:
        parent = repo.branches.get(branch)
        files = dict(repo.commits[parent].files) if parent else {}
        for p in delete:
            files = {k: v for k, v in files.items() if k != p and not k.startswith(p.rstrip("/") + "/")}
        files.update(add)
        self._counter += 1
        sha = hashlib.sha1(json.dumps([parent, message, self._counter, sorted((p, e.sha256) for p, e in files.items())])
                           .encode()).hexdigest()
        repo.commits[sha] = Commit(sha, parent, message, files, _now())
        repo.branches[branch] = sha
        return sha

    def _resolve(self, repo: Repo, revision: str) -> Commit:
        rev = unquote(revision)
        if rev in repo.branches:
            return repo.commits[repo.branches[rev]]
        if SHA_RE.match(rev) and rev in repo.commits:
            return repo.commits[rev]
        raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")

    def _user(self, headers, *, write: bool = False, repo: Repo | None = None) -> str | None:
        auth = headers.get("authorization") or ""
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        if token is not None and token not in self.tokens:
            raise HubError(401, "Invalid credentials in Authorization header", headers={
                "X-Error-Message": "Invalid credentials in Authorization header"})
        user, role = self.tokens[token] if token else (None, None)
        if write:
            if user is None:
                raise HubError(401, "You must be authenticated to access this resource")
            if role != "write":
                raise HubError(403, "You don't have the rights to write to this repo", headers={
                    "X-Error-Message": "You don't have the rights to write to this repo"})
        if repo is not None and repo.private and user is None:
            raise HubError(401, "Repository not found", "RepoNotFound")
        return user

    def _repo(self, repo_id: str, headers, *, write: bool = False) -> Repo:
        self._user(headers, write=write)
        repo = self.repos.get(repo_id)
        if repo is None:
            raise HubError(404, "Repository not found", "RepoNotFound")
        self._user(headers, write=write, repo=repo)
        return repo

    def _card(self, c: Commit) -> dict:
        if "README.md" not in c.files:
            return {}
        text = self.blobs[c.files["README.md"].sha256].decode("utf-8", "replace")
        m = re.match(r"^---\n(.*?)\n---\n", text, re.S)
        if not m:
            return {}
        import yaml  # a dependency of huggingface_hub

        data = yaml.safe_load(m.group(1))
        return data if isinstance(data, dict) else {}

    def _info(self, repo: Repo, c: Commit, *, blobs: bool) -> dict:
        card = self._card(c)
        siblings = []
        for p, e in sorted(c.files.items()):
            s: dict = {"rfilename": p}
            if blobs:
                s.update(size=e.size, blobId=e.oid(self.blobs))
                if e.lfs:
                    s["lfs"] = {"sha256": e.sha256, "size": e.size, "pointerSize": len(e.pointer())}
            siblings.append(s)
        return {"_id": hashlib.md5(repo.repo_id.encode()).hexdigest()[:24], "id": repo.repo_id,
                "modelId": repo.repo_id, "author": repo.repo_id.split("/")[0], "sha": c.sha,
                "lastModified": c.date, "createdAt": repo.created, "private": repo.private, "disabled": False,
                "gated": False, "downloads": 0, "likes": 0, "tags": list(card.get("tags") or []),
                "library_name": card.get("library_name"), "pipeline_tag": card.get("pipeline_tag"),
                "cardData": card or None, "siblings": siblings}

    # ------------------------------------------------------------------ routes

    def handle(self, h: "BaseHTTPRequestHandler", method: str) -> None:
        split = urlsplit(h.path)
        query = parse_qs(split.query)
        raw = split.path
        parts = [unquote(p) for p in raw.strip("/").split("/")]
        with self.lock:
            self.requests.append((method, raw))
        try:
            with self.lock:
                self._route(h, method, parts, query)
        except HubError as e:
            headers = dict(e.headers)
            if e.code:
                headers["X-Error-Code"] = e.code
            _send_json(h, e.status, e.body, headers)

    def _route(self, h, method: str, parts: list[str], query: dict) -> None:
        body = _read_body(h) if method in ("POST", "PUT") else b""
        if parts[:2] == ["api", "repos"] and parts[2:] == ["create"] and method == "POST":
            return self._create_repo(h, json.loads(body or b"{}"))
        if parts == ["api", "validate-yaml"] and method == "POST":
            return _send_json(h, 200, {"errors": [], "warnings": []})
        if parts == ["api", "whoami-v2"] and method == "GET":
            user = self._user(h.headers)
            if user is None:
                raise HubError(401, "Invalid user token.")
            return _send_json(h, 200, {"type": "user", "name": user, "orgs": []})
        if parts == ["api", "models"] and method == "GET":
            return self._list_models(h, query)
        if len(parts) >= 4 and parts[:2] == ["api", "models"]:
            repo_id, rest = f"{parts[2]}/{parts[3]}", parts[4:]
            if method == "GET" and not rest:
                repo = self._repo(repo_id, h.headers)
                return _send_json(h, 200, self._info(repo, self._resolve(repo, "main"), blobs="blobs" in query))
            if method == "GET" and len(rest) == 2 and rest[0] == "revision":
                repo = self._repo(repo_id, h.headers)
                return _send_json(h, 200, self._info(repo, self._resolve(repo, rest[1]), blobs="blobs" in query))
            if method == "GET" and len(rest) >= 2 and rest[0] == "tree":
                return self._tree(h, self._repo(repo_id, h.headers), rest[1], "/".join(rest[2:]), query)
            if method == "POST" and len(rest) == 2 and rest[0] == "branch":
                return self._create_branch(h, self._repo(repo_id, h.headers, write=True), rest[1], json.loads(body or b"{}"))
            if method == "POST" and len(rest) == 2 and rest[0] == "preupload":
                return self._preupload(h, self._repo(repo_id, h.headers, write=True), rest[1], json.loads(body))
            if method == "POST" and len(rest) == 2 and rest[0] == "commit":
                return self._commit(h, self._repo(repo_id, h.headers, write=True), rest[1], body)
        if len(parts) == 6 and parts[1].endswith(".git") and parts[2:] == ["info", "lfs", "objects", "batch"]:
            repo = self._repo(f"{parts[0]}/{parts[1][:-4]}", h.headers, write=True)
            return self._lfs_batch(h, repo, json.loads(body))
        if len(parts) == 2 and parts[0] == "lfs-objects" and method == "PUT":
            return self._lfs_put(h, parts[1], body)
        if len(parts) >= 5 and parts[2] == "resolve" and method in ("GET", "HEAD"):
            repo = self._repo(f"{parts[0]}/{parts[1]}", h.headers)
            return self._resolve_file(h, method, repo, parts[3], "/".join(parts[4:]))
        raise HubError(404, f"no route for {method} /{'/'.join(parts)}")

    def _create_repo(self, h, payload: dict) -> None:
        self._user(h.headers, write=True)
        name, org = payload.get("name"), payload.get("organization")
        repo_id = f"{org}/{name}" if org else f"{self._user(h.headers)}/{name}"
        if payload.get("type", "model") != "model":
            raise HubError(400, "this test Hub has model repos only")
        if repo_id in self.repos:
            raise HubError(409, "You already created this model repo", body={"url": f"{self.url}/{repo_id}"})
        self.create_repo(repo_id, private=payload.get("visibility") == "private" or payload.get("private") is True)
        _send_json(h, 200, {"url": f"{self.url}/{repo_id}", "name": repo_id, "id": repo_id})

    def _create_branch(self, h, repo: Repo, branch: str, payload: dict) -> None:
        if branch in repo.branches:
            raise HubError(409, f"Reference already exists: refs/heads/{branch}")
        start = self._resolve(repo, payload.get("startingPoint") or "main")
        repo.branches[branch] = start.sha
        _send_json(h, 200, {})

    def _list_models(self, h, query: dict) -> None:
        user = self._user(h.headers)
        tags, search = query.get("filter", []), (query.get("search") or [""])[0].lower()
        out = []
        for repo in sorted(self.repos.values(), key=lambda r: r.repo_id):
            if repo.private and user is None:
                continue
            info = self._info(repo, self._resolve(repo, "main"), blobs=False)
            labels = set(info["tags"]) | {info["library_name"]}
            if all(t in labels for t in tags) and search in repo.repo_id.lower():
                out.append({k: info[k] for k in ("_id", "id", "modelId", "sha", "lastModified", "private", "tags",
                                                 "library_name", "downloads", "likes")})
        limit = int((query.get("limit") or [len(out)])[0])
        _send_json(h, 200, out[:limit])

    def _tree(self, h, repo: Repo, rev: str, path: str, query: dict) -> None:
        c = self._resolve(repo, rev)
        recursive = (query.get("recursive") or ["false"])[0].lower() in ("1", "true")
        prefix = path.rstrip("/") + "/" if path else ""
        out, dirs = [], set()
        for p, e in sorted(c.files.items()):
            if not p.startswith(prefix):
                continue
            rel = p[len(prefix):]
            if "/" in rel and not recursive:
                dirs.add(prefix + rel.split("/", 1)[0])
                continue
            if recursive:
                parts = p.split("/")[:-1]
                dirs.update("/".join(parts[:i]) for i in range(len(prefix.split("/")), len(parts) + 1))
            item = {"type": "file", "oid": e.oid(self.blobs), "size": e.size, "path": p}
            if e.lfs:
                item["lfs"] = {"oid": e.sha256, "size": e.size, "pointerSize": len(e.pointer())}
            out.append(item)
        if path and not out and not dirs:
            raise HubError(404, f"{path} does not exist", "EntryNotFound", {"X-Repo-Commit": c.sha})
        out += [{"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0, "path": d}
                for d in sorted(dirs) if d]
        _send_json(h, 200, out)

    def _preupload(self, h, repo: Repo, rev: str, payload: dict) -> None:
        try:
            current = self._resolve(repo, rev).files
        except HubError:
            current = {}
        files = []
        for f in payload.get("files", []):
            sample = base64.b64decode(f.get("sample", ""))
            lfs = self._is_lfs(f["path"], int(f["size"]), sample)
            old = current.get(f["path"])
            oid = None if old is None else (old.sha256 if old.lfs else git_blob_oid(self.blobs[old.sha256]))
            files.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                          "oid": oid})
        _send_json(h, 200, {"files": files})

    def _lfs_batch(self, h, repo: Repo, payload: dict) -> None:
        if payload.get("operation") != "upload":
            raise HubError(400, "this test Hub only accepts LFS uploads")
        objects = []
        for o in payload.get("objects", []):
            obj = {"oid": o["oid"], "size": o["size"], "authenticated": True}
            if o["oid"] not in self.blobs:
                obj["actions"] = {"upload": {"href": f"{self.url}/lfs-objects/{o['oid']}", "header": {}}}
            objects.append(obj)
        _send_json(h, 200, {"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
                   content_type="application/vnd.git-lfs+json")

    def _lfs_put(self, h, oid: str, body: bytes) -> None:
        if hashlib.sha256(body).hexdigest() != oid:
            raise HubError(400, "uploaded bytes do not match the LFS oid")
        self.blobs[oid] = body
        _send_json(h, 200, {})

    def _commit(self, h, repo: Repo, rev: str, body: bytes) -> None:
        branch = unquote(rev)
        if branch not in repo.branches:
            raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
        header, add, delete = {}, {}, []
        for line in filter(None, body.split(b"\n")):
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                header = value
            elif key == "file":
                data = base64.b64decode(value["content"]) if value.get("encoding") == "base64" else value["content"].encode()
                add[value["path"]] = self._store(value["path"], data)
            elif key == "lfsFile":
                if value["oid"] not in self.blobs:
                    raise HubError(422, f"LFS object {value['oid']} of {value['path']} was never uploaded")
                data = self.blobs[value["oid"]]
                add[value["path"]] = Entry(value["oid"], len(data), True)
            elif key in ("deletedFile", "deletedFolder"):
                delete.append(value["path"])
            else:
                raise HubError(400, f"unknown commit operation {key!r}")
        parent = header.get("parentCommit")
        if parent and parent != repo.branches[branch]:
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        sha = self._new_commit(repo, branch, add, delete, header.get("summary", ""))
        _send_json(h, 200, {"success": True, "commitOid": sha, "commitUrl": f"{self.url}/{repo.repo_id}/commit/{sha}",
                            "hookOutput": ""})

    def _resolve_file(self, h, method: str, repo: Repo, rev: str, path: str) -> None:
        c = self._resolve(repo, rev)
        e = c.files.get(path)
        if e is None:
            raise HubError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": c.sha})
        data = self.blobs[e.sha256]
        status, start, end = 200, 0, len(data)
        m = re.match(r"bytes=(\d+)-(\d*)$", h.headers.get("Range") or "")
        if m and method == "GET":
            start = int(m.group(1))
            end = int(m.group(2)) + 1 if m.group(2) else len(data)
            status = 206
        headers = {"X-Repo-Commit": c.sha, "ETag": f'"{e.etag(self.blobs)}"', "Accept-Ranges": "bytes",
                   "Content-Type": "application/octet-stream", "Content-Length": str(end - start)}
        if e.lfs:
            headers.update({"X-Linked-Etag": f'"{e.sha256}"', "X-Linked-Size": str(e.size)})
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(data)}"
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        if method == "GET":
            h.wfile.write(data[start:end])


def _read_body(h: BaseHTTPRequestHandler) -> bytes:
    if (h.headers.get("Transfer-Encoding") or "").lower() == "chunked":
        out = bytearray()
        while True:
            size = int(h.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while h.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(out)
            out += h.rfile.read(size)
            h.rfile.readline()
    return h.rfile.read(int(h.headers.get("Content-Length") or 0))


def _send_json(h: BaseHTTPRequestHandler, status: int, obj, headers: dict | None = None,
               content_type: str = "application/json") -> None:
    data = json.dumps(obj).encode()
    h.send_response(status)
    h.send_header("Content-Type", content_type)
    h.send_header("Content-Length", str(len(data)))
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.end_headers()
    if h.command != "HEAD":
        h.wfile.write(data)


def _make_handler(server: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            server.handle(self, "GET")

        def do_HEAD(self) -> None:
            server.handle(self, "HEAD")

        def do_POST(self) -> None:
            server.handle(self, "POST")

        def do_PUT(self) -> None:
            server.handle(self, "PUT")

    return Handler


if __name__ == "__main__":
    with HubServer() as hub:
        print(f"test Hub at {hub.url}; tokens: {', '.join(f'{t} ({r})' for t, (_, r) in hub.tokens.items())}")
        print(f"  HF_ENDPOINT={hub.url} HF_HUB_DISABLE_XET=1 HF_TOKEN=hf_write_token air push NAME --repo alice/NAME")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
