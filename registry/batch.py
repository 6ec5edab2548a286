"""``air batch``: restore a folder tree (local or any URI pyarrow reads: s3://, gs://) on Ray Data.

Each worker is a Ray actor that loads the pipeline once and restores batches of files through
:meth:`~air_restore.registry.pipeline.Pipeline.run`, reading and writing them with the same functions as
``air restore``, so an output is the file ``air restore`` writes. Outputs keep the input's relative
path and name and are written atomically (temporary name, then rename), so a rerun skips what exists
and a killed job loses at most the images in flight. A bad image is recorded in
``OUTPUT/_air_errors.jsonl`` and the job goes on. Ray is imported only here (``air-restore[scale]``).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..core.io.images import (
    IMAGE_SUFFIXES, ImageReadError, read_image, sweep_temporaries, write_image,
)
from ..core.errors import UserError
from ..core.defaults import OVERLAP

ERRORS_FILE = "_air_errors.jsonl"


class BatchError(UserError, ValueError):
    """The job cannot start (input missing or not a folder, Ray not reachable). One line."""


@dataclass
class Where:
    """A folder on a file system: local (``fs`` None, ``root`` a path) or pyarrow's (``root`` its path)."""

    uri: str
    fs: object | None
    root: str

    @classmethod
    def parse(cls, uri: str) -> Where:
        if "://" not in uri or uri.startswith("file://"):
            return cls(uri, None, str(Path(uri.removeprefix("file://")).expanduser().resolve()))
        from pyarrow import fs as pafs

        try:
            fs, root = pafs.FileSystem.from_uri(uri)
        except Exception as e:  # unknown scheme, missing credentials, no network: one line
            raise BatchError(f"{uri}: cannot open ({e})") from e
        return cls(uri, fs, root.rstrip("/"))

    def join(self, rel: str) -> str:
        return os.path.join(self.root, rel) if self.fs is None else f"{self.root}/{rel}"

    def list_images(self, skip: Where | None = None) -> list[str]:
        """Relative paths of the image files below the root, sorted; hidden files and ``skip``'s tree left out."""
        if self.fs is None:
            root = Path(self.root)
            if not root.is_dir():
                raise BatchError(f"{self.uri}: not a folder")
            inner = Path(skip.root) if skip is not None and skip.fs is None else None
            found = [p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                     and not any(part.startswith(".") for part in p.relative_to(root).parts)
                     and not (inner is not None and p.is_relative_to(inner))]
            return sorted(str(p.relative_to(root)) for p in found)
        from pyarrow import fs as pafs

        try:
            infos = self.fs.get_file_info(pafs.FileSelector(self.root, recursive=True))
        except Exception as e:
            raise BatchError(f"{self.uri}: cannot list ({e})") from e
        rels = [i.path[len(self.root) + 1:] for i in infos if i.type == pafs.FileType.File]
        return sorted(r for r in rels if Path(r).suffix.lower() in IMAGE_SUFFIXES
                      and not any(part.startswith(".") for part in r.split("/"))
                      and not (skip is not None and skip.fs is not None and skip.root.startswith(self.root + "/")
                               and self.join(r).startswith(skip.root + "/")))

    def exists(self, rel: str) -> bool:
        if self.fs is None:
            return os.path.isfile(self.join(rel))
        from pyarrow import fs as pafs

        return self.fs.get_file_info(self.join(rel)).type == pafs.FileType.File


@dataclass
class Summary:
    """What a job did."""

    total: int = 0  # images found
    skipped: int = 0  # outputs already there (resumed)
    restored: int = 0
    failed: int = 0
    megapixels: float = 0.0
    seconds: float = 0.0  # from the job's start (Ray and the workers starting included) to the last result
    first_result_s: float | None = None  # when the first result arrived (the start-up cost)
    errors_file: str | None = None
    errors: list[dict] = field(default_factory=list)


class RestoreWorker:
    """One Ray actor: the pipeline, loaded once; restores the files named in each batch. The job's
    settings are a class attribute of a subclass made per job (no constructor arguments to keep alive
    in Ray's object store)."""

    CFG: dict = {}

    def __init__(self) -> None:
        import torch

        from .pipeline import load_pipeline

        cfg = self.CFG
        torch.set_num_threads(cfg["threads"])
        self.cfg = cfg
        self.src, self.dst = Where.parse(cfg["input"]), Where.parse(cfg["output"])
        self.pipe = load_pipeline(cfg["weights"], device=cfg["device"], use_adapters=cfg["use_adapters"],
                                  tta=cfg["tta"])

    def __call__(self, batch: dict) -> dict:
        rows = []
        for rel in map(str, batch["path"]):
            try:
                rows.append((rel, True, "", self.restore_one(rel)))
            except ImageReadError as e:
                rows.append((rel, False, e.reason, 0.0))
            except Exception as e:  # one bad image never stops the job; its reason goes to the errors file
                rows.append((rel, False, f"{type(e).__name__}: {e}", 0.0))
        return {key: [r[i] for r in rows] for i, key in enumerate(("path", "ok", "reason", "megapixels"))}

    def restore_one(self, rel: str) -> float:
        cfg = self.cfg
        with tempfile.TemporaryDirectory(prefix="air-batch-") as tmp:
            src = self.src.join(rel) if self.src.fs is None else self._download(rel, Path(tmp))
            img = read_image(src, max_pixels=cfg["max_pixels"])
            res = self.pipe.run(img.rgb, adapters=cfg["adapters"], tile=cfg["tile"], overlap=cfg["overlap"])
            if self.dst.fs is None:
                write_image(img, res.image, self.dst.join(rel), overwrite=cfg["overwrite"])
            else:  # an object store: write locally, then one upload (an object appears whole when closed)
                local = write_image(img, res.image, Path(tmp) / ("out" + Path(rel).suffix), overwrite=True)
                target = self.dst.join(rel)
                self.dst.fs.create_dir(target.rsplit("/", 1)[0], recursive=True)  # a no-op on object stores
                with self.dst.fs.open_output_stream(target) as f:
                    f.write(local.read_bytes())
        return img.rgb.shape[1] * img.rgb.shape[2] / 1e6

    def _download(self, rel: str, tmp: Path) -> Path:
        local = tmp / ("in" + Path(rel).suffix)
        with self.src.fs.open_input_stream(self.src.join(rel)) as f:
            local.write_bytes(f.read())
        return local


def connect(address: str, num_cpus: int | None) -> None:
    """Start or join Ray: ``local`` starts one on this machine (no dashboard), ``auto`` joins the
    running cluster (``ray start --head``), ``ray://HOST:PORT`` a remote one through Ray Client."""
    import ray

    import logging
    import warnings

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no calls home
    # Ray Data's actors always get constructor arguments, and Ray's C++ side logs an error line about
    # it for each; only fatal ones reach the terminal.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    logging.getLogger("ray").setLevel(logging.ERROR)
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"ray\..*")
    if ray.is_initialized():
        return
    try:
        if address == "local":
            # No dashboard. Ray 2.60 replaces a loopback node address with the machine's own (services.
            # resolve_ip_for_localhost), so its ports listen on the network too: README says so.
            ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, logging_level="ERROR",
                     log_to_driver=False)
        else:
            ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    except Exception as e:
        raise BatchError(f"cannot start or reach Ray at {address!r}: {e}") from e


def run_batch(input: str, output: str, *, address: str = "local", workers: int = 1, gpus_per_worker: float = 0.0,
              batch_size: int = 4, tile: int | None = None, overlap: int = OVERLAP,
              adapters: dict[str, float] | None = None,
              use_adapters: bool = True, tta: bool = False, weights: str | None = None, device: str = "auto",
              max_pixels: int = 64_000_000, overwrite: bool = False, num_cpus: int | None = None,
              progress: Callable[[Summary], None] | None = None) -> Summary:
    """Restore every image below ``input`` into the same relative path below ``output``; returns counts."""
    import ray
    import ray.data

    src, dst = Where.parse(input), Where.parse(output)
    if src.fs is None and dst.fs is None and src.root == dst.root:
        raise BatchError("OUTPUT must be another folder than INPUT (outputs keep the input's file names)")
    paths = src.list_images(skip=dst)
    if dst.fs is None:
        Path(dst.root).mkdir(parents=True, exist_ok=True)
        sweep_temporaries(Path(dst.root))  # a job owns its OUTPUT: leftovers of killed writers go
    todo = paths if overwrite else [p for p in paths if not dst.exists(p)]
    summary = Summary(total=len(paths), skipped=len(paths) - len(todo))
    errors_path = dst.join(ERRORS_FILE)
    summary.errors_file = errors_path
    if not todo:
        return summary
    connect(address, num_cpus)
    cpus = ray.cluster_resources().get("CPU", 1.0)
    share = max(1.0, cpus // workers) if gpus_per_worker == 0 else 1.0
    cfg = {"input": input, "output": output, "weights": weights, "use_adapters": use_adapters, "tta": tta,
           "adapters": adapters, "tile": tile, "overlap": overlap, "max_pixels": max_pixels, "overwrite": overwrite,
           "threads": int(share), "device": ("cuda" if gpus_per_worker > 0 else "cpu") if device == "auto" else device}
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the caller shows one (images, images/s)
    # Blocks of about one batch each (at least a few per worker) so that every worker gets work early.
    blocks = min(len(todo), max(4 * workers, -(-len(todo) // batch_size)))
    ds = ray.data.from_items([{"path": p} for p in todo], override_num_blocks=blocks)
    worker = type("RestoreWorker", (RestoreWorker,), {"CFG": cfg})
    ds = ds.map_batches(worker, batch_size=batch_size,
                        concurrency=workers, num_cpus=share * 0.9, num_gpus=gpus_per_worker or None,
                        batch_format="numpy")
    start = time.perf_counter()
    with _open_errors(dst, errors_path) as log:
        try:
            for row in ds.iter_rows():
                _record(row, src, summary, log)
                summary.seconds = time.perf_counter() - start
                if summary.first_result_s is None:
                    summary.first_result_s = summary.seconds
                if progress:
                    progress(summary)
        except Exception as e:  # workers that cannot start or die (their pipeline, their GPU): one line
            lines = str(e).strip().splitlines()
            raise BatchError(f"the workers failed: {lines[-1] if lines else type(e).__name__} (restored so "
                             f"far: {summary.restored}; rerun to go on)") from None
    return summary


def _record(row: dict, src: Where, summary: Summary, log) -> None:
    """Count one result; a failure also goes to the errors file, flushed at once."""
    if row["ok"]:
        summary.restored += 1
        summary.megapixels += float(row["megapixels"])
        return
    summary.failed += 1
    entry = {"path": src.join(str(row["path"])), "reason": str(row["reason"])}
    summary.errors.append(entry)
    log.write(json.dumps(entry) + "\n")
    log.flush()


class _open_errors:
    """The errors file of this run, written line by line (a killed job keeps what it recorded)."""

    def __init__(self, dst: Where, path: str) -> None:
        self.dst, self.path = dst, path

    def __enter__(self):
        self.f = open(self.path, "w", encoding="utf-8") if self.dst.fs is None else tempfile.TemporaryFile("w+")
        return self.f

    def __exit__(self, *exc) -> None:
        empty = self.f.tell() == 0
        if self.dst.fs is not None and not empty:  # an object store takes the file whole
            self.f.seek(0)
            with self.dst.fs.open_output_stream(self.path) as out:
                out.write(self.f.read().encode())
        self.f.close()
        if self.dst.fs is None and empty and exc[0] is None:
            os.unlink(self.path)  # nothing failed this run: no errors file
