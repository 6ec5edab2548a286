"""Check ``air_restore.core.niqe`` against BasicSR's own NIQE code (which matches the authors' MATLAB
release to 4 decimals), image by image.

    pip download basicsr==1.4.2 --no-deps --no-binary :all: --no-build-isolation -d /tmp/bsr
    tar xzf /tmp/bsr/basicsr-1.4.2.tar.gz -C /tmp/bsr
    python benchmarks/niqe_check.py --basicsr /tmp/bsr/basicsr-1.4.2 --out benchmarks/results/niqe_check.json

BasicSR's ``niqe.py`` and ``matlab_functions.imresize`` are executed from that source tree with only
their import lines replaced (scipy's ``convolve``; the cv2 and registry imports are not needed). Two
reference modes: ``float32`` (BasicSR as shipped: float32 luma and resize) and ``float64`` (the same
code in double precision, like MATLAB on double input). Needs scipy (the reference uses it; we do not).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from air_restore.core.io.files import atomic_write_text


def reference(basicsr: Path, dtype: str):
    """BasicSR's ``calculate_niqe`` (BGR, HWC, [0, 255]) run from its source in float32 or float64."""
    torch_dtype = torch.get_default_dtype()
    src = (basicsr / "basicsr/metrics/niqe.py").read_text()
    for line in ("import cv2\n", "from basicsr.metrics.metric_util import reorder_image, to_y_channel\n",
                 "from basicsr.utils.matlab_functions import imresize\n",
                 "from basicsr.utils.registry import METRIC_REGISTRY\n", "@METRIC_REGISTRY.register()\n"):
        src = src.replace(line, "")
    src = src.replace("from scipy.ndimage.filters import convolve", "from scipy.ndimage import convolve")
    mat = (basicsr / "basicsr/utils/matlab_functions.py").read_text()
    np_t = np.float32 if dtype == "float32" else np.float64
    if dtype == "float64":
        src = src.replace("img = img.astype(np.float32)", "img = img.astype(np.float64)")
        mat = mat.replace(".float()", ".double()").replace("torch.FloatTensor(", "torch.DoubleTensor(")
    mf: dict = {}
    exec(compile(mat, "matlab_functions.py", "exec"), mf)

    def to_y_channel(img):  # basicsr.metrics.metric_util.to_y_channel for BGR input
        return (np.dot(img.astype(np_t) / 255.0, [24.966, 128.553, 65.481]) + 16.0)[..., None]

    def imresize(*a, **k):
        torch.set_default_dtype(torch.float64 if dtype == "float64" else torch.float32)
        try:
            return mf["imresize"](*a, **k)
        finally:
            torch.set_default_dtype(torch_dtype)

    ns = {"imresize": imresize, "to_y_channel": to_y_channel, "reorder_image": lambda img, input_order: img,
          "__file__": str(basicsr / "basicsr/metrics/niqe.py")}
    exec(compile(src, "niqe.py", "exec"), ns)
    return ns["calculate_niqe"]


def images(real: Path | None, every: int) -> dict[str, np.ndarray]:
    from skimage import data

    out = {k: getattr(data, k)() for k in ("astronaut", "coffee", "chelsea", "rocket")}
    rng = np.random.default_rng(0)
    out["astronaut + σ=25 noise"] = np.clip(out["astronaut"] + rng.normal(0, 25, out["astronaut"].shape), 0, 255
                                           ).astype(np.uint8)
    if real and real.is_dir():
        for p in sorted(real.glob("*/*"))[::every]:
            with Image.open(p) as im:
                out[f"real/{p.parent.name}/{p.name}"] = np.asarray(im.convert("RGB"))
    return out


def main(argv: list[str] | None = None) -> dict:
    from air_restore.core.niqe import niqe

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--basicsr", type=Path, default=Path(os.environ.get("BASICSR_SRC", "/tmp/bsr/basicsr-1.4.2")),
                    help="an unpacked basicsr source tree")
    ap.add_argument("--real", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/real")
    ap.add_argument("--every", type=int, default=12, help="take every N-th real photo")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    refs = {m: reference(args.basicsr, m) for m in ("float32", "float64")}
    rows = []
    for name, a in images(args.real, args.every).items():
        ours = niqe(torch.from_numpy(a.astype(np.float32) / 255).permute(2, 0, 1))
        row = {"image": name, "size": f"{a.shape[1]}×{a.shape[0]}", "ours": ours}
        for m, fn in refs.items():
            row[f"basicsr_{m}"] = fn(a[..., ::-1].astype(np.float64), 0)
        rows.append(row)
        print(json.dumps(row, ensure_ascii=False), flush=True)
    res = {"basicsr": args.basicsr.name, "rows": rows,
           **{f"max_abs_diff_{m}": max(abs(r["ours"] - r[f"basicsr_{m}"]) for r in rows) for m in refs}}
    if args.out:
        atomic_write_text(args.out, json.dumps(res, indent=1, ensure_ascii=False))
    return res


if __name__ == "__main__":
    main()
