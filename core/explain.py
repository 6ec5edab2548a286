"""``--explain``: the degradation map (colour-coded segmentation overlay with a legend) and shares."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

# One colour per class, by name (unknown names get a colour from the fallback cycle).
CLASS_COLOURS = {
    "clean": (90, 90, 90),
    "noise": (230, 25, 75),
    "blur": (60, 180, 75),
    "haze": (255, 225, 25),
    "rain": (0, 130, 200),
    "lowlight": (145, 30, 180),
}
_FALLBACK = [(245, 130, 48), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128)]


def class_colours(classes: tuple[str, ...]) -> list[tuple[int, int, int]]:
    extra = iter(_FALLBACK * 4)
    return [CLASS_COLOURS.get(c) or next(extra) for c in classes]


def class_shares(seg_probs: torch.Tensor, classes: tuple[str, ...]) -> dict[str, float]:
    """Share of the image's pixels whose most likely class is each class (sums to 1)."""
    labels = seg_probs.argmax(0)
    counts = torch.bincount(labels.flatten(), minlength=len(classes)).float()
    return {c: (counts[i] / labels.numel()).item() for i, c in enumerate(classes)}


def degradation_map(rgb: torch.Tensor, seg_probs: torch.Tensor, classes: tuple[str, ...]) -> Image.Image:
    """The input in grey, tinted by each pixel's most likely class, with a legend strip below."""
    colours = np.array(class_colours(classes), dtype=np.float32)
    labels = seg_probs.argmax(0).numpy()
    grey = (rgb.clamp(0, 1) * torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(0).numpy() * 255
    overlay = 0.45 * grey[..., None] + 0.55 * colours[labels]
    h, w = labels.shape
    shares = class_shares(seg_probs, classes)
    font = ImageFont.load_default(size=max(12, min(h, w) // 40))
    row = int(font.size * 1.6)
    legend = Image.new("RGB", (w, row * len(classes) + row // 2), (255, 255, 255))
    draw = ImageDraw.Draw(legend)
    for i, (name, colour) in enumerate(zip(classes, class_colours(classes))):
        y = row // 4 + i * row
        draw.rectangle([row // 4, y, row // 4 + row - 4, y + row - 4], fill=colour, outline=(0, 0, 0))
        draw.text((row + row // 2, y), f"{name}: {100 * shares[name]:.1f}%", fill=(0, 0, 0), font=font)
    out = Image.new("RGB", (w, h + legend.height), (255, 255, 255))
    out.paste(Image.fromarray(overlay.clip(0, 255).astype(np.uint8)), (0, 0))
    out.paste(legend, (0, h))
    return out
