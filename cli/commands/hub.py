"""``air push``, ``air pull``, ``air search``: adapters on the Hugging Face Hub."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from ..ui import console, fail, flag, say, stdout


def push_cmd(
    name: str = typer.Argument(..., help="An installed adapter (see `air list`)."),
    repo: str = typer.Option(..., "--repo", help="Hub repo ORG/NAME; created if it does not exist."),
    private: bool = flag("--private", help="Create the repo as private (an existing repo keeps its visibility)."),
    revision: Optional[str] = typer.Option(None, "--revision", help="Branch to push to (created from main if new). Default: main."),
    sample: Optional[Path] = typer.Option(
        None, "--sample", help="Clean photo for the card's before/after images (default: scikit-image's astronaut).",
    ),
    weights: Optional[Path] = typer.Option(None, help="Base weights (default: the bundled model)."),
) -> None:
    """Publish an installed adapter on the Hugging Face Hub, with a model card and before/after samples.

    Uses the token from `hf auth login` or HF_TOKEN. Prints the commit sha to pin with `air pull`.

      air push underwater --repo alice/air-underwater
    """
    from ...core.io.weights import read_base_info
    from ...registry import hub
    from ...registry.card import card_samples
    from ...registry.store import bundled_base_path, find_adapter
    from ...registry.transfer import check_pushable, ensure_repo, push_adapter, write_token

    hub.push_repo_id(repo)
    check_pushable(name)
    token = write_token()
    fingerprint = read_base_info(weights or bundled_base_path()).fingerprint
    a = find_adapter(name, fingerprint)
    if a.error:
        fail(f"adapter {name!r} cannot be pushed: {a.error}")
    hub.configure_http()
    ensure_repo(repo, private=private, branch=revision, token=token)  # token, rights, network: before work
    samples, note = card_samples(name, a.path, fingerprint, sample=sample, weights=weights)
    if samples is None:
        say("note: no before/after samples (install scikit-image, or give --sample PHOTO)", out=console)
    result = push_adapter(a.path, repo, private=private, branch=revision, samples=samples, samples_note=note,
                              token=token)
    say(f"pushed {name} to {result.repo_id}@{result.branch}: commit {result.commit}")
    say(f"pull this exact version with:  air pull {result.repo_id}@{result.commit}")


def pull_cmd(
    spec: str = typer.Argument(..., metavar="ORG/NAME[@REVISION]", help="Hub repo, optionally @branch, tag or commit sha."),
    overwrite: bool = flag("--overwrite", help="Replace an installed adapter of the same name from elsewhere."),
    weights: Optional[Path] = typer.Option(None, help="Base weights the adapter must fit (default: the bundled model)."),
) -> None:
    """Download an adapter from the Hugging Face Hub, verify it and install it in the local store.

    The revision is pinned to its commit sha; files are checked against the hashes recorded by
    `air push`; adapters for another base and repos with pickle files are refused.

      air pull alice/air-snow            air pull alice/air-snow@<commit sha>
    """
    from ...registry import hub
    from ...registry.transfer import pull_adapter

    hub.configure_http()
    r = pull_adapter(spec, weights=weights, overwrite=overwrite)
    at = f"{r.repo_id}@{r.commit[:12]}"
    if r.status == "already installed":
        offline = " (HF_HUB_OFFLINE=1: from the local store, not checked against the Hub)" if r.offline else ""
        say(f"{r.name} is already installed from {at} at {r.path}{offline}")
        return
    what = {"installed": "installed", "updated": f"updated (was {str(r.previous)[:12]})",
            "replaced": f"replaced the one {r.previous}"}[r.status]
    say(f"{r.name} from {at}: {what} → {r.path}")
    say(f"use it:  air restore photo.jpg --adapters {r.name}=1\nblend it automatically:  air train estimator --install")


def search_cmd(query: Optional[str] = typer.Argument(None, help="Words to look for in repo names.")) -> None:
    """List adapters published on the Hugging Face Hub (repos tagged air-restore)."""
    from rich.table import Table

    from ...registry import hub

    hub.configure_http()
    found = hub.search_adapters(query)
    table = Table(show_edge=False)
    for col in ("repo", "last change"):
        table.add_column(col)
    for m in found:
        table.add_row(escape(m["repo"]), f"{m['modified']:%Y-%m-%d}" if m["modified"] else "")
    stdout.print(table)
    stdout.print(f"{len(found)} found; install one with: air pull ORG/NAME", highlight=False)
