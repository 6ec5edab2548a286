"""Synthetic degradations, written physically, in pure torch.

Every function takes a clean batch ``x`` [B, 3, H, W] in [0, 1] (sRGB), a ``torch.Generator`` on the
same device (all randomness comes from it), and a ``severity`` in [0, 1] (a float, or a tensor [B]
with one severity per image), and returns the degraded batch in [0, 1]. Same generator state, same
output: benchmarks fix seeds by seeding the generator.

- noise: additive Gaussian or Poisson–Gaussian (signal-dependent) noise, σ up to 50/255.
- blur: camera-shake motion (a curved trajectory) or defocus (an anti-aliased disk) kernels.
- haze: atmospheric scattering I = J·t + A·(1 − t), t = exp(−β·d), d a smooth random depth map,
  computed in linear RGB.
- rain: two or three layers of slanted streaks (near layers long, wide and bright; far ones short,
  thin and dim), motion-blurred seeds rather than 1-px bars, screen-blended, plus a veil.
- lowlight: exposure cut in linear RGB, Poisson–Gaussian sensor noise, then the sRGB curve and a
  random extra gamma.
- mono_noise: luminance noise, the same in every channel (grayscale photos, film grain, a phone's
  luma noise after its chroma denoising).
- jpeg: baseline JPEG in torch (:func:`jpeg`) or through libjpeg (:func:`jpeg_codec`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MAX_NOISE_SIGMA = 50.0 / 255.0
#: Luma weights (ITU-R BT.601, as Pillow's "L" mode reads a colour photo).
LUMA = (0.299, 0.587, 0.114)


from .synthesis import (  # noqa: F401  (the helpers, also public here: D.rand, D.severity_tensor, ...)
    choice, conv_per_image, gaussian_kernel, linear_to_srgb, per_image, rand, randn, severity_tensor, smooth_field,
    splat_path, srgb_to_linear, uniform,
)


# ------------------------------------------------------------------------------------ degradations


def noise(
    x: torch.Tensor, g: torch.Generator, severity: float | torch.Tensor, *, kind: str = "random"
) -> torch.Tensor:
    """Gaussian (σ = severity·50/255) or Poisson–Gaussian noise with the same std at mid-grey.

    kind: "gaussian", "poisson_gaussian" or "random" (each image draws one of the two).
    """
    b = x.shape[0]
    sigma = per_image(severity_tensor(severity, b, x.device) * MAX_NOISE_SIGMA)
    if kind not in ("gaussian", "poisson_gaussian", "random"):
        raise ValueError(f"unknown noise kind {kind!r}; use gaussian, poisson_gaussian or random")
    n = randn(x.shape, g, x.device)
    gaussian = x + sigma * n
    if kind == "gaussian":
        return gaussian.clamp(0, 1)
    # var(x) = a·x + b², with var(0.5) = σ²: shot noise a = 1.5σ², read noise b = σ/2.
    std = torch.sqrt(1.5 * sigma.square() * x.clamp(0, 1) + (0.5 * sigma).square())
    pg = x + std * n
    if kind == "poisson_gaussian":
        return pg.clamp(0, 1)
    pick = per_image(rand((b,), g, x.device) < 0.5)
    return torch.where(pick, gaussian, pg).clamp(0, 1)


def curved_kernels(severity: torch.Tensor, g: torch.Generator, *, size: int = 31) -> torch.Tensor:
    """Smooth camera-motion kernels [B, size, size]: a curved trajectory of length 3–24 px."""
    b, device = severity.shape[0], severity.device
    n = 48
    length = 3 + severity * 21
    angle = uniform(0, math.pi, (b,), g, device)
    bend = uniform(-0.6, 0.6, (b,), g, device) * severity  # curvature of the trajectory
    t = torch.linspace(-0.5, 0.5, n, device=device).view(1, n)
    along = t * length.view(-1, 1)
    across = (t.square() - 1 / 12) * bend.view(-1, 1) * length.view(-1, 1)
    cos, sin = torch.cos(angle).view(-1, 1), torch.sin(angle).view(-1, 1)
    pts = torch.stack([along * cos - across * sin, along * sin + across * cos], dim=-1)
    return splat_path(pts, size, sigma=0.6)


def shake_kernels(severity: torch.Tensor, g: torch.Generator, *, size: int = 31) -> torch.Tensor:
    """Hand-shake kernels [B, size, size]: the random trajectories of Boracchi & Foi ("Modeling the
    performance of image restoration from motion blur", IEEE TIP 2012; the kernels of DeblurGAN): a point
    moving at constant speed whose velocity takes Gaussian perturbations (anxiety 0.05–0.5 per step), a
    pull back to the start (centripetal 0–0.004 per step of distance) and, with probability 0–0.03 per step,
    an impulsive jerk turning it by up to 180°; the path's bounding box scaled to 4–28 px, centred on its mean
    (no shift) and shrunk where it would leave the kernel."""
    b, device = severity.shape[0], severity.device
    n = 64
    anxiety = uniform(0.05, 0.5, (b, 1), g, device)
    pull = uniform(0.0, 0.004, (b, 1), g, device)
    p_jerk = uniform(0.0, 0.03, (b, 1), g, device)
    angle = uniform(0, 2 * math.pi, (b,), g, device)
    v = torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1)
    pos = torch.zeros(b, 2, device=device)
    pts = []
    for _ in range(n):
        jerk = rand((b, 1), g, device) < p_jerk
        turn = uniform(-math.pi, math.pi, (b,), g, device)
        cos, sin = torch.cos(turn), torch.sin(turn)
        turned = torch.stack([v[:, 0] * cos - v[:, 1] * sin, v[:, 0] * sin + v[:, 1] * cos], dim=-1)
        v = torch.where(jerk, turned, v) + anxiety * randn((b, 2), g, device) - pull * pos
        v = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        pos = pos + v
        pts.append(pos)
    pts = torch.stack(pts, dim=1)  # [B, n, 2]
    span = (pts.amax(1) - pts.amin(1)).amax(-1).clamp_min(1e-6).view(-1, 1, 1)
    pts = (pts - pts.mean(1, keepdim=True)) * (4 + severity * 24).view(-1, 1, 1) / span  # centred: no shift
    reach = pts.abs().amax(dim=(1, 2), keepdim=True).clamp_min(1e-6)
    return splat_path(pts * ((size - 3) / 2 / reach).clamp(max=1.0), size, sigma=0.6)  # inside the kernel


def motion_kernels(severity: torch.Tensor, g: torch.Generator, *, size: int = 31) -> torch.Tensor:
    """Camera-motion kernels [B, size, size]: half smooth curves (:func:`curved_kernels`), half hand shake
    (:func:`shake_kernels`), drawn per image."""
    curved, shake = curved_kernels(severity, g, size=size), shake_kernels(severity, g, size=size)
    pick = (rand((severity.shape[0],), g, severity.device) < 0.5).view(-1, 1, 1)
    return torch.where(pick, curved, shake)


def defocus_kernels(severity: torch.Tensor, *, size: int = 31) -> torch.Tensor:
    """Anti-aliased disk kernels [B, size, size], radius 1–8 px."""
    radius = 1 + severity * 7
    r = torch.arange(size, device=severity.device, dtype=torch.float32) - (size - 1) / 2
    dist = torch.sqrt(r.view(1, -1, 1).square() + r.view(1, 1, -1).square())
    k = (radius.view(-1, 1, 1) + 0.5 - dist).clamp(0, 1)
    return k / k.sum(dim=(-2, -1), keepdim=True)


def blur(x: torch.Tensor, g: torch.Generator, severity: float | torch.Tensor, *, kind: str = "random") -> torch.Tensor:
    """Motion (camera shake) or defocus blur. kind: "motion", "defocus" or "random"."""
    b = x.shape[0]
    s = severity_tensor(severity, b, x.device)
    if kind not in ("motion", "defocus", "random"):
        raise ValueError(f"unknown blur kind {kind!r}; use motion, defocus or random")
    motion = motion_kernels(s, g)
    if kind == "motion":
        k = motion
    elif kind == "defocus":
        k = defocus_kernels(s)
    else:
        pick = (rand((b,), g, x.device) < 0.6).view(-1, 1, 1)
        k = torch.where(pick, motion, defocus_kernels(s))
    return conv_per_image(x, k).clamp(0, 1)


def depth_map(batch: int, h: int, w: int, g: torch.Generator, device) -> torch.Tensor:
    """Plausible scene depth [B, 1, H, W] in [0, 1]: a random vertical slope (far at the top) plus a
    smooth random field."""
    ramp = torch.linspace(1, 0, h, device=device).view(1, 1, h, 1).expand(batch, 1, h, w)
    tilt = per_image(uniform(0.2, 0.8, (batch,), g, device))
    field = smooth_field(batch, h, w, g, device, cells=4)
    d = tilt * ramp + (1 - tilt) * field
    lo = d.amin(dim=(-2, -1), keepdim=True)
    hi = d.amax(dim=(-2, -1), keepdim=True)
    return (d - lo) / (hi - lo + 1e-6)


def haze(x: torch.Tensor, g: torch.Generator, severity: float | torch.Tensor) -> torch.Tensor:
    """Atmospheric scattering in linear RGB: I = J·t + A·(1 − t), t = exp(−β·(0.15 + 0.85·d)), β ≤ 2."""
    b, _, h, w = x.shape
    s = severity_tensor(severity, b, x.device)
    d = depth_map(b, h, w, g, x.device)
    beta = per_image(0.2 + s * 1.8 * uniform(0.8, 1.0, (b,), g, x.device))
    t = torch.exp(-beta * (0.15 + 0.85 * d))
    grey = per_image(uniform(0.7, 1.0, (b,), g, x.device))
    tint = 1 + 0.04 * randn((b, 3, 1, 1), g, x.device)  # slightly blue or warm air light
    airlight = srgb_to_linear((grey * tint).clamp(0, 1))
    j = srgb_to_linear(x)
    return linear_to_srgb(j * t + airlight * (1 - t))


def _streak_layer(
    b: int, h: int, w: int, g: torch.Generator, device, *, density, length, width, angle, size: int
) -> torch.Tensor:
    """One layer of rain streaks [B, 1, H, W] in [0, 1]."""
    seeds = (rand((b, 1, h, w), g, device) < per_image(density)).float() * uniform(0.6, 1.0, (b, 1, h, w), g, device)
    if size > 1:
        seeds = conv_per_image(seeds, gaussian_kernel(width, 5))  # streaks wider than one pixel
    n = 24
    t = torch.linspace(-0.5, 0.5, n, device=device).view(1, n) * length.view(-1, 1)
    pts = torch.stack([t * torch.sin(angle).view(-1, 1), t * torch.cos(angle).view(-1, 1)], dim=-1)
    streaks = conv_per_image(seeds, splat_path(pts, size, sigma=0.5))
    # A streak's peak after the line kernel is about seed/length·(some spread): renormalize to [0, 1].
    peak = streaks.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-6)
    return (streaks / peak).clamp(0, 1)


def rain(x: torch.Tensor, g: torch.Generator, severity: float | torch.Tensor) -> torch.Tensor:
    """Layered, slanted, motion-blurred rain streaks, screen-blended over the photo, with a veil."""
    b, _, h, w = x.shape
    dev = x.device
    s = severity_tensor(severity, b, dev)
    base_angle = uniform(-0.45, 0.45, (b,), g, dev)  # radians from vertical, shared by all layers
    out = x
    # (length px, width σ, density, opacity) for far → near layers; density and opacity grow with severity.
    layers = ((10.0, 0.5, 0.012, 0.35), (20.0, 0.8, 0.006, 0.55), (34.0, 1.1, 0.003, 0.8))
    for i, (length, width, density, opacity) in enumerate(layers):
        present = (rand((b,), g, dev) < 0.85) | (i == 1)
        lay = _streak_layer(
            b, h, w, g, dev,
            density=density * (0.3 + 1.7 * s) * uniform(0.6, 1.4, (b,), g, dev),
            length=length * uniform(0.7, 1.3, (b,), g, dev) * (0.7 + 0.6 * s),
            width=torch.full((b,), width, device=dev),
            angle=base_angle + uniform(-0.06, 0.06, (b,), g, dev),
            size=41,
        )
        alpha = lay * per_image(opacity * (0.5 + 0.5 * s) * present.float())
        colour = per_image(uniform(0.8, 1.0, (b,), g, dev))
        out = 1 - (1 - out) * (1 - alpha * colour)  # screen blend
    veil = per_image(0.15 * s * uniform(0.5, 1.0, (b,), g, dev))
    return (out * (1 - veil) + 0.85 * veil).clamp(0, 1)


def lowlight(x: torch.Tensor, g: torch.Generator, severity: float | torch.Tensor) -> torch.Tensor:
    """Under-exposure: scale linear RGB by 0.5 → 0.03 (with severity), add Poisson–Gaussian sensor
    noise in linear space, then the sRGB curve and an extra random gamma in [1, 1.25]."""
    b = x.shape[0]
    dev = x.device
    s = severity_tensor(severity, b, dev)
    exposure = per_image(0.5 * (0.03 / 0.5) ** (s * uniform(0.85, 1.0, (b,), g, dev)))
    lin = srgb_to_linear(x) * exposure
    shot = per_image(uniform(0.0005, 0.003, (b,), g, dev) * (0.3 + s))
    read = per_image(uniform(0.0005, 0.002, (b,), g, dev) * (0.3 + s))
    lin = lin + torch.sqrt(shot * lin + read.square()) * randn(x.shape, g, dev)
    gamma = per_image(uniform(1.0, 1.25, (b,), g, dev))
    return linear_to_srgb(lin).pow(gamma).clamp(0, 1)


# ------------------------------------------------------------- wider families (base v2 training)
# Other ways the same physical degradations show up in real photos. The built-in plugins above stay
# as they are (benchmarks and adapters are defined by them); these widen what the base sees in
# training so that it does not learn the quirks of one synthesizer (issue: generalization).

_JPEG_LUMA = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
)
_JPEG_CHROMA = (
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99, *([99] * 32),
)


def _dct8(device) -> torch.Tensor:
    k = torch.arange(8, device=device, dtype=torch.float32).view(-1, 1)
    i = torch.arange(8, device=device, dtype=torch.float32).view(1, -1)
    m = torch.cos(math.pi * (2 * i + 1) * k / 16) * math.sqrt(2 / 8)
    m[0] /= math.sqrt(2)
    return m


def _jpeg_plane(p: torch.Tensor, table: torch.Tensor, dct: torch.Tensor) -> torch.Tensor:
    """Quantize one plane [B, 1, H, W] (H, W multiples of 8, values 0–255) in 8×8 DCT blocks with
    per-image tables [B, 8, 8]."""
    b, _, h, w = p.shape
    blocks = (p - 128).view(b, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4)  # [B, h/8, w/8, 8, 8]
    coef = dct @ blocks @ dct.T
    q = table.view(b, 1, 1, 8, 8)
    coef = torch.round(coef / q) * q
    blocks = dct.T @ coef @ dct
    return blocks.permute(0, 1, 3, 2, 4).reshape(b, 1, h, w) + 128


def jpeg(x: torch.Tensor, g: torch.Generator, severity: float | torch.Tensor) -> torch.Tensor:
    """Baseline JPEG compression (YCbCr, 4:2:0, the standard tables scaled by quality), quality 95 at
    severity 0 down to 8 at severity 1: block edges, ringing and chroma smear."""
    b, _, h, w = x.shape
    s = severity_tensor(severity, b, x.device)
    quality = (95 - 87 * s * uniform(0.85, 1.0, (b,), g, x.device)).round()
    scale = torch.where(quality < 50, 5000 / quality, 200 - 2 * quality).view(-1, 1, 1)
    tables = []
    for base in (_JPEG_LUMA, _JPEG_CHROMA):
        t = torch.tensor(base, device=x.device, dtype=torch.float32).view(1, 8, 8)
        tables.append(((t * scale + 50) / 100).floor().clamp(1, 255))
    ph, pw = (-h) % 16, (-w) % 16
    rgb = F.pad(x.clamp(0, 1) * 255, (0, pw, 0, ph), mode="replicate")
    r, gg, bb = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
    y = 0.299 * r + 0.587 * gg + 0.114 * bb
    cb = -0.168736 * r - 0.331264 * gg + 0.5 * bb + 128
    cr = 0.5 * r - 0.418688 * gg - 0.081312 * bb + 128
    dct = _dct8(x.device)
    y = _jpeg_plane(y, tables[0], dct)
    chroma = [_jpeg_plane(F.avg_pool2d(c, 2), tables[1], dct) for c in (cb, cr)]
    cb, cr = (F.interpolate(c, scale_factor=2, mode="bilinear", align_corners=False) - 128 for c in chroma)
    out = torch.cat([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], dim=1)
    return (out[:, :, :h, :w].round().clamp(0, 255) / 255).to(x.dtype)


def jpeg_codec(x: torch.Tensor, g: torch.Generator, severity: float | torch.Tensor) -> torch.Tensor:
    """JPEG through a real codec (libjpeg, by Pillow), at the quality :func:`jpeg` draws for the same
    severity, with 4:2:0 chroma for 70% of the images and 4:4:4 for the rest. libjpeg differs from
    :func:`jpeg` where another lab's code would: its integer DCT, its chroma filters and its "fancy"
    upsampling, so a model trained on both is not tied to one implementation's quirks."""
    import io

    import numpy as np
    from PIL import Image

    b = x.shape[0]
    s = severity_tensor(severity, b, x.device)
    quality = (95 - 87 * s * uniform(0.85, 1.0, (b,), g, x.device)).round().int().tolist()
    full_chroma = (rand((b,), g, x.device) < 0.3).tolist()
    pixels = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    out = []
    for img, q, full in zip(pixels, quality, full_chroma):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, "JPEG", quality=q, subsampling=0 if full else 2)
        out.append(np.asarray(Image.open(buf).convert("RGB")))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).to(x.device, x.dtype) / 255


def camera_noise(x: torch.Tensor, g: torch.Generator, severity: float | torch.Tensor) -> torch.Tensor:
    """Noise as a camera makes it: undo white balance, sample a Bayer mosaic, add shot and read
    noise on the raw values, demosaic bilinearly (which turns independent noise into chroma blotches),
    white-balance back to sRGB, then JPEG for half of the images."""
    b, _, h, w = x.shape
    dev = x.device
    s = severity_tensor(severity, b, dev)
    gains = torch.stack([uniform(1.6, 2.4, (b,), g, dev), torch.ones(b, device=dev),
                         uniform(1.3, 2.0, (b,), g, dev)], 1).view(b, 3, 1, 1)
    raw = srgb_to_linear(x) / gains
    # Bayer sites: one of the four 2×2 layouts per image (RGGB, GRBG, GBRG, BGGR).
    oy, ox = (rand((2, b), g, dev) < 0.5).long()
    yy = (torch.arange(h, device=dev).view(1, h, 1) + oy.view(-1, 1, 1)) % 2
    xx = (torch.arange(w, device=dev).view(1, 1, w) + ox.view(-1, 1, 1)) % 2
    masks = torch.stack([(yy == 0) & (xx == 0), yy != xx, (yy == 1) & (xx == 1)], 1).to(x.dtype)
    mosaic = (raw * masks).sum(1, keepdim=True)
    shot = per_image((0.0002 + 0.012 * s) * uniform(0.5, 1.0, (b,), g, dev))
    read = per_image((0.001 + 0.02 * s) * uniform(0.5, 1.0, (b,), g, dev))
    mosaic = mosaic + torch.sqrt(shot * mosaic.clamp_min(0) + read.square()) * randn(mosaic.shape, g, dev)
    k_rb = torch.tensor([[1, 2, 1], [2, 4, 2], [1, 2, 1]], device=dev, dtype=x.dtype) / 4
    k_g = torch.tensor([[0, 1, 0], [1, 4, 1], [0, 1, 0]], device=dev, dtype=x.dtype) / 4
    weight = torch.stack([k_rb, k_g, k_rb]).unsqueeze(1)
    planes = F.pad(mosaic * masks, (1, 1, 1, 1), mode="reflect" if min(h, w) > 1 else "replicate")
    rgb = F.conv2d(planes, weight, groups=3) * gains
    out = linear_to_srgb(rgb)
    compress = rand((b,), g, dev) < 0.5
    if bool(compress.any()):
        idx = compress.nonzero().flatten()
        out[idx] = jpeg(out[idx], g, uniform(0.05, 0.5, (len(idx),), g, dev))
    return out


def luma_plane(x: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] → their luma (:data:`LUMA`), [B, 1, H, W]."""
    return (x * torch.tensor(LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)).sum(1, keepdim=True)


def mono_noise(x: torch.Tensor, g: torch.Generator, severity: float | torch.Tensor) -> torch.Tensor:
    """Luminance noise: (nearly) the same noise in every channel, σ = severity·50/255 as in :func:`noise`.

    What a grayscale photo or scan carries (RNI6's real noisy photos are all grayscale), and what a phone
    leaves after its ISP has removed the chroma noise. Networks trained only on noise drawn per channel
    learn to find noise by its colour and leave this untouched (base v1: σ 25 on grayscale CBSD68 photos,
    20.49 dB in, 20.63 out; NOTES.md). Per image: Gaussian or Poisson–Gaussian on the luma (as
    :func:`noise`); channel correlation 1 on half the images (a grayscale photo stays gray) and 0.5–1
    on the rest; film-like grain on 30% (the field blurred by a Gaussian of σ 0.4–1 px, its std kept).
    """
    b, _, h, w = x.shape
    dev = x.device
    sigma = per_image(severity_tensor(severity, b, dev) * MAX_NOISE_SIGMA)
    corr = torch.where(rand((b,), g, dev) < 0.5, torch.ones(b, device=dev), uniform(0.5, 1.0, (b,), g, dev))
    common = randn((b, 1, h, w), g, dev)
    grain = rand((b,), g, dev) < 0.3
    if bool(grain.any()):
        idx = grain.nonzero().flatten()
        blurred = conv_per_image(common[idx], gaussian_kernel(uniform(0.4, 1.0, (len(idx),), g, dev), 7))
        common[idx] = blurred / blurred.std(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
    corr = per_image(corr)
    n = corr.sqrt() * common + (1 - corr).sqrt() * randn(x.shape, g, dev)
    luma = luma_plane(x)
    shot = per_image(rand((b,), g, dev) < 0.5)
    std = torch.where(shot, torch.sqrt(1.5 * sigma.square() * luma.clamp(0, 1) + (0.5 * sigma).square()), sigma)
    return (x + std * n).clamp(0, 1)


def gaussian_blur(x: torch.Tensor, g: torch.Generator, severity: float | torch.Tensor) -> torch.Tensor:
    """Soft, lens-like blur: an isotropic Gaussian kernel, σ 0.4–4 px."""
    s = severity_tensor(severity, x.shape[0], x.device)
    sigma = (0.5 + 3.5 * s) * uniform(0.8, 1.0, s.shape, g, x.device)
    return conv_per_image(x, gaussian_kernel(sigma, 25)).clamp(0, 1)


def flat_haze(x: torch.Tensor, g: torch.Generator, severity: float | torch.Tensor) -> torch.Tensor:
    """Haze with no depth structure (fog over a flat scene), a tinted air light, computed in sRGB as
    simpler synthesizers do: I = J·t + A·(1 − t)."""
    b = x.shape[0]
    s = severity_tensor(severity, b, x.device)
    field = smooth_field(b, *x.shape[2:], g, x.device)
    t = 1 - per_image(s) * (per_image(uniform(0.3, 0.7, (b,), g, x.device)) + 0.1 * field)
    air = per_image(uniform(0.6, 1.0, (b,), g, x.device)) * (1 + 0.08 * randn((b, 3, 1, 1), g, x.device))
    return (x * t + air.clamp(0, 1) * (1 - t)).clamp(0, 1)


def drizzle(x: torch.Tensor, g: torch.Generator, severity: float | torch.Tensor) -> torch.Tensor:
    """Light rain: one or two layers of thin, faint streaks added to the photo, no veil (the scene's
    brightness is kept)."""
    b, _, h, w = x.shape
    dev = x.device
    s = severity_tensor(severity, b, dev)
    angle = uniform(-0.6, 0.6, (b,), g, dev)
    out = x
    for length, density in ((12.0, 0.01), (25.0, 0.004)):
        lay = _streak_layer(
            b, h, w, g, dev,
            density=density * (0.2 + s) * uniform(0.5, 1.5, (b,), g, dev),
            length=length * uniform(0.6, 1.4, (b,), g, dev),
            width=torch.full((b,), 0.4, device=dev),
            angle=angle + uniform(-0.05, 0.05, (b,), g, dev),
            size=31,
        )
        out = out + lay * per_image(uniform(0.1, 0.45, (b,), g, dev) * (0.4 + 0.6 * s))
    return out.clamp(0, 1)


def dim(x: torch.Tensor, g: torch.Generator, severity: float | torch.Tensor) -> torch.Tensor:
    """Dark photos as a phone leaves them: a gamma curve and an exposure cut in sRGB, a colour cast,
    mild noise. Clearly dark even at severity 0 (gamma ≥ 1.6, gain ≤ 0.75): a mildly dim photo is not
    a degradation, and training on near-identity versions taught the base to brighten every dim,
    noisy real photo (PolyU, −11 dB; BENCHMARKS.md)."""
    b = x.shape[0]
    dev = x.device
    s = severity_tensor(severity, b, dev)
    gamma = per_image(1.6 + s * uniform(1.0, 1.9, (b,), g, dev))
    gain = per_image(0.75 - s * uniform(0.2, 0.45, (b,), g, dev))
    cast = 1 + 0.06 * per_image(s) * randn((b, 3, 1, 1), g, dev)
    y = (x.clamp(0, 1).pow(gamma) * gain * cast).clamp(0, 1)
    return (y + per_image(0.01 * s * rand((b,), g, dev)) * randn(x.shape, g, dev)).clamp(0, 1)


def pick_per_image(
    x: torch.Tensor, g: torch.Generator, severity: torch.Tensor, variants, probs
) -> torch.Tensor:
    """Degrade each image with one of ``variants`` (synthesizers), drawn with ``probs``."""
    b = x.shape[0]
    s = severity_tensor(severity, b, x.device)
    picked = choice(probs, b, g, x.device)
    out = x.clone()
    for i, fn in enumerate(variants):
        idx = (picked == i).nonzero().flatten()
        if len(idx):
            out[idx] = fn(x[idx], g, s[idx])
    return out
