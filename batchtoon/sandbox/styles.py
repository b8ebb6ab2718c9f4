"""Nine offline cartoon renderings that stand in for the AILabTools cartoon API.

Each style index of the "AI Cartoon Generator" API gets its own renderer built
from a handful of shared building blocks:

* edge-preserving smoothing (a vectorised Kuwahara filter) and palette
  quantisation, done at a small *working* resolution because they are the
  expensive steps;
* ink lines from a difference of Gaussians, computed at a moderate *edge*
  resolution and upscaled as a soft mask, so lines stay crisp but cheap;
* procedural textures (paper, grain, halftone and line screens), vignettes and
  glows, generated with numpy from fixed seeds so every render is
  deterministic.

Only Pillow and numpy are used.  Full-resolution work is limited to a few
Pillow operations (which run in C and release the GIL) and single-channel
numpy arithmetic, keeping one 2304x1536 render well under half a second.
The module holds no mutable global state, so ``render`` is thread-safe.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFilter

__all__ = ["STYLE_NAMES", "render"]

STYLE_NAMES: tuple[str, ...] = (
    "Vintage Comic",
    "3D Fairy Tale",
    "Two-dimensional (2D)",
    "Refreshing and Elegant",
    "Future Technology",
    "Traditional Chinese Painting Style",
    "General in a Hundred Battles",
    "Colorful Cartoon",
    "Graceful Chinese Style",
)

FloatArray = NDArray[np.float32]
Color = tuple[int, int, int]

# Short side of the image on which smoothing and quantisation run: large
# enough to keep faces readable, small enough for the Kuwahara filter to cost
# a few tens of milliseconds.
_WORK_SHORT = 384
# Short side at which ink lines are found; lines are then upscaled as a soft
# mask, which keeps them anti-aliased at the output resolution.
_EDGE_SHORT = 768
# Rec. 601 luma weights.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


# --------------------------------------------------------------------------
# Conversions and resizing
# --------------------------------------------------------------------------


def _to_float(image: Image.Image) -> FloatArray:
    """Pixels as float32 in 0..1 (H, W, C) or (H, W) for single-band images."""
    return np.asarray(image, dtype=np.float32) / 255.0


def _to_image(array: NDArray[np.floating], mode: str | None = None) -> Image.Image:
    """Inverse of ``_to_float``: clip to 0..1 and convert back to 8 bits."""
    data = (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    image = Image.fromarray(data)
    return image if mode is None else image.convert(mode)


def _scaled_size(size: tuple[int, int], short: int) -> tuple[int, int]:
    """``size`` scaled so its short side is at most ``short`` (never enlarged)."""
    width, height = size
    factor = min(1.0, short / min(width, height))
    return max(1, round(width * factor)), max(1, round(height * factor))


def _downscale(image: Image.Image, short: int) -> Image.Image:
    # BOX with a reducing gap first averages whole pixel blocks, which is both
    # the fastest and the least aliased way to shrink by large factors.
    size = _scaled_size(image.size, short)
    if size == image.size:
        return image.copy()
    return image.resize(size, Image.Resampling.BOX, reducing_gap=2.0)


def _upscale(image: Image.Image, size: tuple[int, int], smooth: bool = False) -> Image.Image:
    """Enlarge to ``size``; LANCZOS for colour, BILINEAR (``smooth``) for masks."""
    if image.size == size:
        return image
    resample = Image.Resampling.BILINEAR if smooth else Image.Resampling.LANCZOS
    return image.resize(size, resample)


def _luma(rgb: FloatArray) -> FloatArray:
    return np.asarray(rgb @ _LUMA, dtype=np.float32)


def _blur(array: FloatArray, radius: float) -> FloatArray:
    """Gaussian blur of a 0..1 single-channel array, through Pillow's C code."""
    blurred = _to_image(array).filter(ImageFilter.GaussianBlur(radius))
    return _to_float(blurred)


def _grid(height: int, width: int) -> tuple[FloatArray, FloatArray]:
    """Open pixel-coordinate grids (rows, cols) for broadcasting."""
    rows = np.arange(height, dtype=np.float32)[:, None]
    cols = np.arange(width, dtype=np.float32)[None, :]
    return rows, cols


# --------------------------------------------------------------------------
# Colour helpers (all on small float arrays, so they are cheap)
# --------------------------------------------------------------------------


def _saturate(rgb: FloatArray, amount: float) -> FloatArray:
    """Scale chroma around the luma; ``amount`` > 1 boosts, < 1 mutes."""
    grey = _luma(rgb)[..., None]
    return np.asarray(np.clip(grey + (rgb - grey) * amount, 0.0, 1.0), dtype=np.float32)


def _contrast(values: FloatArray, amount: float, pivot: float = 0.5) -> FloatArray:
    return np.asarray(np.clip((values - pivot) * amount + pivot, 0.0, 1.0), dtype=np.float32)


def _s_curve(values: FloatArray, strength: float) -> FloatArray:
    """Smoothstep blend: lifts contrast without clipping highlights."""
    smooth = values * values * (3.0 - 2.0 * values)
    return np.asarray(values + (smooth - values) * strength, dtype=np.float32)


def _tint(rgb: FloatArray, color: Color, amount: float) -> FloatArray:
    """Mix towards a colour (``amount`` 0..1)."""
    target = np.array(color, dtype=np.float32) / 255.0
    return np.asarray(rgb + (target - rgb) * amount, dtype=np.float32)


def _screen(base: FloatArray, light: FloatArray) -> FloatArray:
    return np.asarray(1.0 - (1.0 - base) * (1.0 - light), dtype=np.float32)


def _gradient_map(values: FloatArray, stops: Sequence[tuple[float, Color]]) -> FloatArray:
    """Map 0..1 values to colours by piecewise-linear interpolation of ``stops``."""
    positions = np.array([stop[0] for stop in stops], dtype=np.float32)
    colors = np.array([stop[1] for stop in stops], dtype=np.float32) / 255.0
    channels = [np.interp(values, positions, colors[:, c]) for c in range(3)]
    return np.stack(channels, axis=-1).astype(np.float32)


# --------------------------------------------------------------------------
# Smoothing and quantisation
# --------------------------------------------------------------------------


def _box_means(padded: NDArray[np.float64], box: int) -> NDArray[np.float64]:
    """Mean over every ``box`` x ``box`` window via an integral image."""
    integral = np.zeros(
        (padded.shape[0] + 1, padded.shape[1] + 1) + padded.shape[2:], dtype=np.float64
    )
    integral[1:, 1:] = padded.cumsum(0).cumsum(1)
    total = (
        integral[box:, box:]
        - integral[:-box, box:]
        - integral[box:, :-box]
        + integral[:-box, :-box]
    )
    return np.asarray(total / (box * box), dtype=np.float64)


def _kuwahara(rgb: FloatArray, radius: int) -> FloatArray:
    """Kuwahara filter: each pixel takes the mean of its calmest quadrant.

    This flattens texture into painterly patches while keeping edges sharp,
    which is what makes a photo read as a drawing.  Float64 integral images
    keep the variance (a difference of large sums) accurate.
    """
    height, width = rgb.shape[:2]
    pad = ((radius, radius), (radius, radius), (0, 0))
    luma = _luma(rgb)[..., None]
    stacked = np.concatenate([rgb, luma, luma * luma], axis=-1).astype(np.float64)
    means = _box_means(np.pad(stacked, pad, mode="edge"), radius + 1)
    # The four quadrants around each pixel start at these window offsets.
    offsets = ((0, 0), (0, radius), (radius, 0), (radius, radius))
    quads = np.stack([means[dy : dy + height, dx : dx + width] for dy, dx in offsets])
    variance = quads[..., 4] - quads[..., 3] ** 2
    best = np.argmin(variance, axis=0)[None, ..., None]
    chosen = np.take_along_axis(quads[..., :3], best, axis=0)[0]
    return chosen.astype(np.float32)


def _smooth(rgb: FloatArray, radius: int, passes: int) -> FloatArray:
    for _ in range(passes):
        rgb = _kuwahara(rgb, radius)
    return rgb


def _quantize(rgb: FloatArray, colors: int) -> tuple[NDArray[np.uint8], FloatArray]:
    """Reduce to ``colors`` flat colours; returns (index map, palette 0..1).

    The palette is chosen by median cut on a thumbnail (median cut is slow on
    large images) and then applied to the full working image without
    dithering, giving the flat regions of cel animation.
    """
    image = _to_image(rgb)
    thumb = _downscale(image, 96)
    palette_image = thumb.quantize(colors, method=Image.Quantize.MEDIANCUT)
    indexed = image.quantize(palette=palette_image, dither=Image.Dither.NONE)
    raw_palette = indexed.getpalette() or []
    palette = np.array(raw_palette[: 3 * 256], dtype=np.float32).reshape(-1, 3) / 255.0
    return np.asarray(indexed, dtype=np.uint8), palette


def _flat_colors(
    rgb: FloatArray, colors: int, recolor: Callable[[FloatArray], FloatArray]
) -> FloatArray:
    """Quantise, restyle only the palette entries, and paint them back.

    Grading the palette instead of every pixel is what keeps the per-style
    colour work essentially free.
    """
    indices, palette = _quantize(rgb, colors)
    return recolor(palette)[indices]


def _boundaries(indices: NDArray[np.uint8]) -> FloatArray:
    """1.0 where a pixel's palette index differs from its right/lower neighbour."""
    edge = np.zeros(indices.shape, dtype=np.float32)
    edge[:, :-1] += indices[:, :-1] != indices[:, 1:]
    edge[:-1, :] += indices[:-1, :] != indices[1:, :]
    return np.minimum(edge, 1.0)


# --------------------------------------------------------------------------
# Ink lines
# --------------------------------------------------------------------------


def _dog_ink(gray: FloatArray, sigma: float, threshold: float, softness: float) -> FloatArray:
    """Ink where a pixel is darker than its neighbourhood (difference of Gaussians).

    Marking only the dark side of an edge draws a single line per edge, like a
    pen would, rather than the double contour of a gradient magnitude.
    """
    fine = _blur(gray, sigma)
    coarse = _blur(gray, sigma * 1.6)
    return np.asarray(np.clip((coarse - fine - threshold) / softness, 0.0, 1.0), dtype=np.float32)


def _thicken(mask: FloatArray, radius: float, gain: float = 2.5) -> FloatArray:
    """Soft dilation: blur then amplify, cheaper than a max filter and anti-aliased."""
    if radius <= 0:
        return mask
    return np.asarray(np.clip(_blur(mask, radius) * gain, 0.0, 1.0), dtype=np.float32)


def _ink_mask(
    image: Image.Image,
    sigma: float,
    threshold: float,
    softness: float = 0.04,
    thickness: float = 0.0,
) -> FloatArray:
    """Line mask (0..1) of the photo at the edge resolution."""
    gray = _to_float(_downscale(image, _EDGE_SHORT).convert("L"))
    return _thicken(_dog_ink(gray, sigma, threshold, softness), thickness)


def _combine(*masks: FloatArray) -> FloatArray:
    """Union of masks of possibly different sizes, at the size of the first."""
    height, width = masks[0].shape
    result = masks[0]
    for mask in masks[1:]:
        if mask.shape != result.shape:
            resized = _upscale(_to_image(mask), (width, height), smooth=True)
            mask = _to_float(resized)
        result = np.maximum(result, mask)
    return result


def _apply_ink(
    base: Image.Image, mask: FloatArray, color: Color, opacity: float = 1.0
) -> Image.Image:
    """Paint ``color`` through the (upscaled) line mask onto ``base``."""
    alpha = _upscale(_to_image(mask * opacity), base.size, smooth=True)
    return Image.composite(Image.new("RGB", base.size, color), base, alpha)


# --------------------------------------------------------------------------
# Textures, screens and lighting
# --------------------------------------------------------------------------


def _value_noise(size: tuple[int, int], seed: int, cell: int) -> Image.Image:
    """Smooth random field (L image) with features about ``cell`` pixels wide.

    Random values on a coarse lattice are upscaled bicubically, which costs a
    single resize regardless of the output size.
    """
    width, height = size
    rng = np.random.default_rng(seed)
    coarse = rng.random((max(2, height // cell + 2), max(2, width // cell + 2)), dtype=np.float32)
    return _to_image(coarse).resize(size, Image.Resampling.BICUBIC)


def _fractal_noise(size: tuple[int, int], seed: int, cells: Sequence[int]) -> FloatArray:
    """Sum of value-noise octaves, normalised to 0..1."""
    total = np.zeros((size[1], size[0]), dtype=np.float32)
    for octave, cell in enumerate(cells):
        total += _to_float(_value_noise(size, seed + octave, cell)) / (octave + 1)
    total -= total.min()
    peak = float(total.max())
    return total / peak if peak > 0 else total


def _grain(size: tuple[int, int], seed: int) -> FloatArray:
    """Per-pixel uniform noise in -0.5..0.5 built from a tiled 256x256 block.

    Tiling makes full-resolution grain cost a memory copy; the repetition is
    invisible in white noise.
    """
    width, height = size
    tile = np.random.default_rng(seed).random((256, 256), dtype=np.float32) - 0.5
    reps = (height // 256 + 1, width // 256 + 1)
    return np.tile(tile, reps)[:height, :width]


def _fibres(size: tuple[int, int], seed: int) -> FloatArray:
    """Rice-paper fibres: noise stretched along random directions, 0..1."""
    width, height = size
    small = (max(8, width // 4), max(8, height // 4))
    rng = np.random.default_rng(seed)
    strands = np.zeros((small[1], small[0]), dtype=np.float32)
    count = small[0] * small[1] // 180
    rows = rng.integers(0, small[1], count)
    cols = rng.integers(0, small[0], count)
    angles = rng.random(count) * math.pi
    # Each fibre is a short straight run of pixels; vectorised over fibres.
    for step in range(-6, 7):
        r = np.clip(rows + np.round(np.sin(angles) * step).astype(int), 0, small[1] - 1)
        c = np.clip(cols + np.round(np.cos(angles) * step).astype(int), 0, small[0] - 1)
        strands[r, c] = 1.0
    fibres = _to_image(strands).filter(ImageFilter.GaussianBlur(0.6))
    return _to_float(fibres.resize(size, Image.Resampling.BILINEAR))


def _vignette(size: tuple[int, int], strength: float, softness: float = 1.6) -> FloatArray:
    """Multiplier (1 at the centre, 1 - strength in the corners)."""
    width, height = size
    rows, cols = _grid(height, width)
    dy = (rows - (height - 1) / 2) / (height / 2)
    dx = (cols - (width - 1) / 2) / (width / 2)
    radius = np.sqrt(dx * dx + dy * dy) / math.sqrt(2.0)
    return np.asarray(1.0 - strength * np.clip(radius, 0.0, 1.0) ** softness, dtype=np.float32)


def _dot_screen(size: tuple[int, int], period: int) -> FloatArray:
    """Clustered-dot threshold screen at 45 degrees (0 at dot centres, ~1 between).

    Comparing tone against this screen gives Ben-Day dots whose size follows
    the tone; the tile is periodic so it is built once and tiled.
    """
    rows, cols = _grid(period, period)
    half = period / 2
    # A 45-degree dot lattice has centres at the tile corners and its middle.
    corner = np.minimum(rows, period - rows) ** 2 + np.minimum(cols, period - cols) ** 2
    middle = (rows - half) ** 2 + (cols - half) ** 2
    distance = np.sqrt(np.minimum(corner, middle)) / (half * math.sqrt(2.0) / 2 * 1.42)
    return _tile(np.clip(distance, 0.0, 1.0).astype(np.float32), size)


def _line_screen(size: tuple[int, int], period: int) -> FloatArray:
    """Diagonal hatching threshold screen (0 on the line, 1 between lines)."""
    rows, cols = _grid(period, period)
    phase = ((rows + cols) % period) / period
    return _tile(np.asarray(np.abs(phase - 0.5) * 2.0, dtype=np.float32), size)


def _tile(tile: FloatArray, size: tuple[int, int]) -> FloatArray:
    width, height = size
    reps = (height // tile.shape[0] + 1, width // tile.shape[1] + 1)
    return np.tile(tile, reps)[:height, :width]


def _screen_coverage(tone: FloatArray, screen: FloatArray, sharpness: float = 6.0) -> FloatArray:
    """Anti-aliased halftone: 1 where ``tone`` (ink amount) exceeds the screen."""
    return np.asarray(np.clip((tone - screen) * sharpness + 0.5, 0.0, 1.0), dtype=np.float32)


def _bloom(rgb: FloatArray, threshold: float, radius: float, strength: float) -> FloatArray:
    """Screen a blurred copy of the bright parts back on top: a soft glow."""
    bright = np.clip((rgb - threshold) / (1.0 - threshold), 0.0, 1.0)
    glow = _to_float(_to_image(bright).filter(ImageFilter.GaussianBlur(radius)))
    return _screen(rgb, glow * strength)


def _multiply_full(base: Image.Image, shade: FloatArray) -> Image.Image:
    """Multiply an RGB image by a single-channel 0..1 shade (any resolution)."""
    # Compositing over black with the shade as alpha is exactly a multiply.
    alpha = _upscale(_to_image(shade), base.size, smooth=True)
    return Image.composite(base, Image.new("RGB", base.size), alpha)


# --------------------------------------------------------------------------
# Styles
# --------------------------------------------------------------------------


def _vintage_comic(image: Image.Image) -> Image.Image:
    """Faded four-colour print: flat warm inks, Ben-Day dots, heavy outlines."""
    work = _smooth(_to_float(_downscale(image, _WORK_SHORT)), 3, 2)

    def faded(palette: FloatArray) -> FloatArray:
        # Old newsprint inks: muted, warm, never pure white or black.
        palette = _saturate(_contrast(palette, 1.25), 1.35)
        palette = _tint(palette, (220, 170, 90), 0.22)
        return np.asarray(0.08 + palette * 0.86, dtype=np.float32)

    flat = _flat_colors(work, 7, faded)
    base = _upscale(_to_image(flat), image.size)

    # Dots carry the shading: darker tones get bigger dots of dark ink.
    tone = 1.0 - _to_float(base.convert("L"))
    dots = _screen_coverage(tone * 1.15 - 0.12, _dot_screen(image.size, 12))
    paper = 1.0 - 0.05 * _fractal_noise(image.size, 11, (96, 24))
    shade = paper * (1.0 - 0.55 * dots)
    base = Image.composite(base, Image.new("RGB", image.size, (70, 40, 30)), _to_image(shade))
    base = Image.blend(base, Image.new("RGB", image.size, (240, 225, 190)), 0.08)

    lines = _ink_mask(image, 1.2, 0.02, 0.03, thickness=1.2)
    return _apply_ink(base, lines, (28, 18, 16))


def _fairy_tale(image: Image.Image) -> Image.Image:
    """Soft 3D-animation look: smooth rounded shading, pastel glow, bloom."""
    work = _smooth(_to_float(_downscale(image, _WORK_SHORT)), 4, 2)
    work = _to_float(_to_image(work).filter(ImageFilter.GaussianBlur(1.5)))
    work = _saturate(_s_curve(work, 0.5), 1.5)
    # Lift the shadows into pastel lilac and warm the lights: storybook grading.
    work = _screen(work, np.array([0.16, 0.10, 0.22], dtype=np.float32))
    work = _tint(work, (255, 236, 214), 0.08)
    work = _bloom(work, 0.55, 10.0, 0.9)
    vignette = _vignette((work.shape[1], work.shape[0]), 0.25)
    work = (
        work * vignette[..., None]
        + (1.0 - vignette[..., None]) * np.array([0.55, 0.40, 0.70], dtype=np.float32) * 0.25
    )
    base = _upscale(_to_image(work), image.size)
    lines = _ink_mask(image, 2.0, 0.05, 0.08, thickness=1.0)
    return _apply_ink(base, lines, (90, 50, 90), opacity=0.35)


def _anime(image: Image.Image) -> Image.Image:
    """Cel-shaded 2D anime: flat vivid regions with clean dark outlines."""
    work = _smooth(_to_float(_downscale(image, _WORK_SHORT)), 3, 2)

    def vivid(palette: FloatArray) -> FloatArray:
        return _saturate(_contrast(palette, 1.1) ** 0.85, 1.45)

    indices, palette = _quantize(work, 12)
    flat = vivid(palette)[indices]
    base = _upscale(_to_image(flat), image.size)
    lines = _combine(
        _ink_mask(image, 1.0, 0.03, 0.04, thickness=0.6),
        _boundaries(indices) * 0.6,
    )
    return _apply_ink(base, lines, (35, 25, 45))


def _refreshing(image: Image.Image) -> Image.Image:
    """Light, airy, high-key pastel with mint tint and thin soft lines."""
    work = _smooth(_to_float(_downscale(image, _WORK_SHORT)), 2, 1)
    work = _saturate(work, 0.65)
    # High key: compress the range towards white and open the midtones.
    work = 0.35 + 0.65 * work**0.6
    work = _tint(work, (200, 240, 225), 0.22)
    base = _upscale(_to_image(work), image.size)
    lines = _ink_mask(image, 1.0, 0.02, 0.06)
    return _apply_ink(base, lines, (80, 120, 115), opacity=0.55)


def _future_tech(image: Image.Image) -> Image.Image:
    """Cyberpunk neon: dark blue base, glowing cyan/magenta edges, scanlines."""
    work = _smooth(_to_float(_downscale(image, _WORK_SHORT)), 3, 1)
    dark = _gradient_map(
        _luma(work), ((0.0, (2, 2, 12)), (0.5, (20, 16, 60)), (1.0, (60, 90, 150)))
    )
    # Neon edges coloured by position (cyan left/top, magenta right/bottom).
    edges = _ink_mask(image, 1.0, 0.02, 0.05, thickness=0.8)
    height, width = edges.shape
    rows, cols = _grid(height, width)
    mix = np.clip((cols / width + rows / height) / 2.0, 0.0, 1.0)
    cyan = np.array([0.1, 1.0, 1.0], dtype=np.float32)
    magenta = np.array([1.0, 0.15, 0.85], dtype=np.float32)
    neon = (cyan + (magenta - cyan) * mix[..., None]) * edges[..., None]
    glow = _to_float(_to_image(neon).filter(ImageFilter.GaussianBlur(6)))
    dark_edge = _to_float(_upscale(_to_image(dark), (width, height)))
    lit = _screen(_screen(dark_edge, glow * 1.6), neon)
    base = _upscale(_to_image(lit), image.size)
    # Scanlines and a faint grid give the display-screen feel.
    rows_full, cols_full = _grid(image.size[1], image.size[0])
    scan = np.where(rows_full % 4 < 1, 0.72, 1.0).astype(np.float32)
    grid = np.where((rows_full % 96 < 1.5) | (cols_full % 96 < 1.5), 1.0, 0.0)
    base = _multiply_full(base, scan * np.ones_like(cols_full))
    return _apply_ink(base, grid.astype(np.float32), (40, 200, 255), opacity=0.22)


def _ink_wash(image: Image.Image) -> Image.Image:
    """Chinese ink wash: grey ink tones, soft washes, brush lines, rice paper, seal."""
    work = _smooth(_to_float(_downscale(image, _WORK_SHORT)), 3, 2)
    tone = _luma(work)
    # A few ink dilutions, then blurred so the steps bleed like wet washes.
    washes = np.round(_contrast(tone, 1.2) * 4.0) / 4.0
    washes = _blur(washes.astype(np.float32), 2.0)
    ink = _gradient_map(
        washes, ((0.0, (25, 22, 20)), (0.5, (120, 116, 108)), (1.0, (240, 232, 214)))
    )
    base = _upscale(_to_image(ink), image.size)
    # Brush lines: thickness varies with low-frequency noise like brush pressure.
    lines = _ink_mask(image, 1.6, 0.03, 0.05, thickness=1.0)
    pressure = _fractal_noise((lines.shape[1], lines.shape[0]), 51, (40, 12))
    lines = lines * np.clip(pressure * 1.6 - 0.1, 0.0, 1.0)
    base = _apply_ink(base, lines, (18, 16, 14), opacity=0.9)
    paper = 1.0 - 0.10 * _fibres(image.size, 52) - 0.04 * _fractal_noise(image.size, 53, (64,))
    base = _multiply_full(base, paper)
    return _stamp_seal(base)


def _war_comic(image: Image.Image) -> Image.Image:
    """Gritty heroic war comic: bronze tones, heavy ink, hatching, vignette."""
    work = _smooth(_to_float(_downscale(image, _WORK_SHORT)), 3, 1)
    tone = _s_curve(_contrast(_luma(work), 1.35), 0.8)
    bronze = _gradient_map(
        tone,
        ((0.0, (20, 12, 6)), (0.45, (110, 70, 36)), (0.8, (196, 150, 90)), (1.0, (245, 222, 170))),
    )
    colored = _saturate(work, 0.5)
    work = bronze * 0.8 + colored * 0.2
    base = _upscale(_to_image(work), image.size)

    # Crushed shadows become solid black and midtones get diagonal hatching.
    tone_full = 1.0 - _to_float(base.convert("L"))
    hatch = _screen_coverage(tone_full * 1.3 - 0.45, _line_screen(image.size, 9), 4.0)
    solid = np.clip((tone_full - 0.72) * 8.0, 0.0, 1.0)
    grit = _grain(image.size, 61) * 0.18
    shade = (1.0 - np.maximum(hatch * 0.7, solid)) * (1.0 + grit)
    shade = shade * _vignette(image.size, 0.75, 2.0)
    base = _multiply_full(base, shade)
    lines = _ink_mask(image, 1.4, 0.02, 0.03, thickness=1.6)
    return _apply_ink(base, lines, (12, 8, 6))


def _colorful(image: Image.Image) -> Image.Image:
    """Bright playful cartoon: few saturated flat colours, thick black outlines."""
    work = _smooth(_to_float(_downscale(image, _WORK_SHORT)), 4, 2)

    def candy(palette: FloatArray) -> FloatArray:
        return _saturate(_contrast(palette, 1.15) ** 0.75, 2.1)

    indices, palette = _quantize(work, 8)
    base = _upscale(_to_image(candy(palette)[indices]), image.size)
    lines = _combine(
        _ink_mask(image, 1.6, 0.03, 0.04, thickness=2.0),
        _thicken(_boundaries(indices), 0.8),
    )
    return _apply_ink(base, lines, (10, 10, 10))


def _gongbi(image: Image.Image) -> Image.Image:
    """Gongbi court painting: fine outlines, soft colours on silk, gold frame."""
    work = _smooth(_to_float(_downscale(image, _WORK_SHORT)), 3, 2)
    work = _saturate(work, 0.7)
    silk = np.array([236, 222, 190], dtype=np.float32) / 255.0
    # Colours are laid as translucent washes over the silk: multiply-like.
    work = silk * (0.35 + 0.65 * work**0.7)
    # Gold in the highlights, a touch of cinnabar in the warm tones.
    light = np.clip((_luma(work) - 0.6) * 2.5, 0.0, 1.0)[..., None]
    work = work + (np.array([0.85, 0.68, 0.30], dtype=np.float32) - work) * light * 0.25
    base = _upscale(_to_image(work), image.size)
    lines = _ink_mask(image, 0.8, 0.02, 0.04)
    base = _apply_ink(base, lines, (70, 40, 25), opacity=0.85)
    weave = 1.0 - 0.06 * np.abs(_grain(image.size, 81))
    base = _multiply_full(base, weave)
    return _gold_frame(base)


# --------------------------------------------------------------------------
# Decorations
# --------------------------------------------------------------------------


def _stamp_seal(image: Image.Image) -> Image.Image:
    """Cinnabar seal in the lower right, with carved pseudo-glyph strokes."""
    width, height = image.size
    side = max(8, min(width, height) // 9)
    seal = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(seal)
    draw.rounded_rectangle((0, 0, side - 1, side - 1), radius=side // 10, fill=255)
    stroke = max(1, side // 14)
    inner = side // 8
    draw.rectangle((inner, inner, side - inner, side - inner), outline=0, width=stroke)
    rng = np.random.default_rng(5)
    # Two columns of carved strokes suggest a two-character seal.
    for column in range(2):
        left = inner + stroke * 2 + column * (side - 2 * inner) // 2
        right = left + (side - 2 * inner) // 2 - stroke * 4
        for _ in range(4):
            y = int(rng.integers(inner + stroke * 2, side - inner - stroke * 2))
            draw.line((left, y, right, y), fill=0, width=stroke)
        x = int(rng.integers(left, max(left + 1, right)))
        draw.line((x, inner + stroke * 2, x, side - inner - stroke * 2), fill=0, width=stroke)
    # Imperfect ink transfer: knock out random specks.
    specks = np.random.default_rng(6).random((side, side)) < 0.08
    alpha = np.asarray(seal, dtype=np.float32) * np.where(specks, 0.3, 0.92)
    margin = side // 3
    box = (width - side - margin, height - side - margin)
    red = Image.new("RGB", (side, side), (180, 30, 28))
    result = image.copy()
    result.paste(red, box, Image.fromarray(alpha.astype(np.uint8)))
    return result


def _gold_frame(image: Image.Image) -> Image.Image:
    """Thin double border in gold and cinnabar, as on a mounted silk painting."""
    width, height = image.size
    unit = max(1, min(width, height) // 160)
    result = image.copy()
    draw = ImageDraw.Draw(result)
    outer = unit * 6
    draw.rectangle(
        (outer, outer, width - 1 - outer, height - 1 - outer),
        outline=(190, 150, 70),
        width=unit * 2,
    )
    inner = outer + unit * 4
    draw.rectangle(
        (inner, inner, width - 1 - inner, height - 1 - inner), outline=(170, 40, 30), width=unit
    )
    return result


_RENDERERS: tuple[Callable[[Image.Image], Image.Image], ...] = (
    _vintage_comic,
    _fairy_tale,
    _anime,
    _refreshing,
    _future_tech,
    _ink_wash,
    _war_comic,
    _colorful,
    _gongbi,
)


def render(image: Image.Image, index: int) -> Image.Image:
    """Return an RGB image of exactly ``image.size`` rendered in style ``index`` (0..8).

    Deterministic and thread-safe: all randomness comes from fixed seeds and
    no state is shared between calls.
    """
    if not 0 <= index < len(_RENDERERS):
        raise ValueError(f"style index must be in 0..{len(_RENDERERS) - 1}, got {index}")
    source = image if image.mode == "RGB" else image.convert("RGB")
    result = _RENDERERS[index](source)
    if result.size != source.size:
        result = result.resize(source.size, Image.Resampling.LANCZOS)
    return result.convert("RGB") if result.mode != "RGB" else result
