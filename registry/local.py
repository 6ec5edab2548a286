"""Deprecated name: the local store is :mod:`air_restore.registry.store` (the two modules' names were
swapped). This module re-exports it with a DeprecationWarning and will be removed in a later release."""

import warnings

from .store import *  # noqa: F401,F403
from .store import (  # noqa: F401  (private names star-import skips)
    _sha256, air_home, bundled_dir, local_estimator_path,
)

warnings.warn("air_restore.registry.local is deprecated; import from air_restore.registry.store",
              DeprecationWarning, stacklevel=2)
