"""File I/O of the library: image files (:mod:`.images`). The rest of ``core`` works on tensors only."""

from .images import (  # noqa: F401
    IMAGE_SUFFIXES, ImageReadError, LoadedImage, iter_image_paths, output_path_for, read_image, save_png,
    write_image,
)
