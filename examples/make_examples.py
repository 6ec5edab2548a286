"""Make the example images in this folder from scikit-image's bundled photos, degraded by the
project's own plugins at fixed seeds. Rerun: python examples/make_examples.py"""

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import data

from air_restore.registry.discovery import get_degradation

HERE = Path(__file__).parent
EXAMPLES = [
    # file, photo, plugin, severity, options, seed
    ("noisy_astronaut.png", data.astronaut, "noise", 0.5, {"kind": "gaussian"}, 1),
    ("rainy_coffee.png", data.coffee, "rain", 0.6, {}, 2),
    ("hazy_chelsea.png", data.chelsea, "haze", 0.6, {}, 3),
    ("dark_rocket.png", data.rocket, "lowlight", 0.5, {}, 4),
]


def main() -> None:
    for name, photo, plugin, severity, kw, seed in EXAMPLES:
        x = torch.from_numpy(np.ascontiguousarray(photo())).permute(2, 0, 1).float()[None] / 255
        g = torch.Generator().manual_seed(seed)
        y = get_degradation(plugin).synthesize(x, g, severity, **kw)[0]
        img = Image.fromarray((y.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
        img.save(HERE / name, optimize=True)
        print(HERE / name, img.size)


if __name__ == "__main__":
    main()
