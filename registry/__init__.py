"""Discovery, the local store, weights files, the Hub, and :func:`load_pipeline`, the public entry point.

``from air_restore.registry import load_pipeline`` is imported lazily, so that importing the package
stays cheap."""


def __getattr__(name: str):
    if name in ("load_pipeline", "Pipeline"):
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
