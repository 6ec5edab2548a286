"""``air train base|adapter|estimator|udair``: train the models (the jobs are in
:mod:`air_restore.registry.training` and :mod:`air_restore.core.training`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..ui import StageBars, console, fail, flag, say, stdout


def base(
    data: Path = typer.Option(..., "--data", help="Folder of clean photos (any size ≥ the crop)."),
    out: Path = typer.Option(Path("runs/base"), "--out", help="Run folder: checkpoints, log.jsonl, base.safetensors."),
    steps: int = typer.Option(20000, help="Optimizer steps (an upper bound with --time-budget)."),
    batch_size: int = typer.Option(64, help="Crops per step."),
    crop: int = typer.Option(128, help="Crop side in pixels."),
    lr: float = typer.Option(1e-3, help="Peak learning rate."),
    time_budget: Optional[float] = typer.Option(None, help="Seconds: fit the step count to the measured speed."),
    compile: bool = flag("--compile", help="torch.compile the model (GPU)."),
    mixed_precision: str = typer.Option("no", metavar="no|bf16|fp16", help="no, bf16 or fp16 (GPU)."),
    val_every: int = typer.Option(1000, help="Validate every N steps."),
    seed: int = typer.Option(0, help="Seed of all randomness."),
    resume: bool = typer.Option(True, help="Resume from the run folder's checkpoint if there is one.", metavar=""),
    init: Optional[Path] = typer.Option(None, help="Start from these base weights (fine-tuning) instead of random."),
    warmup: int = typer.Option(200, help="Learning-rate warm-up steps."),
    recipe: Optional[str] = typer.Option(
        None, help="v1 (default): the built-in synthesizers; widened / widened2 ... widened7: degradation "
        "families and camera-pipeline stacks (base v2; widened2 also keeps dim photos dim, widened3 also brightens "
        "only clearly dark ones, widened4 only photos at a mean brightness of 0.02–0.12, widened5 also JPEG after "
        "haze and flat skies that must stay flat, widened6 also low light over whole crops only and half the "
        "crops' colours shuffled, widened7 also luminance noise and grey crops). With --chunked, the run's recorded "
        "recipe unless given."),
    chunked: bool = flag(
        "--chunked", help="Resumable chunks: train for --time-budget seconds, then write --out/base.safetensors "
        "(EMA, fp16) and --out/training-state.json; the same command again goes on from there. --steps is the "
        "whole run's schedule."),
) -> None:
    """Phase I: train the base restorer with Degradation CutMix on clean photos.

    Each crop is split into regions, each degraded by a different built-in plugin at a random
    severity; the loss is L1(restored, clean) + λ·CE(segmentation, labels). Runs through accelerate,
    so `accelerate launch -m air_restore.cli.main train base ...` uses several GPUs.

    With --chunked, a long run is made of short GPU spans: CONTRIBUTING.md has the recipe of base v2.
    """
    from ...core.families import CUTMIX, RECIPES
    from ...core.training.base import TrainBaseConfig, train_base
    from ...core.training.chunks import train_base_chunk
    from ...registry.discovery import get_degradation

    if not data.is_dir():
        fail(f"{data}: no such folder (give a folder of clean photos)")
    if recipe not in (None, "v1", *RECIPES):
        fail(f"unknown recipe {recipe!r}; use v1, {', '.join(RECIPES)}")
    if recipe in RECIPES and not chunked:
        fail(f"--recipe {recipe} is for chunked runs; add --chunked --time-budget SECONDS")
    if chunked and not time_budget:
        fail("--chunked needs --time-budget (seconds for this chunk)")
    cfg = TrainBaseConfig(
        steps=steps, batch_size=batch_size, crop=crop, lr=lr, time_budget=time_budget, compile=compile,
        mixed_precision=mixed_precision, val_every=val_every, seed=seed, warmup=warmup,
        checkpoint_every=max(val_every, 500), recipe=recipe or "v1",
        **(CUTMIX if recipe in RECIPES else {}),
    )
    synthesizer_for = lambda c: get_degradation(c).synthesize  # noqa: E731
    if chunked:
        state = train_base_chunk(data, out, config=cfg, time_budget=time_budget, init=init,
                                 change_recipe=recipe is not None, synthesizer_for=synthesizer_for,
                                 log=lambda t: say(t, out=console))
        say(f"{out}: step {state['step']} of {state['config']['steps']} after chunk {state['chunks']}, "
            f"held-out {state['metrics'].get('val_psnr', float('nan')):.2f} dB")
        return
    synths = [synthesizer_for(name) for name in cfg.model.classes[1:]]
    with StageBars({"base": "training"}, fields=True) as bars:
        def progress(step: int, total: int, info: dict) -> None:
            bars("base", step, total, f"loss {info['loss']:.4f}" if "loss" in info else "")

        path = train_base(data, out, synths, config=cfg, stack_with=synthesizer_for("noise"), resume=resume,
                          init=init, progress=progress, log=bars.log)
    say(str(path))


def adapter(
    name: str = typer.Argument(..., help="Degradation name, e.g. snow (lowercase)."),
    pairs: Optional[Path] = typer.Option(None, "--pairs", help="Folder with degraded/ and clean/ images matched by name."),
    synthetic: Optional[str] = typer.Option(None, "--synthetic", help="Plugin whose synthesizer degrades --clean photos."),
    clean: Optional[Path] = typer.Option(None, "--clean", help="Clean photos for --synthetic."),
    out: Path = typer.Option(..., "--out", help="Adapter folder to write (PEFT layout + manifest)."),
    over: Optional[str] = typer.Option(
        None, "--over", help="With --synthetic: comma-separated plugins this degradation often comes on top of "
        "(e.g. haze,rain for noise). A share of the crops gets one of them first, with the base's output on that "
        "crop as the target, so the adapter removes only its own degradation and blends better on stacked "
        "degradations. Measured for noise over haze,rain (BENCHMARKS.md): haze+noise +5.3 dB, rain+noise "
        "+1.2 dB, but noise alone -1.0 dB against the bundled adapter."),
    over_share: float = typer.Option(0.3, "--over-share", min=0.0, max=1.0,
                                     help="Share of the crops that get an --over degradation first."),
    steps: int = typer.Option(500, help="Optimizer steps."),
    rank: int = typer.Option(4, help="LoRA rank."),
    batch_size: int = typer.Option(8, help="Crops per step."),
    crop: int = typer.Option(96, help="Crop side in pixels."),
    lr: float = typer.Option(5e-4, help="Learning rate (cosine decay)."),
    holdout: float = typer.Option(0.1, help="Share of the images held out for the before/after metrics."),
    weights: Optional[Path] = typer.Option(None, help="Base weights (default: the bundled model)."),
    seed: int = typer.Option(0),
    family: bool = flag(
        "--family", help="With --synthetic NAME of a built-in degradation: draw each crop from its widened family "
        "(noise: also luminance noise, the same in every channel, as on grey photos; blur: also Gaussian; haze: "
        "also flat and noisy haze; rain: half of the crops then JPEG-compressed; jpeg: the torch codec or libjpeg; "
        "lowlight: also dim and dark-and-noisy, and half of the crops JPEG-compressed), "
        "so the adapter is not fitted to one synthesizer's quirks."),
    init: Optional[Path] = typer.Option(
        None, "--init", help="Start from this adapter folder (same base and --rank) instead of a fresh LoRA: "
        "teach an adapter new data (e.g. with --family) without losing what it learned."),
    shuffle_colours: float = typer.Option(
        0.0, "--shuffle-colours", min=0.0, max=1.0, help="Share of the crops whose colour channels are put in a "
        "random order (degraded and clean alike), so the adapter learns no colour prior from the photos: where "
        "noise or darkness destroy a region's colour, an adapter trained on green-shadowed nature photos paints it "
        "green (the bundled lowlight adapter: 1). Not for a degradation that is a colour cast (underwater)."),
    grey: float = typer.Option(
        0.0, "--grey", min=0.0, max=1.0, help="Share of the crops turned grey (degraded and clean alike), for "
        "black-and-white photos and scans: trained on colour photos alone, a network finds noise by its colour and "
        "leaves it on a grey photo (the bundled noise adapter: 0.25)."),
    clean_share: float = typer.Option(
        0.0, "--clean-share", min=0.0, max=1.0, help="Share of the crops given undegraded, their own target, so "
        "the adapter learns to leave clean pixels alone, and with them the segmentation head's reading of them, "
        "which the clean-pixel gate uses (the bundled noise adapter: 0.1)."),
    overwrite: bool = flag("--overwrite", help="Replace an existing adapter folder."),
) -> None:
    """Phase II: train one LoRA adapter on the frozen base, from real pairs or a plugin's synthesizer.

    Examples:

      air train adapter rain --pairs ../shared/data/pairs/rain_Rain100H --out adapters/rain

      air train adapter haze --synthetic haze --clean ../shared/data/train/clean --out adapters/haze

      air train adapter noise --synthetic noise --over haze,rain --clean DIR --out adapters/noise

      air train adapter lowlight --synthetic lowlight --family --init adapters/lowlight --clean DIR --out new/lowlight
    """
    from rich.table import Table

    from ...registry import training

    over_names = [n.strip() for n in over.split(",") if n.strip()] if over else []
    with StageBars({"adapter": f"training {name}"}) as bars:
        run = training.adapter(name, out, pairs=pairs, synthetic=synthetic, clean=clean, over=over_names,
                               over_share=over_share, steps=steps, rank=rank, batch_size=batch_size, crop=crop,
                               lr=lr, holdout=holdout, weights=weights, seed=seed, family=family,
                               init=init, shuffle_colours=shuffle_colours, grey=grey, clean_share=clean_share,
                               overwrite=overwrite, progress=bars)
    m = run.metrics
    table = Table(title=f"{name}: held-out PSNR ({run.held} images)", show_edge=False)
    for col in ("input", "base", "base + adapter", "gain over base"):
        table.add_column(col, justify="right")
    table.add_row(f"{m['heldout_psnr_input']:.2f}", f"{m['heldout_psnr_base']:.2f}", f"{m['heldout_psnr_adapter']:.2f}",
                  f"{m['heldout_psnr_adapter'] - m['heldout_psnr_base']:+.2f}")
    stdout.print(table)
    say(f"adapter → {out}  ({run.wall_s:.0f} s)")


def estimator(
    clean: Path = typer.Option(..., "--clean", help="Clean photos to degrade (e.g. ../shared/data/train/clean)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Estimator file to write (.safetensors)."),
    install: bool = flag("--install", help="Train for the installed adapters (`air list`) and "
                                 "install it in the local store, where `air restore` finds it."),
    adapters: Optional[str] = typer.Option(
        None, help="Comma-separated adapter names, in order; each needs a plugin with a synthesizer (ignored with "
        "--install; default: the bundled adapters, in their order)."),
    steps: int = typer.Option(5000, help="Optimizer steps."),
    batches: int = typer.Option(600, help="Training pool size, in batches of 16 degraded crops."),
    seed: int = typer.Option(0),
    clean_share: float = typer.Option(
        0.15, "--clean-share", min=0.0, max=0.9,
        help="Share of training crops left clean, with every weight 0 (so a good photo is left alone)."),
    targets: str = typer.Option(
        "restored", "--targets",
        help="restored: each training crop's targets are the installed adapters that actually restore it best "
        "(the base alone included), so an adapter that would make a stacked or mild degradation worse is "
        "switched off; needs the adapters installed. present: every degradation present, on."),
    strength: bool = flag(
        "--strength", help="Also learn how much of the restoration to keep per image (needs --targets restored). "
        "Experimental: so far it stayed near 1 and cost low light 0.85 dB (benchmarks/results/NOTES.md)."),
    min_severity: float = typer.Option(0.2, "--min-severity", min=0.0, max=1.0,
                                       help="Severity of the mildest synthesized degradation."),
    family: bool = flag("--family", help="Show each built-in degradation's widened family (as `air train "
                        "adapter --family` trains on), not only its plugin's synthesizer."),
    family_of: Optional[str] = typer.Option(
        None, "--family-of", help="Comma-separated adapters shown their family, the others their plugin's "
        "synthesizer (e.g. rain: its adapter's family holds rain saved as JPEG)."),
    dark_share: float = typer.Option(
        0.0, "--dark-share", min=0.0, max=1.0,
        help="Share of training crops taken from a darker exposure of the photo whose clean version is that dark "
        "too (a dim scene, not low light), so a well-exposed dark photo is not brightened."),
    dark_floor: float = typer.Option(
        0.25, "--dark-floor", min=0.01, max=1.0,
        help="The darkest exposure of those crops (gains drawn from [floor, 1]); the low-light plugin's are 0.3 "
        "and below."),
    init: Optional[Path] = typer.Option(None, "--init", help="An estimator file to start from (the same "
                                        "adapters, in order), e.g. registry/weights/estimator.safetensors."),
    distill: bool = flag("--distill", help="With --init and --dark-share: every view keeps the routing --init "
                         "gives it except the dark scenes, which learn theirs (one lesson added, the rest kept)."),
    dark_clean_only: bool = flag("--dark-clean-only", help="With --distill: the dark-scene lesson on clean dark "
                                 "crops only; every degraded view keeps --init's routing."),
    overwrite: bool = flag("--overwrite", help="Replace an existing file."),
) -> None:
    """Phase III: train the tiny estimator that gives each image one weight per adapter.

    The file records the ordered adapter names; it is refused for any other adapter set. By default its
    targets are judged by restoration through the installed adapters (BENCHMARKS.md, "Adapters").

    Examples:

      air train estimator --clean ../shared/data/train/clean --install     # after air pull / air remove

      air train estimator --clean DIR --adapters noise,haze --out est.safetensors

      air train estimator --clean DIR --family-of rain --out est.safetensors
    """
    from ...registry import training

    judged = " and judging them by restoration" if targets == "restored" else ""
    with StageBars({"views": "synthesizing views" + judged, "estimator": "training estimator"}) as bars:
        bars("views", 0, batches)
        bars("estimator", 0, steps)
        names, written = training.estimator(
            clean, out, install=install, steps=steps,
            adapters=None if adapters is None else [n.strip() for n in adapters.split(",") if n.strip()],
            batches=batches, seed=seed, clean_share=clean_share, targets=targets, strength=strength,
            min_severity=min_severity, family=family, overwrite=overwrite, progress=bars, dark_share=dark_share,
            dark_floor=dark_floor, init=init, distill=distill, dark_clean_only=dark_clean_only,
            family_of=None if family_of is None else [n.strip() for n in family_of.split(",") if n.strip()])
    say(f"estimator for {names} → {written}")


def udair(
    clean: Path = typer.Option(..., "--clean", help="Clean photos to degrade (e.g. ../shared/data/train/clean)."),
    out: Path = typer.Option(..., "--out", help="Refiner weights file to write (.safetensors)."),
    steps: int = typer.Option(1500, help="Optimizer steps (an upper bound with --time-budget)."),
    time_budget: Optional[float] = typer.Option(None, help="Seconds for the training loop: steps fitted to the speed."),
    max_severity: float = typer.Option(0.7, help="Highest training severity (benchmarks test above it)."),
    codebook: int = typer.Option(512, help="Codes in the degradation codebook."),
    seed: int = typer.Option(0),
    weights: Optional[Path] = typer.Option(None, help="Base weights (default: the bundled model)."),
    threads: int = typer.Option(0, help="CPU threads for torch (0: torch's default; 1 is fastest on a busy 2-core CPU)."),
    overwrite: bool = flag("--overwrite", help="Replace an existing file."),
) -> None:
    """Train the UDAIR refiner (codebook, CSCL, anchors) on the frozen base and adapters.

    Crops of the clean photos are degraded by the built-in plugins and restored once by the frozen
    restorer; the refiner learns a residual correction with L1 + λ·CSCL + VQ losses. Its DAM is trained
    only at test time (`air restore --tta`).
    """
    from ...registry import training

    with StageBars({"udair": "training udair"}, fields=True) as bars:
        run = training.udair(clean, out, steps=steps, time_budget=time_budget, max_severity=max_severity,
                             codebook=codebook, seed=seed, weights=weights, threads=threads, overwrite=overwrite,
                             progress=lambda s, t, i: bars("udair", s, t, f"L1 {i['l1']:.4f} CSCL {i['cscl']:.3f}"),
                             log=bars.log)
    m = run.metrics
    say(f"held-out crops: restored {m['val_psnr_restored']:.2f} dB → refined {m['val_psnr_refined']:.2f} dB "
        f"(adapters in the frozen restorer: {', '.join(run.adapters) or 'none'})", out=console)
    say(f"udair refiner ({run.fingerprint}) → {out}", out=console)
