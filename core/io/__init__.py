"""File I/O of the library: image files (:mod:`.images`) and the one atomic-write helper. The rest of
``core`` works on tensors only."""

from .images import (  # noqa: F401
    IMAGE_SUFFIXES, ImageReadError, LoadedImage, atomic_write, iter_image_paths, output_path_for, read_image, save_png,
    write_image,
)
