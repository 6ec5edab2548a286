"""``air serve``: the web page (Gradio). Drop photos, compare before and after, see what the model saw
where, move the adapter weights. Imported only by ``air serve`` and by a Space's ``app.py``:

    from . import build_app
    build_app().launch()

Every restoration goes through :meth:`air_restore.registry.pipeline.Pipeline.run` and
:func:`air_restore.core.io.images.write_image`, exactly as ``air restore`` does.
"""

from __future__ import annotations

import os
import tempfile
import threading
import uuid
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a local tool

import gradio as gr  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from air_restore.core.defaults import OVERLAP  # noqa: E402
from air_restore.core.io.images import (  # noqa: E402
    IMAGE_SUFFIXES, MAX_PIXELS, ImageReadError, read_image, write_image,
)
from air_restore.registry.pipeline import Pipeline, load_pipeline  # noqa: E402

#: The shipped example photos (present in a source checkout; an installed wheel has none).
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

_HELP = """# air-restore
Drop one or several photos: noise, blur, haze, rain and low light are removed without being told which.
The estimator picks how much of each adapter to blend for each photo; move the sliders to choose yourself.
The restored file keeps the input's format and bit depth (download below)."""


def _preview(rgb: torch.Tensor) -> Image.Image:
    """An 8-bit RGB picture of a [3, H, W] image in [0, 1] (the page shows this; the download is exact)."""
    return Image.fromarray((rgb.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy())


def _adapter_table(fingerprint: str) -> str:
    """The installed adapters as `air list` shows them, as a Markdown table."""
    from air_restore.registry.store import all_adapters

    rows = ["| adapter | origin | held-out PSNR base → adapter | status |", "|---|---|---|---|"]
    for a in all_adapters(fingerprint):
        status = "active" if a.error is None else "inactive: " + a.error
        rows.append(f"| {a.name} | {a.origin} | {a.heldout_gain} | {status} |")
    return "\n".join(rows) if len(rows) > 2 else "No adapters installed: the base model restores alone."


class _Session:
    """What one browser tab restored: per photo, the input, the output file and what was shown."""

    def __init__(self) -> None:
        self.items: list[dict] = []

    def names(self) -> list[str]:
        return [it["label"] for it in self.items]

    def get(self, label: str | None) -> dict | None:
        return next((it for it in self.items if it["label"] == label), self.items[0] if self.items else None)


def build_app(*, device: str = "auto", max_pixels: int = MAX_PIXELS, tile: int | None = None, overlap: int = OVERLAP,
              examples: Path | None = EXAMPLES, workdir: Path | None = None) -> gr.Blocks:
    """The web page as a Gradio app (call ``.launch()`` on it). The pipeline (bundled base, installed
    adapters, estimator) is loaded here, so a broken install fails now rather than on the first photo."""
    pipes: dict[tuple[bool, bool], Pipeline] = {}
    lock = threading.Lock()  # one restoration at a time: torch already uses every core for one photo
    out_root = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="air-serve-"))

    def pipeline(use_adapters: bool, tta: bool) -> Pipeline:
        if (use_adapters, tta) not in pipes:
            pipes[use_adapters, tta] = load_pipeline(device=device, use_adapters=use_adapters, tta=tta)
        return pipes[use_adapters, tta]

    main = pipeline(True, False)
    _unchanged: list = []  # "update nothing", one per output (filled once the outputs exist)
    names = main.adapters
    example_files = sorted(p for p in examples.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
                           and not p.stem.endswith(("_restored", "_map"))) if examples and examples.is_dir() else []

    def run_one(item: dict, adapters: dict[str, float] | None, tta: bool, no_adapters: bool, progress=None) -> dict:
        """Restore one photo into its output file (replacing this page's earlier output for it)."""
        img = read_image(item["src"], max_pixels=max_pixels)
        pipe = pipeline(not no_adapters, tta)
        with lock:
            res = pipe.run(img.rgb, adapters=None if no_adapters else adapters, tile=tile, overlap=overlap,
                           explain=True, progress=progress)
        write_image(img, res.image, item["out"], overwrite=True)
        item.update(before=_preview(img.rgb), after=_preview(res.image), weights=res.weights,
                    source=res.weights_source, shares=res.shares, tta=res.tta, strength=res.strength,
                    strength_source=res.strength_source, second=res.second, toned=res.toned,
                    map=res.degradation_map(img.rgb, pipe.classes))
        if adapters is None and not no_adapters:
            item["estimated"] = dict(res.weights)
        return item

    def view(session: _Session, label: str | None, note: str):
        """Every output for the photo ``label``: slider pair, map, shares, adapter weights, downloads."""
        it = session.get(label)
        files = [str(x["out"]) for x in session.items if "after" in x]
        if it is None or "after" not in it:
            return (session, note, gr.update(choices=session.names(), value=None), None, None, None,
                    files or None, *[gr.update() for _ in names])
        w = it["weights"]
        how = {"given": "your weights", "estimator": "the estimator's weights", "none": "the base model alone"}
        lines = [note, f"**{it['label']}**: restored with {how[it['source']]}"
                 + (f", keeping {100 * it['strength']:.0f}% of the restoration (the estimator's strength)"
                    if it.get("strength_source") == "estimator" else "")
                 + ("; restored twice: haze or low light led the first pass, and the second restored what they hid ("
                    + (", ".join(f"{n} {v:.2f}" for n, v in it["second"].items() if v >= 0.01) or "nothing") + ")"
                    if it.get("second") is not None else "")
                 + ("; low light led, so the large-scale brightness was refitted to the input's (no blotches on "
                    "flat areas)" if it.get("toned") else "")
                 + (f"; {it['tta']}" if it.get("tta") else "")]
        return (session, "\n\n".join(filter(None, lines)),
                gr.update(choices=session.names(), value=it["label"]), (it["before"], it["after"]), it["map"],
                it["shares"], files, *[gr.update(value=round(w.get(n, 0.0), 2)) for n in names])

    def restore_uploads(files, tta, no_adapters, session, progress=gr.Progress()):
        session = _Session()  # a new upload replaces the page's photos
        errors = []
        paths = [Path(f if isinstance(f, str) else f.name) for f in (files or [])]
        batch = out_root / uuid.uuid4().hex
        batch.mkdir(parents=True)
        for i, src in enumerate(paths):
            progress((i, len(paths)), desc=f"restoring {src.name}")
            out = batch / str(i) / f"{src.stem}_restored{src.suffix}"  # two uploads may share a name
            out.parent.mkdir()
            item = {"label": src.name if src.name not in session.names() else f"{i + 1}: {src.name}",
                    "src": src, "out": out}
            try:
                run_one(item, None, tta, no_adapters,
                        progress=lambda d, t, n=src.name: progress((d, t), desc=f"{n}: tiles", unit="tiles"))
            except ImageReadError as e:
                errors.append(f"error: {src.name}: {e.reason}")
                continue
            except (ValueError, OSError) as e:
                errors.append(f"error: {src.name}: {e}")
                continue
            session.items.append(item)
        note = "\n\n".join(errors) if errors else ""
        if not session.items and not errors:
            note = "Drop a photo above, or pick an example."
        return view(session, None, note)

    def restore_example(name, tta, no_adapters, session, progress=gr.Progress()):
        if not name:
            return view(session, None, "")
        return restore_uploads([str(examples / name)], tta, no_adapters, session, progress)

    def rerender(session, label, tta, no_adapters, *values):
        """A slider moved: restore the shown photo again with the sliders' weights (`--adapters`)."""
        it = session.get(label)
        if it is None or "after" not in it or no_adapters:
            return view(session, label, "Restore a photo with adapters on to set their weights." if no_adapters else "")
        given = {n: float(v) for n, v in zip(names, values)}
        if all(abs(given[n] - round(it["weights"].get(n, 0.0), 2)) < 0.005 for n in names):
            return _unchanged  # the sliders were set by the page itself, not moved
        try:
            run_one(it, given, tta, no_adapters)
        except (ImageReadError, ValueError, OSError) as e:
            return view(session, label, f"error: {it['label']}: {e}")
        return view(session, label, "")

    def reset(session, label, tta, no_adapters):
        """Back to the estimator's choice for the shown photo."""
        it = session.get(label)
        if it is None or "after" not in it:
            return view(session, label, "")
        try:
            run_one(it, None, tta, no_adapters)
        except (ImageReadError, ValueError, OSError) as e:
            return view(session, label, f"error: {it['label']}: {e}")
        return view(session, label, "")

    with gr.Blocks(title="air-restore") as app:
        session = gr.State(_Session())
        gr.Markdown(_HELP)
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(label="Photos (drop one or several)", file_count="multiple", elem_id="air-upload")
                example = gr.Dropdown(choices=[p.name for p in example_files], value=None, label="…or an example",
                                      elem_id="air-example", visible=bool(example_files))
                tta = gr.Checkbox(label="Refine each photo to itself (--tta, slower)", elem_id="air-tta")
                no_adapters = gr.Checkbox(label="Base model alone (--no-adapters)", elem_id="air-no-adapters")
                with gr.Accordion("Adapter weights (the estimator's choice; move to choose yourself)", open=True):
                    sliders = [gr.Slider(0.0, 1.5, value=0.0, step=0.01, label=n, elem_id=f"air-w-{n}")
                               for n in names]
                    reset_btn = gr.Button("Reset to the estimator's choice", elem_id="air-reset")
                with gr.Accordion("Installed adapters (`air list`)", open=False):
                    gr.Markdown(_adapter_table(main.restorer.info.fingerprint))
            with gr.Column(scale=2):
                status = gr.Markdown(elem_id="air-status")
                pick = gr.Dropdown(choices=[], label="Photo", elem_id="air-pick")
                compare = gr.ImageSlider(label="Before / after (drag the bar; full screen to zoom)", type="pil",
                                         format="png", elem_id="air-compare", max_height=700)
                with gr.Row():
                    seg_map = gr.Image(label="What the model sees where", type="pil", format="png",
                                       elem_id="air-map", interactive=False)
                    shares = gr.Label(label="Share of the image per class", elem_id="air-shares")
                download = gr.File(label="Restored files (input's format and bit depth)", file_count="multiple",
                                   elem_id="air-download", interactive=False)
        outputs = [session, status, pick, compare, seg_map, shares, download, *sliders]
        opts = [tta, no_adapters]
        upload.upload(restore_uploads, [upload, *opts, session], outputs)
        example.input(restore_example, [example, *opts, session], outputs)
        pick.input(lambda s, label: view(s, label, ""), [session, pick], outputs)
        _unchanged[:] = [gr.skip() for _ in outputs]
        for s in sliders:  # .change also fires when the page sets them; rerender then changes nothing
            s.change(rerender, [session, pick, *opts, *sliders], outputs, trigger_mode="always_last")
        reset_btn.click(reset, [session, pick, *opts], outputs)
    return app
