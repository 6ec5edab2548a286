"""Which files a command restores, and where each result goes."""

from __future__ import annotations

from pathlib import Path

from ..errors import MissingPathError

#: Known image suffixes (lower case) and the Pillow format each one is written as.
IMAGE_SUFFIXES: dict[str, str] = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".jpe": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".bmp": "BMP",
}


def iter_image_paths(inputs: list[Path]) -> list[Path]:
    """Expand the command-line inputs into the list of image files to process.

    A folder gives its image files (known suffixes, any case; not recursive; hidden files skipped),
    sorted by name. A file is kept as given whatever its suffix, so that a wrong file gets a clear
    read error later. Duplicates are dropped. Raises ``FileNotFoundError`` for a missing input.
    """
    found: list[Path] = []
    seen: set[Path] = set()
    for entry in map(Path, inputs):
        if entry.is_dir():
            candidates = sorted(
                p for p in entry.iterdir()
                if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
            )
        elif entry.exists():
            candidates = [entry]
        else:
            raise MissingPathError(f"{entry}: no such file or directory")
        for candidate in candidates:
            key = candidate.resolve()
            if key not in seen:
                seen.add(key)
                found.append(candidate)
    return found


def output_path_for(input_path: Path, out: Path | None, *, suffix: str = "_restored", is_batch: bool) -> Path:
    """Where the restored version of ``input_path`` goes.

    No ``out``: beside the input, as ``<stem><suffix><ext>``. ``out`` an existing folder, or any
    ``out`` when several inputs are processed (``is_batch``): ``out/<input name>``. Otherwise ``out``
    is the output file itself.
    """
    input_path = Path(input_path)
    if out is None:
        return input_path.with_name(f"{input_path.stem}{suffix}{input_path.suffix}")
    out = Path(out)
    if is_batch or out.is_dir():
        return out / input_path.name
    return out
