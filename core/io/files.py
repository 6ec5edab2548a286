"""Files written safely: the one atomic-write helper of air-restore and the sweeping of what a killed
writer left behind. Images (:mod:`.images`), weights (:mod:`.weights`), the store and training state all
write through :func:`atomic_write`, so a reader never sees half a file and an interrupted write leaves at
most a hidden ``.NAME.xxxxxxxx.tmp`` that the next write of NAME removes once it is an hour old."""

from __future__ import annotations

import glob
import os
import re
import secrets
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import BinaryIO

__all__ = ["STALE_TMP_S", "atomic_write", "atomic_write_text", "check_writable", "sweep_temporaries"]


#: A hidden temporary file this old was left by a killed writer (no live write takes an hour).
STALE_TMP_S = 3600


#: The temporary names atomic_write uses: ``.NAME.xxxxxxxx.tmp`` beside NAME.
_TMP_NAME = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")


def sweep_temporaries(root: Path) -> list[Path]:
    """Remove every temporary file of atomic_write below ``root``, whatever its age: for a caller that owns
    ``root`` (``air batch`` and its OUTPUT), where no other writer can be running. Returns what it removed."""
    removed = []
    for p in Path(root).rglob(".*.tmp"):
        if _TMP_NAME.match(p.name) and p.is_file() and not p.is_symlink():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def _sweep_stale_tmp(dest: Path) -> None:
    """Delete ``.NAME.xxxxxxxx.tmp`` files that a writer of ``dest`` killed outright left behind."""
    now = time.time()
    for p in dest.parent.glob(f".{glob.escape(dest.name)}.*.tmp"):
        with suppress(OSError):
            if p.is_file() and not p.is_symlink() and now - p.lstat().st_mtime > STALE_TMP_S:
                p.unlink()


def check_writable(folder: Path) -> None:
    """Create ``folder`` if needed and check that files can be created in it (by creating an anonymous
    temporary file there), so that a read-only output is refused before any work, naming the folder."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise OSError(f"{folder}: cannot write in this folder ({e.strerror or e})") from None


def atomic_write(dest: Path, write: Callable[[BinaryIO], None], *, replace: bool = True) -> None:
    """Write via a hidden temporary file in ``dest``'s folder, fsync, then move it to ``dest``.

    With ``replace`` the move is ``os.replace``; without, it is a hard link that fails if ``dest``
    appeared meanwhile (another run writing the same output), so nothing is ever overwritten silently.
    The temporary file is created with ``os.open(..., 0o666)`` so the result gets the usual
    umask-derived permissions (``tempfile`` would make it private, 0o600). Temporary files of ``dest``
    left by a killed writer more than an hour ago are removed first.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    _sweep_stale_tmp(dest)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:
            continue
        except OSError as e:  # name the folder the user chose, not our temporary file
            raise OSError(f"{dest.parent}: cannot write in this folder ({e.strerror})") from None
    try:
        with open(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, dest)
            return
        try:
            os.link(tmp, dest)
        except FileExistsError:
            raise FileExistsError(f"{dest}: already exists (written meanwhile by another run; pass --overwrite "
                                  "to replace it)") from None
        except OSError:  # a file system without hard links: check, then rename
            if dest.exists():
                raise FileExistsError(f"{dest}: already exists (pass --overwrite to replace it)") from None
            os.replace(tmp, dest)
            return
        os.unlink(tmp)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(dest: Path, text: str) -> None:
    """:func:`atomic_write` of a UTF-8 text file (JSON state, logs written whole)."""
    atomic_write(Path(dest), lambda f: f.write(text.encode()))
