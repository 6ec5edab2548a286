"""Same-budget peer (issue #4): is the ABAIR design worth it against a plain all-in-one network trained on
the same data for the same number of steps?

``--mode shipped`` (default; a CPU can run it): what the adapters and the estimator buy on top of the
bundled base, against spending the same training on the network itself.

- **abair**: the bundled base, the five bundled adapters and the bundled estimator, as `air restore`
  runs them (nothing trained here).
- **peer**: the bundled base fine-tuned as a plain all-in-one network (every weight; L1 only, no
  segmentation loss; no adapters, no estimator) on Degradation CutMix crops of the same photos, for as
  many pixels as the five adapters' training saw together (their manifests' steps × batch × crop²),
  at the adapters' learning rate. Same network, same data, same total steps: the only difference is
  how the Phase II budget is spent.

``--mode scratch`` (a GPU budget; on a CPU only a toy one): both arms trained from scratch with one recipe (same photos, batch, crop, learning-rate schedule,
seed; `air_restore.core.training.base.train_base` for both networks):

- **abair**: the base restorer (AirUNet, width 24, segmentation head, Degradation CutMix, λ = 0.05) for
  ``--base-steps``, then one rank-4 LoRA adapter per built-in degradation for ``--adapter-steps`` each on
  the frozen base (`air_restore.core.training.adapter.train_adapter`; haze on crops twice as large with a
  quarter of the batch, as the bundled haze adapter, so every step sees the same pixels), blended per
  image by the bundled estimator. The estimator only reads the degraded image, not the base, so it is reused as shipped (its
  own training, a 136k-parameter classifier, is not counted in the step budget).
- **peer**: the same NAFNet-style U-Net widened to ``--peer-width`` (26 ≈ the base + five adapters + the
  estimator in parameters), trained as a plain all-in-one network: no segmentation loss (λ = 0), no
  adapters, no estimator, ``--base-steps + 5 · --adapter-steps`` steps on the same CutMix crops.

Both are then measured side by side on an evaluation set degraded at fixed seeds: the rows of
quality.py plus three stacked pairs, PSNR/SSIM as in quality.py, and seconds per image.

    python benchmarks/peer.py --data ../shared/data/train/clean --work runs/peer \
        --clean ../shared/data/eval/CBSD68 --limit 12 --out benchmarks/results/peer.json
    python benchmarks/peer.py --mode scratch --base-steps 3000 --adapter-steps 300 --batch-size 64 ...
    # scratch, the phases one by one (the two trainings can run at the same time):
    python benchmarks/peer.py --mode scratch ... --only abair;  python benchmarks/peer.py ... --only peer
    python benchmarks/peer.py --mode scratch ... --only eval --out benchmarks/results/peer.json

The trainings checkpoint into ``--work`` and resume; finished parts are not retrained.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import zlib
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from blending import pipeline, stacked  # noqa: E402
from quality import ROWS, _load, degrade, metrics  # noqa: E402

from air_restore.core.io.files import atomic_write_text  # noqa: E402
from air_restore.core.io.images import iter_image_paths  # noqa: E402
from air_restore.core.training.base import TrainBaseConfig, load_clean_folder, random_crops, train_base  # noqa: E402
from air_restore.core.training.adapter import TrainAdapterConfig, build_manifest, save_adapter, train_adapter  # noqa: E402
from air_restore.core.arch import AirUNetConfig, count_parameters  # noqa: E402
from air_restore.core.lora import BlendedConv2d  # noqa: E402
from air_restore.core.restore import restore  # noqa: E402
from air_restore.registry.discovery import get_degradation  # noqa: E402
from air_restore.registry.store import BUNDLED_PLUGINS, bundled_adapters  # noqa: E402
from air_restore.registry.store import bundled_base_path, load_base  # noqa: E402

MIXED = (("haze", "noise"), ("noise", "blur"), ("rain", "lowlight"))
MIN_SEVERITY = 0.1  # as `air train adapter --synthetic`


def _base_config(args, *, steps: int, width: int, seg_weight: float, lr: float) -> TrainBaseConfig:
    return TrainBaseConfig(steps=steps, batch_size=args.batch_size, crop=args.crop, lr=lr, warmup=args.warmup,
                           seg_weight=seg_weight, seed=args.seed, val_images=16, val_every=args.val_every,
                           checkpoint_every=args.val_every, model=AirUNetConfig(width=width))


def _train_net(args, folder: Path, cfg: TrainBaseConfig, init: Path | None = None) -> Path:
    out = folder / "base.safetensors"
    if out.exists():
        print(f"{out}: already trained", flush=True)
        return out
    synths = [get_degradation(n).synthesize for n in cfg.model.classes[1:]]
    return train_base(args.data, folder, synths, config=cfg, stack_with=get_degradation("noise").synthesize,
                      init=init, log=lambda s: print(s, flush=True))


def shipped_budget(args) -> dict:
    """The bundled adapters' training, from their manifests: pixels seen, and the peer's steps for as many."""
    per = {}
    for a in bundled_adapters():
        t = a.manifest["training"]
        per[a.name] = {"steps": t["steps"], "batch_size": t["batch_size"], "crop": t["crop"], "lr": t["lr"]}
    pixels = sum(v["steps"] * v["batch_size"] * v["crop"] ** 2 for v in per.values())
    lrs = {v["lr"] for v in per.values()}
    matched = -(-pixels // (args.batch_size * args.crop ** 2))
    out = {"adapters": per, "adapter_pixels": pixels, "batch_size": args.batch_size, "crop": args.crop,
           "peer_steps": min(matched, args.max_steps or matched), "data": args.data.name,
           "lr": args.lr or (lrs.pop() if len(lrs) == 1 else 5e-4)}
    if out["peer_steps"] < matched:
        out["capped_from"] = matched  # --max-steps: a smoke test, not a matched budget
    return out


def train_finetuned_peer(args) -> None:
    b = shipped_budget(args)
    base_cfg = load_base(bundled_base_path())[1].config
    cfg = _base_config(args, steps=b["peer_steps"], width=base_cfg.width, seg_weight=0.0, lr=b["lr"])
    _train_net(args, args.work / "peer-finetuned", cfg.model_copy(update={"model": base_cfg}), init=bundled_base_path())


def train_abair(args) -> None:
    folder = args.work / "abair"
    base_path = _train_net(args, folder, _base_config(args, steps=args.base_steps, width=24, seg_weight=0.05,
                                                      lr=args.lr or 1e-3))
    base, info = load_base(base_path)
    data, _ = load_clean_folder(args.data, min_side=args.crop)
    photos = data[: len(data) - min(16, len(data) // 5)]  # the photos train_base trained on
    for name in BUNDLED_PLUGINS:
        out = folder / "adapters" / name
        if out.exists():
            continue
        crop, batch = _adapter_crop(args, name)
        cfg = TrainAdapterConfig(steps=args.adapter_steps, batch_size=batch, crop=crop, seed=args.seed)
        synth = get_degradation(name).synthesize

        def sampler(batch: int, crop: int, g: torch.Generator, synth=synth):
            clean = random_crops(photos, batch, crop, g)
            severity = MIN_SEVERITY + (1 - MIN_SEVERITY) * torch.rand((batch,), generator=g)
            return synth(clean, g, severity).clamp(0, 1), clean

        started = time.time()
        model = train_adapter(base, sampler, config=cfg)
        manifest = build_manifest(name, info.fingerprint, cfg, base.config.lora_targets,
                                  data={"kind": "synthetic", "plugin": name, "folder": args.data.name,
                                        "images": len(photos)},
                                  metrics={}, wall_s=time.time() - started)
        save_adapter(model, out, manifest)
        print(f"adapter {name}: {cfg.steps} steps in {time.time() - started:.0f} s", flush=True)


def _adapter_crop(args, name: str) -> tuple[int, int]:
    """(crop, batch) of one adapter: ``--adapter-crop NAME=SIZE`` keeps the pixels per step of the others."""
    crop = dict(args.adapter_crop).get(name, args.crop)
    return crop, max(1, round(args.batch_size * (args.crop / crop) ** 2))


def _name_size(text: str) -> tuple[str, int]:
    name, _, size = text.partition("=")
    return name, int(size)


def train_peer(args) -> None:
    steps = args.base_steps + len(BUNDLED_PLUGINS) * args.adapter_steps
    _train_net(args, args.work / "peer", _base_config(args, steps=steps, width=args.peer_width, seg_weight=0.0,
                                                      lr=args.lr or 1e-3))


def _tasks(clean: list[torch.Tensor]):
    """(name, [(degraded, clean)]) per evaluation row: quality.py's rows, then the stacked pairs."""
    for row in ROWS:
        yield row[0], [(degrade(c, row, i), c) for i, c in enumerate(clean)]
    for parts in MIXED:
        name = "+".join(parts)
        yield name, [(stacked(c, parts, torch.Generator().manual_seed(zlib.crc32(name.encode()) + i), 0.5), c)
                     for i, c in enumerate(clean)]


def evaluate(args) -> dict:
    shipped = args.mode == "shipped"
    r = pipeline() if shipped else pipeline(args.work / "abair" / "base.safetensors",
                                            [args.work / "abair" / "adapters" / n for n in BUNDLED_PLUGINS])
    base, info = r.model, r.info
    peer, peer_info = load_base(args.work / ("peer-finetuned" if shipped else "peer") / "base.safetensors")
    zero = torch.zeros(len(r.adapters))
    methods = {
        "abair_base": lambda x: r.restore(x, zero).image,
        "abair_blended": lambda x: r.restore(x).image,
        "peer": lambda x: restore(peer, x).image,
    }
    paths = iter_image_paths([args.clean])[: args.limit or None]
    clean = [_load(p) for p in paths]
    for fn in methods.values():  # warm-up
        fn(clean[0])
    adapter_params = sum(m.A.numel() + m.B.numel() for m in r.model.modules() if isinstance(m, BlendedConv2d))
    est_params = count_parameters(r.estimator)
    out = {
        "set": args.clean.name, "images": len(clean), "torch_threads": torch.get_num_threads(),
        "mode": args.mode,
        "budget": shipped_budget(args) if shipped else {
            "base_steps": args.base_steps, "adapter_steps_each": args.adapter_steps, "adapters": list(r.adapters),
            "peer_steps": args.base_steps + len(r.adapters) * args.adapter_steps, "batch_size": args.batch_size,
            "crop": args.crop, "lr": args.lr or 1e-3, "data": args.data.name,
            "adapter_crops": {n: _adapter_crop(args, n) for n in r.adapters if n in dict(args.adapter_crop)}},
        "parameters": {"abair_base": count_parameters(base), "abair_adapters": adapter_params,
                       "estimator": est_params, "peer": count_parameters(peer)},
        "training": {"abair_base": info.training, "peer": peer_info.training},
        "val": {"abair_base": info.metrics, "peer": peer_info.metrics},
        "rows": [],
    }
    for name, samples in _tasks(clean):
        acc: dict[str, list[float]] = {}
        for deg, c in samples:
            ps, ss = metrics(deg, c)
            acc.setdefault("input_psnr", []).append(ps)
            acc.setdefault("input_ssim", []).append(ss)
            for key, fn in methods.items():
                t = time.perf_counter()
                with torch.no_grad():
                    y = fn(deg)
                acc.setdefault(f"{key}_s", []).append(time.perf_counter() - t)
                ps, ss = metrics(y, c)
                acc.setdefault(f"{key}_psnr", []).append(ps)
                acc.setdefault(f"{key}_ssim", []).append(ss)
        row = {"row": name, **{k: statistics.median(v) if k.endswith("_s") else statistics.fmean(v)
                               for k, v in acc.items()}}
        out["rows"].append(row)
        print(json.dumps(row, ensure_ascii=False), flush=True)
    return out


def main(argv: list[str] | None = None) -> dict | None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="clean training photos (both arms)")
    ap.add_argument("--work", type=Path, required=True, help="run folder: the two arms' weights and checkpoints")
    ap.add_argument("--mode", choices=("shipped", "scratch"), default="shipped",
                    help="shipped: bundled ABAIR vs the bundled base fine-tuned with the adapters' budget; "
                         "scratch: both arms trained from scratch here")
    ap.add_argument("--clean", type=Path, help="clean evaluation photos (needed for the eval phase)")
    ap.add_argument("--limit", type=int, default=0, help="evaluate on the first N images (0 = all)")
    ap.add_argument("--base-steps", type=int, default=1250, help="scratch: base steps")
    ap.add_argument("--adapter-steps", type=int, default=150, help="scratch: steps per adapter")
    ap.add_argument("--adapter-crop", type=_name_size, action="append", default=None, metavar="NAME=SIZE",
                    help="a larger crop for one adapter, with the batch cut to keep the pixels per step "
                         "(default: haze at twice --crop, as the bundled haze adapter: haze spans the whole photo)")
    ap.add_argument("--max-steps", type=int, default=0, help="shipped: cap the peer's steps (smoke tests only)")
    ap.add_argument("--peer-width", type=int, default=26, help="scratch: the peer's width")
    ap.add_argument("--batch-size", type=int, default=None, help="crops per step (default: 8 shipped, 16 scratch)")
    ap.add_argument("--crop", type=int, default=96)
    ap.add_argument("--lr", type=float, default=None,
                    help="peak learning rate (default: the adapters' in shipped mode, 1e-3 in scratch mode)")
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--val-every", type=int, default=250)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    ap.add_argument("--only", choices=("abair", "peer", "eval"), default=None,
                    help="run one phase (shipped mode has no abair training)")
    ap.add_argument("--out", type=Path, default=None, help="write the evaluation as JSON here")
    args = ap.parse_args(argv)
    if args.adapter_crop is None:
        args.adapter_crop = [("haze", 2 * args.crop)]
    if args.batch_size is None:
        args.batch_size = 8 if args.mode == "shipped" else 16
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.mode == "scratch" and args.only in (None, "abair"):
        train_abair(args)
    if args.only in (None, "peer"):
        train_peer(args) if args.mode == "scratch" else train_finetuned_peer(args)
    if args.only not in (None, "eval"):
        return None
    if args.clean is None:
        ap.error("--clean is needed to evaluate")
    res = evaluate(args)
    if args.out:
        atomic_write_text(args.out, json.dumps(res, indent=1, ensure_ascii=False))
    return res


if __name__ == "__main__":
    main()
