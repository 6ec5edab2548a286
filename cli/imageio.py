"""Deprecated: image I/O moved to :mod:`air_restore.core.io.images` (it is library code, not CLI code).
This module re-exports its public names with a DeprecationWarning and will be removed in a later release."""

from __future__ import annotations

import warnings

from ..core.io.images import *  # noqa: F401,F403
from ..core.io.images import __all__  # noqa: F401

warnings.warn("air_restore.cli.imageio is deprecated; import from air_restore.core.io.images "
              "(or air_restore.core.io)", DeprecationWarning, stacklevel=2)
