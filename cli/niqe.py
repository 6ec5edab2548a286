"""Deprecated location: NIQE lives in :mod:`air_restore.core.niqe`."""

from ..core.niqe import PATCH, PristineModel, niqe, niqe_y, pristine_model  # noqa: F401
