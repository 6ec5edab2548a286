"""``air serve``: the web page (the web extra, Gradio)."""

from __future__ import annotations

import typer

from ..ui import console, fail, say, warn



def serve_cmd(
    host: str = typer.Option("127.0.0.1", help="Address to listen on. The default is this machine only; "
                             "0.0.0.0 lets anyone on your network use it."),
    port: int = typer.Option(7860, help="Port to listen on."),
    device: str = typer.Option("auto", metavar="auto|cpu|cuda", help="auto (GPU if there is one), cpu or cuda."),
    max_pixels: int = typer.Option(64_000_000, "--max-pixels", help="Refuse uploads with more pixels than this."),
) -> None:
    """Open the web page: drop photos, compare before and after, see the degradation map, move the
    adapter weights, download the result (same pipeline as `air restore`).

    Examples:

      air serve                      # then open http://127.0.0.1:7860

      air serve --port 8000 --device cpu

    Needs the web extra: pip install "air-restore[web]".
    """
    try:
        import gradio  # noqa: F401
    except ImportError:
        fail('air serve needs the web extra (Gradio): pip install "air-restore[web]"')
    from ...core.restore import resolve_device
    from ...web import build_app  # cli/web, installed as air_restore.web

    resolve_device(device)
    web = build_app(device=device, max_pixels=max_pixels)
    if host not in ("127.0.0.1", "localhost", "::1"):
        warn(f"listening on {host}: anyone who can reach this machine can use the page")
    say(f"air-restore page on http://{host}:{port}  (Ctrl-C to stop)", out=console)
    try:
        web.launch(server_name=host, server_port=port, show_error=True, quiet=True, max_file_size="200mb")
    except OSError as e:  # the port is taken, or the address is not this machine's
        fail(f"cannot listen on {host}:{port}: {e}")
