"""Fuzz counts for the bad-input suite (#13): how many inputs were tried, how many were handled, refused
with a clear error, or crashed, and how many files were lost.

    python benchmarks/reliability.py --examples 300 --out benchmarks/results/reliability.json
    python benchmarks/reliability.py --examples 5                 # tiny (the tests do this)

The same generators and the same contract as ``tests/test_fuzz.py`` (which asserts them on a fixed seed in
CI); here each input's outcome is counted instead of asserted, with hypothesis derandomized so a rerun
tries the same inputs:

- **image reader, random bytes** and **damaged files** (valid PNG/JPEG/TIFF/WebP/BMP files of every pixel
  layout, truncated and with bytes overwritten): *read* (a usable image), *refused* (``ImageReadError``
  with a one-line message naming the file) or *crash* (anything else);
- **``air remove NAME``** with typed strings (paths, dots, globs, unicode, control characters): *refused*
  (exit 2, one line), *crash* (a traceback or another exit code); *files lost* counts files that changed
  or vanished in the working folder;
- **``air restore --adapters SPEC``** with odd weights (NaN, inf, negative, huge, text): *restored*
  (exit 0 and an output), *refused* (exit 2, no output written) or *crash*.

It runs with ``AIR_HOME`` set to a fresh temporary store, so your installed adapters are never touched.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

import test_fuzz as fz  # noqa: E402  (the generators the tests use)

from air_restore.core.io.files import atomic_write_text  # noqa: E402
from air_restore.cli.main import app  # noqa: E402
from air_restore.core.io.images import ImageReadError, read_image  # noqa: E402


def _read_outcome(path: Path) -> str:
    try:
        read_image(path)
    except ImageReadError as e:
        return "refused" if "\n" not in str(e) and str(e).startswith(str(path)) else "crash"
    except Exception:  # noqa: BLE001 — counting, not hiding: any other exception is a crash
        return "crash"
    return "read"


def _cli(args: list[str], cwd: Path):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(app, args)
    finally:
        os.chdir(old)


def run(examples: int, work: Path) -> list[dict]:
    cfg = settings(max_examples=examples, derandomize=True, deadline=None, database=None,
                   suppress_health_check=list(HealthCheck))
    rows = []

    def tally(label: str, test, **strategies) -> None:
        counts: Counter = Counter()
        started = time.perf_counter()
        cfg(given(**strategies)(lambda **kw: counts.update(test(**kw))))()
        rows.append({"class": label, "tried": sum(v for k, v in counts.items() if k != "files_lost"),
                     **{k: counts.get(k, 0) for k in ("read", "restored", "refused", "crash", "files_lost")},
                     "seconds": round(time.perf_counter() - started, 1)})
        print(json.dumps(rows[-1]), flush=True)

    def random_bytes(data: bytes, suffix: str) -> list[str]:
        p = work / f"random{suffix}"
        p.write_bytes(data)
        return [_read_outcome(p)]

    def damaged(kind: str, cut: float, flips: list) -> list[str]:
        data = bytearray(fz.VALID[kind])
        for where, value in flips:
            data[int(where * (len(data) - 1))] = value
        p = work / f"damaged.{kind.rsplit('.', 1)[-1]}"
        p.write_bytes(bytes(data[: max(0, int(cut * len(data)))]))
        return [_read_outcome(p)]

    keep = work / "keep"
    keep.mkdir(exist_ok=True)
    (keep / "photo.png").write_bytes(fz.VALID["png"])

    def remove(name: str) -> list[str]:
        before = fz._snapshot(work)
        r = _cli(["remove", name], work)
        after = fz._snapshot(work)
        lost = sum(1 for k, v in before.items() if after.get(k) != v)
        clean_exit = r.exception is None or isinstance(r.exception, SystemExit)
        return ["refused" if r.exit_code == 2 and clean_exit else "crash"] + ["files_lost"] * lost

    src = work / "in.png"
    src.write_bytes(fz.VALID["png"])

    def adapters(spec: str) -> list[str]:
        out = work / "out.png"
        out.unlink(missing_ok=True)
        r = _cli(["restore", str(src), "-o", str(out), "--adapters", spec, "--device", "cpu"], work)
        clean_exit = r.exception is None or isinstance(r.exception, SystemExit)
        if r.exit_code == 0 and clean_exit and out.exists():
            return ["restored"]
        if r.exit_code == 2 and clean_exit and not out.exists():
            return ["refused"]
        return ["crash"]

    tally("image reader: random bytes", random_bytes, data=st.binary(max_size=4096), suffix=fz.suffixes)
    tally("image reader: damaged files", damaged, **fz.damage)
    tally("`air remove NAME`", remove, name=fz.names)
    tally("`air restore --adapters SPEC`", adapters, spec=fz.weights)
    return rows


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=300, help="inputs per class (hypothesis max_examples)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    before = os.environ.get("AIR_HOME")
    with tempfile.TemporaryDirectory() as d:
        os.environ["AIR_HOME"] = str(Path(d) / "store")  # a fresh, empty store: yours is never touched
        try:
            rows = run(args.examples, Path(d))
        finally:
            if before is None:
                os.environ.pop("AIR_HOME", None)
            else:
                os.environ["AIR_HOME"] = before
    res = {"examples_per_class": args.examples, "rows": rows,
           "crashes": sum(r["crash"] for r in rows), "files_lost": sum(r["files_lost"] for r in rows)}
    if args.out:
        atomic_write_text(args.out, json.dumps(res, indent=1) + "\n")
    return res


if __name__ == "__main__":
    main()
