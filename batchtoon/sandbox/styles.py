"""Nine offline cartoon renderings that stand in for the AILabTools cartoon API.

Each style index of the "AI Cartoon Generator" API gets its own renderer,
assembled from a handful of shared building blocks:

* edge-preserving smoothing (a vectorised Kuwahara filter) and palette
  quantisation, run at a small *working* resolution because they are the
  expensive steps; per-style colour grading is applied to the few palette
  entries rather than to every pixel;
* ink lines from a difference of Gaussians, found and painted at a moderate
  *edge* resolution (half the output), where the flat colours are also
  quantised so that region borders are smooth curves;
* procedural textures (paper, fibres, grain, halftone and hatching screens),
  vignettes and glows, generated with numpy from fixed seeds so every render
  is deterministic.

Only Pillow and numpy are used.  Full-resolution work is limited to one
bilinear enlargement and, for textured styles, one single-channel mask
painted over it, which keeps a 2304x1536 render to roughly 0.15-0.25 s of
one core.  The module holds no mutable global state, so ``render`` is
thread-safe.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from batchtoon.settings.styles import STYLE_NAMES  # the catalogue's names; re-exported for the grid

__all__ = ["STYLE_NAMES", "render"]


FloatArray = NDArray[np.float32]
Size = tuple[int, int]
Color = tuple[int, int, int]

# Short side on which smoothing and quantisation run: enough to keep faces
# readable, small enough for the Kuwahara filter to cost ~15 ms a pass.
_WORK_SHORT = 384
# Short side at which ink lines are found; the mask is then upscaled, which
# keeps lines anti-aliased at the output resolution.
_EDGE_SHORT = 768
# 99th percentile of the difference-of-Gaussians response of a crisp photo at
# the edge resolution; ink thresholds are relative to it.
_CRISP_EDGE = 0.045
# Images with a shorter side than this get no seal or frame: they would not fit.
_MIN_DECORATED = 128
# Rec. 601 luma weights.
_LUMA = (0.299, 0.587, 0.114)
# Faded newsprint inks that vintage-comic colours are pulled towards.
_VINTAGE_INKS: tuple[Color, ...] = (
    (242, 228, 192),  # paper cream
    (238, 180, 140),  # flesh tint
    (206, 64, 48),  # process red
    (232, 182, 70),  # mustard yellow
    (70, 118, 150),  # faded cyan-blue
    (128, 76, 50),  # brown
    (40, 30, 30),  # black plate
)
# Tone bands of the war comic, darkest first.
_BRONZE_INKS: tuple[Color, ...] = ((14, 9, 6), (96, 60, 32), (176, 128, 72), (240, 214, 160))
# Mineral pigments of gongbi painting that its colours lean towards.
_GONGBI_PIGMENTS: tuple[Color, ...] = (
    (190, 62, 46),  # cinnabar
    (222, 156, 142),  # rouge
    (84, 142, 112),  # malachite
    (64, 94, 142),  # azurite
    (202, 152, 82),  # ochre
    (242, 232, 212),  # lead white
    (52, 42, 36),  # ink
)


@dataclass(frozen=True)
class _Photo:
    """The input as every style sees it.

    ``preview`` is the photo reduced once to the edge resolution and
    tone-levelled; the styles never need more detail than that, because
    everything they draw at full size is ink, texture or an upscale.
    """

    preview: Image.Image
    size: Size


# --------------------------------------------------------------------------
# Conversions and resizing
# --------------------------------------------------------------------------


def _to_float(image: Image.Image) -> FloatArray:
    """Pixels as float32 in 0..1: (H, W, 3) for RGB, (H, W) for L."""
    return np.asarray(image, dtype=np.float32) / 255.0


def _to_image(array: NDArray[np.floating]) -> Image.Image:
    """Inverse of ``_to_float``: clip to 0..1 and convert back to 8 bits."""
    # In-place steps: this runs on full-size masks, where every pass counts.
    scaled = np.multiply(array, 255.0, dtype=np.float32)
    scaled += 0.5
    np.clip(scaled, 0.0, 255.0, out=scaled)
    return Image.fromarray(scaled.astype(np.uint8))


def _size_of(array: FloatArray) -> Size:
    return array.shape[1], array.shape[0]


def _scaled_size(size: Size, short: int) -> Size:
    """``size`` scaled so its short side is at most ``short`` (never enlarged)."""
    width, height = size
    factor = min(1.0, short / min(width, height))
    return max(1, round(width * factor)), max(1, round(height * factor))


def _downscale(image: Image.Image, short: int) -> Image.Image:
    # Image.reduce (enabled by the reducing gap) averages whole pixel blocks
    # before the BOX resize: the fastest and least aliased way to shrink.
    size = _scaled_size(image.size, short)
    if size == image.size:
        return image
    return image.resize(size, Image.Resampling.BOX, reducing_gap=1.0)


def _upscale(array: FloatArray, size: Size) -> Image.Image:
    """Colour (or tone) array to an image of ``size``.

    BICUBIC keeps region borders nearly as crisp as LANCZOS for a quarter
    less time, and the borders are mostly under ink lines anyway.
    """
    image = _to_image(array)
    return image if image.size == size else image.resize(size, Image.Resampling.BICUBIC)


def _mask_image(mask: FloatArray, size: Size) -> Image.Image:
    """0..1 mask as an L image of ``size`` (bilinear is plenty for masks)."""
    image = _to_image(mask)
    return image if image.size == size else image.resize(size, Image.Resampling.BILINEAR)


def _resize_mask(mask: FloatArray, size: Size) -> FloatArray:
    """Resize a 0..1 mask; bilinear is enough for masks and cheaper than LANCZOS."""
    return mask if _size_of(mask) == size else _to_float(_mask_image(mask, size))


def _blur(array: FloatArray, radius: float, box: bool = False) -> FloatArray:
    """Gaussian (or, twice as fast, box) blur of a 0..1 grey or RGB array."""
    kernel = ImageFilter.BoxBlur(radius) if box else ImageFilter.GaussianBlur(radius)
    return _to_float(_to_image(array).filter(kernel))


def _grid(height: int, width: int) -> tuple[FloatArray, FloatArray]:
    """Open pixel-coordinate grids (rows, cols) for broadcasting."""
    rows = np.arange(height, dtype=np.float32)[:, None]
    cols = np.arange(width, dtype=np.float32)[None, :]
    return rows, cols


def _f32(array: NDArray[np.floating]) -> FloatArray:
    return np.asarray(array, dtype=np.float32)


# --------------------------------------------------------------------------
# Colour helpers (used on small arrays or palettes, so they are cheap)
# --------------------------------------------------------------------------


def _auto_levels(image: Image.Image) -> Image.Image:
    """Stretch the tonal range, and brighten dark photos, with one lookup table.

    Styles map tones to inks, dots and washes, which only works if the photo
    spans the range; a dim or hazy photo would otherwise come out as a flat
    dark (or grey) field.  One table for all channels keeps the hues.
    """
    luma = _luma(_to_float(_downscale(image, 96)))
    low, middle, high = (float(v) for v in np.percentile(luma, (1, 50, 99)))
    gain = min(2.5, 1.0 / max(high - low, 1e-3))
    middle = max((middle - low) * gain, 1e-3)
    # Lift the midtones of dark photos towards 0.45, but gently (gamma >= 0.75).
    gamma = min(1.0, max(0.75, math.log(0.45) / math.log(middle))) if middle < 0.45 else 1.0
    levels = np.clip((np.arange(256, dtype=np.float32) / 255.0 - low) * gain, 0.0, 1.0)
    table = (levels**gamma * 255.0 + 0.5).astype(np.uint8).tolist()
    return image.point(table * 3)


def _luma(rgb: FloatArray) -> FloatArray:
    # Explicit weighted sum rather than a matmul: a BLAS call could spawn its
    # own threads and oversubscribe the server's thread pool.
    red, green, blue = _LUMA
    return _f32(rgb[..., 0] * red + rgb[..., 1] * green + rgb[..., 2] * blue)


def _rgb(color: Color) -> FloatArray:
    return np.array(color, dtype=np.float32) / 255.0


def _saturate(rgb: FloatArray, amount: float) -> FloatArray:
    """Scale chroma around the luma; ``amount`` > 1 boosts, < 1 mutes."""
    grey = _luma(rgb)[..., None]
    return _f32(np.clip(grey + (rgb - grey) * amount, 0.0, 1.0))


def _contrast(values: FloatArray, amount: float, pivot: float = 0.5) -> FloatArray:
    return _f32(np.clip((values - pivot) * amount + pivot, 0.0, 1.0))


def _lift(values: FloatArray, floor: float, gamma: float = 1.0) -> FloatArray:
    """Compress into ``floor``..1 after a gamma: the high-key / pastel move."""
    return _f32(floor + (1.0 - floor) * np.clip(values, 0.0, 1.0) ** gamma)


def _tint(rgb: FloatArray, color: Color, amount: float | FloatArray) -> FloatArray:
    """Mix towards a colour; ``amount`` may be a per-pixel (H, W, 1) array."""
    return _f32(rgb + (_rgb(color) - rgb) * amount)


def _screen(base: FloatArray, light: FloatArray) -> FloatArray:
    return _f32(1.0 - (1.0 - base) * (1.0 - np.clip(light, 0.0, 1.0)))


def _gradient_map(values: FloatArray, stops: Sequence[tuple[float, Color]]) -> FloatArray:
    """Map 0..1 values to colours by piecewise-linear interpolation of ``stops``."""
    positions = [stop[0] for stop in stops]
    colors = np.array([stop[1] for stop in stops], dtype=np.float32) / 255.0
    channels = [np.interp(values, positions, colors[:, c]) for c in range(3)]
    return _f32(np.stack(channels, axis=-1))


def _snap(palette: FloatArray, inks: Sequence[Color], amount: float) -> FloatArray:
    """Pull each palette colour ``amount`` of the way to its nearest ink."""
    targets = np.array(inks, dtype=np.float32) / 255.0
    distance = ((palette[:, None, :] - targets[None, :, :]) ** 2).sum(axis=-1)
    nearest = targets[np.argmin(distance, axis=1)]
    return _f32(palette + (nearest - palette) * amount)


# --------------------------------------------------------------------------
# Smoothing and quantisation
# --------------------------------------------------------------------------


def _window_sums(padded: FloatArray, weights: Sequence[float]) -> FloatArray:
    """Separable weighted window sums of planar (C, H, W) data, valid region only.

    Adding weighted shifted slices is exact enough in float32 and, for the
    short windows used here, faster than FFTs or integral images.
    """
    taps = len(weights)
    height = padded.shape[1] - taps + 1
    width = padded.shape[2] - taps + 1
    rows = padded[:, :height] * np.float32(weights[0])
    for offset in range(1, taps):
        rows += padded[:, offset : offset + height] * np.float32(weights[offset])
    total = rows[:, :, :width] * np.float32(weights[0])
    for offset in range(1, taps):
        total += rows[:, :, offset : offset + width] * np.float32(weights[offset])
    return total


def _kuwahara(rgb: FloatArray, radius: int) -> FloatArray:
    """Soft Kuwahara filter: each pixel takes the mean colour of its calmest neighbourhood.

    Four Gaussian-weighted windows sit diagonally off the pixel; the one with
    the lowest luma variance wins.  Texture flattens into painterly patches
    while edges stay sharp, which is what makes a photo start to read as a
    drawing.  Gaussian rather than square windows avoid the blocky artefacts
    of the classic filter and keep small features such as eyes.
    """
    height, width = rgb.shape[:2]
    shift = max(1, (radius + 1) // 2)
    taps = np.arange(-radius, radius + 1, dtype=np.float32)
    weights = np.exp(-2.0 * (taps / radius) ** 2)
    weights /= weights.sum()
    luma = _luma(rgb)
    planes = np.concatenate([np.moveaxis(rgb, -1, 0), luma[None], (luma * luma)[None]])
    pad = radius + shift
    padded = np.pad(planes, ((0, 0), (pad, pad), (pad, pad)), mode="edge")
    means = _window_sums(padded, weights.tolist())
    best_rgb = np.empty((3, height, width), dtype=np.float32)
    best_var = np.full((height, width), np.inf, dtype=np.float32)
    # Index 0 is the window centred ``shift`` pixels up/left, 2*shift down/right.
    for dy, dx in ((0, 0), (0, 2 * shift), (2 * shift, 0), (2 * shift, 2 * shift)):
        window = means[:, dy : dy + height, dx : dx + width]
        variance = window[4] - window[3] * window[3]
        better = variance < best_var
        np.minimum(variance, best_var, out=best_var)
        np.copyto(best_rgb, window[:3], where=better[None])
    return np.ascontiguousarray(np.moveaxis(best_rgb, 0, -1))


def _working_copy(photo: _Photo, radius: int, passes: int, soften: float = 0.0) -> FloatArray:
    """The photo at the working resolution, Kuwahara-smoothed (and optionally blurred)."""
    rgb = _to_float(_downscale(photo.preview, _WORK_SHORT))
    for _ in range(passes):
        rgb = _kuwahara(rgb, radius)
    # A light blur after Kuwahara rounds its patch borders, so that
    # later quantisation produces smooth region contours instead of noise.
    return _blur(rgb, soften) if soften > 0 else rgb


@dataclass(frozen=True)
class _Cels:
    """A photo reduced to flat colour regions: a palette image and its palette."""

    indexed: Image.Image  # mode "P"
    palette: FloatArray  # (N, 3), 0..1, in index order

    @property
    def indices(self) -> NDArray[np.intp]:
        return np.asarray(self.indexed).astype(np.intp)

    def paint(self, palette: FloatArray) -> Image.Image:
        """The regions filled with ``palette`` (same order as ``self.palette``).

        Only the palette is rewritten, so restyling the colours costs nothing.
        """
        entries = (np.clip(palette, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        painted = self.indexed.copy()
        painted.putpalette(entries.ravel().tolist())
        return painted.convert("RGB")

    def outlines(self, min_step: float) -> FloatArray:
        """1 where neighbouring regions differ in colour by more than ``min_step``.

        Outlining only clearly different neighbours avoids tracing the many
        near-identical bands that quantising a smooth gradient produces.
        """
        indices = self.indices
        # Decide per pair of palette entries once, then just look pairs up.
        steps = np.abs(self.palette[:, None, :] - self.palette[None, :, :]).sum(axis=-1)
        distinct = steps > min_step
        edge = np.zeros(indices.shape, dtype=bool)
        edge[:, :-1] |= distinct[indices[:, :-1], indices[:, 1:]]
        edge[:-1] |= distinct[indices[:-1], indices[1:]]
        return edge.astype(np.float32)


def _quantize(rgb: FloatArray, colors: int, size: Size | None = None) -> _Cels:
    """Reduce to ``colors`` flat colours, after a smooth enlargement to ``size``.

    The palette comes from median cut on a 64 px thumbnail (its cost grows
    quickly with image size) and is applied without dithering, which gives
    the flat regions of cel animation.  Quantising after a bicubic
    enlargement puts region borders on smooth curves instead of the working
    resolution's pixel staircase.
    """
    image = _to_image(rgb)
    palette_image = _downscale(image, 64).quantize(colors, method=Image.Quantize.MEDIANCUT)
    if size is not None and size != image.size:
        image = image.resize(size, Image.Resampling.BICUBIC)
    indexed = image.quantize(palette=palette_image, dither=Image.Dither.NONE)
    flat = np.array(indexed.getpalette() or [0, 0, 0], dtype=np.float32)
    return _Cels(indexed, flat.reshape(-1, 3) / 255.0)


# --------------------------------------------------------------------------
# Ink lines
# --------------------------------------------------------------------------


def _thicken(mask: FloatArray, radius: float, gain: float = 2.5) -> FloatArray:
    """Soft dilation: blur then amplify; cheaper than a max filter and anti-aliased.

    A box blur suffices: its square footprint is a pixel or two wide at the
    edge resolution and disappears in the upscale.
    """
    if radius <= 0:
        return mask
    return _f32(np.clip(_blur(mask, radius, box=True) * gain, 0.0, 1.0))


def _ink_lines(
    photo: _Photo,
    sigma: float,
    threshold: float,
    softness: float = 0.04,
    thickness: float = 0.0,
) -> FloatArray:
    """Ink mask (0..1, edge resolution) from a difference of Gaussians.

    Only pixels darker than their surroundings are inked, which draws one
    line per edge on its dark side, as a pen would, instead of the double
    contour of a gradient magnitude.  ``threshold`` and ``softness`` are for
    a crisp photo; soft (e.g. upscaled) photos get proportionally lower ones
    so that they still receive outlines.
    """
    gray = photo.preview.convert("L")
    fine = _to_float(gray.filter(ImageFilter.GaussianBlur(sigma)))
    coarse = _to_float(gray.filter(ImageFilter.GaussianBlur(sigma * 1.6)))
    response = coarse - fine
    # The strongest edges (99th percentile, sampled) measure the sharpness.
    sharpness = float(np.percentile(response[::3, ::3], 99)) / _CRISP_EDGE
    scale = min(1.0, max(0.45, sharpness))
    lines = np.clip((response - threshold * scale) / (softness * scale), 0.0, 1.0)
    return _thicken(_f32(lines), thickness)


# --------------------------------------------------------------------------
# Textures, screens and lighting
# --------------------------------------------------------------------------


def _value_noise(size: Size, seed: int, cell: tuple[int, int]) -> FloatArray:
    """Smooth random field in 0..1 with features ``cell`` = (w, h) pixels wide.

    Random values on a coarse lattice are upscaled bicubically, so the cost is
    one small resize whatever the output size; unequal cells give streaks.
    """
    width, height = size
    rng = np.random.default_rng(seed)
    shape = (max(2, height // cell[1] + 2), max(2, width // cell[0] + 2))
    coarse = _to_image(rng.random(shape, dtype=np.float32))
    return _to_float(coarse.resize(size, Image.Resampling.BICUBIC))


def _brush_streaks(size: Size, seed: int, angle: float = 35.0) -> FloatArray:
    """Noise stretched into parallel diagonal streaks (0..1), like a dry brush."""
    width, height = size
    side = math.ceil(math.hypot(width, height))
    streaks = _to_image(_value_noise((side, side), seed, (32, 3)))
    left, top = (side - width) // 2, (side - height) // 2
    rotated = streaks.rotate(angle, Image.Resampling.BILINEAR)
    return _to_float(rotated.crop((left, top, left + width, top + height)))


def _fractal_noise(size: Size, seed: int, cells: Sequence[int]) -> FloatArray:
    """Octaves of value noise, normalised to 0..1 (mottled paper, brush pressure)."""
    total = np.zeros((size[1], size[0]), dtype=np.float32)
    for octave, cell in enumerate(cells):
        total += _value_noise(size, seed + octave, (cell, cell)) / (octave + 1)
    total -= total.min()
    peak = float(total.max())
    return total / peak if peak > 0 else total


def _grain(size: Size, seed: int) -> FloatArray:
    """Per-pixel uniform noise in -0.5..0.5, tiled from a 256x256 block.

    Tiling makes full-resolution grain cost a memory copy; repetition is
    invisible in white noise.
    """
    tile = np.random.default_rng(seed).random((256, 256), dtype=np.float32) - 0.5
    return _tile(tile, size)


def _tile(tile: FloatArray, size: Size) -> FloatArray:
    """Repeat a small periodic pattern to cover ``size``."""
    width, height = size
    reps = (height // tile.shape[0] + 1, width // tile.shape[1] + 1)
    return np.tile(tile, reps)[:height, :width]


def _fibres(size: Size, seed: int) -> FloatArray:
    """Rice-paper fibres (0..1): short random strokes drawn at half size."""
    width, height = size
    small = (max(8, width // 2), max(8, height // 2))
    rng = np.random.default_rng(seed)
    count = small[0] * small[1] // 150
    rows = rng.integers(0, small[1], count)
    cols = rng.integers(0, small[0], count)
    angles = rng.random(count) * math.pi
    strands = np.zeros((small[1], small[0]), dtype=np.float32)
    # Each fibre is a short straight run; vectorised over all fibres per step.
    for step in range(-3, 4):
        r = np.clip(rows + np.round(np.sin(angles) * step).astype(np.intp), 0, small[1] - 1)
        c = np.clip(cols + np.round(np.cos(angles) * step).astype(np.intp), 0, small[0] - 1)
        strands[r, c] = 1.0
    return _resize_mask(_blur(strands, 0.5), size)


def _vignette(size: Size, strength: float, power: float = 2.0) -> FloatArray:
    """Multiplier that is 1 in the centre and ``1 - strength`` in the corners."""
    width, height = size
    rows, cols = _grid(height, width)
    dy = (rows - (height - 1) / 2) / (height / 2)
    dx = (cols - (width - 1) / 2) / (width / 2)
    radius = np.clip(np.sqrt(dx * dx + dy * dy) / math.sqrt(2.0), 0.0, 1.0)
    return _f32(1.0 - strength * radius**power)


def _dot_screen(size: Size, period: int) -> FloatArray:
    """Clustered-dot threshold screen at 45 degrees (0 at dot centres, 1 between).

    Comparing ink amount against it yields Ben-Day dots whose size follows the
    tone.  The screen is periodic, so one tile is built and repeated.
    """
    rows, cols = _grid(period, period)
    half = period / 2
    # A 45-degree lattice has dot centres at the tile corners and its middle.
    corner = np.minimum(rows, period - rows) ** 2 + np.minimum(cols, period - cols) ** 2
    middle = (rows - half) ** 2 + (cols - half) ** 2
    # Normalised by the largest possible distance to a centre (half a period).
    distance = np.sqrt(np.minimum(corner, middle)) / half
    return _tile(_f32(np.clip(distance, 0.0, 1.0)), size)


def _line_screen(size: Size, period: int) -> FloatArray:
    """Diagonal hatching threshold screen (0 on the line, 1 midway between)."""
    rows, cols = _grid(period, period)
    phase = ((rows + cols) % period) / period
    return _tile(_f32(np.abs(phase - 0.5) * 2.0), size)


def _halftone(ink: FloatArray, screen: FloatArray, sharpness: float = 5.0) -> FloatArray:
    """Anti-aliased screening: coverage 1 where the ink amount exceeds the screen."""
    # In place: this runs at full resolution.
    coverage = np.subtract(ink, screen, dtype=np.float32)
    coverage *= sharpness
    coverage += 0.5
    return np.clip(coverage, 0.0, 1.0, out=coverage)


def _bloom(rgb: FloatArray, threshold: float, radius: float, strength: float) -> FloatArray:
    """Screen a blurred copy of the bright parts back on top: a soft glow."""
    bright = np.clip((rgb - threshold) / (1.0 - threshold), 0.0, 1.0)
    return _screen(rgb, _blur(_f32(bright), radius) * strength)


def _paint(image: Image.Image, color: Color, mask: Image.Image) -> None:
    """Paint a flat colour through an L mask, in place.

    Pasting a solid image is much faster in Pillow than pasting a colour value
    with a mask, and in-place pasting skips the copy ``Image.composite`` makes.
    """
    image.paste(Image.new("RGB", image.size, color), None, mask)


def _finish(
    base: FloatArray | Image.Image,
    size: Size,
    *,
    ink: FloatArray | None = None,
    ink_color: Color = (0, 0, 0),
    opacity: float = 1.0,
    shade: FloatArray | None = None,
) -> Image.Image:
    """Enlarge the colour base to ``size`` with ink lines and shading painted on.

    A ``base`` image is painted in place.  Lines (``ink``, at the edge
    resolution) are painted before the final enlargement, which then smooths
    them like the colours, so the only full-size work is one resize and, for
    textured styles, one paint of ``shade`` (a 0..1 multiplier of any size:
    dots, hatching, grain, scanlines) that darkens towards ``ink_color``.
    """
    canvas = base if isinstance(base, Image.Image) else _to_image(base)
    if ink is not None:
        if canvas.size != _size_of(ink):
            canvas = canvas.resize(_size_of(ink), Image.Resampling.BICUBIC)
        _paint(canvas, ink_color, _to_image(ink * opacity))
    # Bilinear is enough for the last 2x step from the edge resolution, where
    # everything is already smooth; larger steps need bicubic.
    smooth = canvas.width * 2.5 >= size[0]
    resample = Image.Resampling.BILINEAR if smooth else Image.Resampling.BICUBIC
    image = canvas if canvas.size == size else canvas.resize(size, resample)
    if shade is not None:
        _paint(image, ink_color, _mask_image(1.0 - shade, size))
    return image


# --------------------------------------------------------------------------
# Styles
# --------------------------------------------------------------------------


def _vintage_comic(photo: _Photo) -> Image.Image:
    """Faded print comic: few warm inks, Ben-Day dots for shading, heavy outlines."""
    work = _working_copy(photo, 4, 1, soften=1.0)
    cels = _quantize(work, 8, photo.preview.size)
    inks = _snap(_saturate(_contrast(cels.palette, 1.2), 1.2), _VINTAGE_INKS, 0.5)
    # Slightly mottled, aged paper under the inks (8-bit multiply: cheap).
    paper = 1.0 - 0.08 * _fractal_noise(_size_of(work), 11, (48, 12))
    mottle = _mask_image(paper, photo.preview.size).convert("RGB")
    flat = ImageChops.multiply(cels.paint(inks), mottle)
    # Dark ink dots carry the shading; the lights stay clean paper.
    darkness = 1.0 - _to_float(flat.convert("L"))
    dot_ink = _resize_mask(np.clip(darkness * 1.1 - 0.2, 0.0, 1.0), photo.size)
    dots = _halftone(dot_ink, _dot_screen(photo.size, 14))
    lines = np.maximum(
        _ink_lines(photo, 1.2, 0.02, 0.03, thickness=1.3),
        _thicken(cels.outlines(0.5), 0.6),
    )
    return _finish(
        flat,
        photo.size,
        ink=lines,
        ink_color=(35, 22, 20),
        shade=1.0 - 0.6 * dots,
    )


def _fairy_tale(photo: _Photo) -> Image.Image:
    """Soft 3D-animation look: rounded smooth shading, pastel glow, bloom."""
    # Strong smoothing plus a blur: skin and cloth become smooth surfaces.
    work = _working_copy(photo, 4, 2, soften=1.2)
    # A wide unsharp mask exaggerates the light-to-shadow roll-off across
    # each form, the "volume" of rendered 3D characters.
    work = _f32(np.clip(work + (work - _blur(work, 12.0)) * 0.5, 0.0, 1.0))
    work = _saturate(work, 1.4)
    # Lilac shadows and warm lights: storybook grading.
    work = _screen(work, np.array([0.14, 0.08, 0.22], dtype=np.float32))
    work = _tint(work, (255, 232, 214), 0.08)
    work = _bloom(work, 0.55, 12.0, 1.0)
    # Dreamy pink glow creeping in from the corners.
    glow = 1.0 - _vignette(_size_of(work), 0.6)
    work = _screen(work, _rgb((120, 60, 110)) * glow[..., None])
    lines = _ink_lines(photo, 1.8, 0.04, 0.08, thickness=0.8)
    return _finish(work, photo.size, ink=lines, ink_color=(90, 40, 80), opacity=0.4)


def _anime(photo: _Photo) -> Image.Image:
    """2D anime cel shading: flat vivid regions with clean dark outlines."""
    work = _working_copy(photo, 4, 1, soften=1.0)
    cels = _quantize(work, 14, photo.preview.size)
    vivid = _saturate(_contrast(cels.palette, 1.1) ** 0.85, 1.5)
    lines = np.maximum(
        _ink_lines(photo, 1.0, 0.035, 0.04, thickness=0.6),
        _thicken(cels.outlines(0.35), 0.5) * 0.8,
    )
    return _finish(cels.paint(vivid), photo.size, ink=lines, ink_color=(30, 22, 40))


def _refreshing(photo: _Photo) -> Image.Image:
    """Light and airy: high-key pastel washes, mint shadows, thin soft lines."""
    work = _working_copy(photo, 3, 1, soften=0.8)
    cels = _quantize(work, 16)
    pastel = _lift(_saturate(cels.palette, 1.25), 0.4, 0.75)
    # Watercolour: pigment pools slightly darker along the edges of each wash.
    pooling = _blur(cels.outlines(0.15), 1.0)
    work = _blur(pastel[cels.indices], 0.7) * (1.0 - 0.12 * pooling[..., None])
    # Split tone: mint in the shadows, clean white fading in at the borders.
    shadow = (1.0 - _luma(work))[..., None]
    work = _tint(work, (150, 215, 195), shadow * 0.4)
    airy = (1.0 - _vignette(_size_of(work), 0.7, 3.0))[..., None]
    work = _tint(work, (250, 253, 250), airy)
    lines = _ink_lines(photo, 0.9, 0.02, 0.05)
    return _finish(work, photo.size, ink=lines, ink_color=(60, 110, 105), opacity=0.8)


def _future_tech(photo: _Photo) -> Image.Image:
    """Cyberpunk neon: dark blue base, glowing cyan/magenta edges, grid, scanlines."""
    work = _working_copy(photo, 3, 1)
    dark = _gradient_map(
        _luma(work), ((0.0, (2, 2, 14)), (0.55, (22, 14, 62)), (1.0, (70, 80, 160)))
    )
    edges = _ink_lines(photo, 1.0, 0.015, 0.04, thickness=0.7)
    height, width = edges.shape
    rows, cols = _grid(height, width)
    # Faint display grid, drawn at edge resolution so it glows with the lines.
    cell = max(8, min(width, height) // 12)
    grid = ((rows % cell < 1.0) | (cols % cell < 1.0)).astype(np.float32) * 0.35
    tubes = np.maximum(edges, grid)
    # The glow is soft, so it is blurred at the (4x smaller) working size.
    glow = _resize_mask(tubes, _size_of(work))[..., None] * _neon_hue(work.shape[:2])
    lit = _screen(dark, _blur(_f32(glow), 3.5) * 1.8)
    canvas = ImageChops.screen(
        _upscale(lit, (width, height)),
        _to_image(tubes[..., None] * _neon_hue((height, width))),
    )
    # One column of scanline shading; _finish stretches it across the width.
    scanlines = _tile(np.array([[0.7], [1.0], [1.0], [1.0]], dtype=np.float32), (1, photo.size[1]))
    return _finish(canvas, photo.size, shade=scanlines)


def _neon_hue(shape: tuple[int, int]) -> FloatArray:
    """Neon colour sweeping from cyan (top left) to magenta (bottom right)."""
    rows, cols = _grid(*shape)
    sweep = ((cols / shape[1] + rows / shape[0]) / 2.0)[..., None]
    cyan, magenta = _rgb((20, 255, 255)), _rgb((255, 40, 220))
    return _f32(cyan + (magenta - cyan) * sweep)


def _ink_wash(photo: _Photo) -> Image.Image:
    """Chinese ink wash: graded ink washes, brush lines, rice paper and a seal."""
    work = _working_copy(photo, 4, 1, soften=0.8)
    size = _size_of(work)
    tone = _contrast(_luma(work), 1.3, 0.45) ** 0.7
    # Noise before posterising gives the ragged, bled borders of wet ink;
    # the blur afterwards softens the steps into washes.
    ragged = tone + (_fractal_noise(size, 50, (24, 8)) - 0.5) * 0.16
    washes = _blur(_f32(np.floor(np.clip(ragged, 0.0, 0.999) * 4.0) / 3.0), 1.8)
    # Dry-brush streaks faintly break up the darkest ink.
    streaks = _brush_streaks(size, 54) - 0.5
    washes = washes + streaks * np.clip(0.4 - washes, 0.0, 0.4) * 0.6
    ink = _gradient_map(
        washes,
        (
            (0.0, (22, 20, 20)),
            (0.34, (95, 92, 88)),
            (0.67, (188, 182, 170)),
            (1.0, (242, 235, 218)),
        ),
    )
    # Brush lines: thickness follows noise, like varying brush pressure.
    lines = _ink_lines(photo, 1.6, 0.025, 0.05, thickness=1.2)
    pressure = _fractal_noise(_size_of(lines), 51, (48, 16))
    lines = _f32(lines * np.clip(pressure * 1.8 - 0.2, 0.15, 1.0))
    # Paper texture at the edge resolution is fine enough and 4x cheaper.
    paper = 1.0 - 0.06 * _fibres(_size_of(lines), 52) + _grain(_size_of(lines), 53) * 0.05
    result = _finish(ink, photo.size, ink=lines, ink_color=(20, 18, 16), opacity=0.9, shade=paper)
    return _stamp_seal(result)


def _war_comic(photo: _Photo) -> Image.Image:
    """Gritty heroic war comic: bronze tones, solid blacks, hatching, vignette."""
    work = _working_copy(photo, 3, 1, soften=0.6)
    tone = _contrast(_luma(work), 1.45, 0.48)
    # Four hard bronze bands, as in hand-coloured comic pages, cut after
    # enlarging the tone so that their borders are smooth curves.
    size = photo.preview.size
    bands = np.minimum(_resize_mask(tone, size) * 4.0, 3.0).astype(np.uint8)
    palette = np.array(_BRONZE_INKS, dtype=np.float32) / 255.0
    bronze = _Cels(Image.fromarray(bands), palette).paint(palette)
    # A dash of the photo's own colour, then a heavy vignette.
    base = Image.blend(bronze, _upscale(_saturate(work, 0.4), size), 0.15)
    vignette = _mask_image(_vignette(_size_of(work), 0.85, 1.6), size)
    base = ImageChops.multiply(base, vignette.convert("RGB"))
    # Diagonal hatching over the darker half, roughened with grit.
    hatch_ink = _resize_mask(1.0 - tone, photo.size) * 1.2 - 0.55
    hatch = _halftone(hatch_ink, _line_screen(photo.size, 16), 4.0)
    shade = (1.0 - 0.75 * hatch) * (1.0 + _grain(photo.size, 61) * 0.3)
    lines = _ink_lines(photo, 1.4, 0.02, 0.03, thickness=1.8)
    return _finish(base, photo.size, ink=lines, ink_color=(10, 6, 4), shade=_f32(shade))


def _colorful(photo: _Photo) -> Image.Image:
    """Bright playful cartoon: few saturated flat colours, thick black outlines."""
    work = _working_copy(photo, 4, 2, soften=2.0)
    cels = _quantize(work, 10, photo.preview.size)
    candy = _saturate(_lift(_contrast(cels.palette, 1.15), 0.08, 0.75), 2.2)
    lines = np.maximum(
        _ink_lines(photo, 1.6, 0.045, 0.04, thickness=2.0),
        _thicken(cels.outlines(0.45), 1.5, 3.0),
    )
    return _finish(cels.paint(candy), photo.size, ink=lines, ink_color=(12, 10, 12))


def _gongbi(photo: _Photo) -> Image.Image:
    """Gongbi court painting: fine outlines, soft layered colour on silk, gold accents."""
    work = _working_copy(photo, 4, 1, soften=0.8)
    cels = _quantize(work, 14)
    # Lean the colours towards the mineral pigments of court painting.
    tones = _lift(_saturate(_snap(cels.palette, _GONGBI_PIGMENTS, 0.35), 0.85), 0.22, 0.85)
    # Flat colour layers, softly graded, laid as translucent washes on silk.
    work = _rgb((236, 220, 186)) * _blur(tones[cels.indices], 1.0)
    highlight = np.clip((_luma(work) - 0.62) * 3.0, 0.0, 1.0)[..., None]
    work = _tint(work, (212, 170, 80), highlight * 0.35)
    lines = _ink_lines(photo, 0.8, 0.015, 0.03)
    # Silk weave: faint horizontal and vertical threads.
    rows, cols = _grid(photo.size[1], photo.size[0])
    weave = 1.0 - 0.035 * ((rows % 3 < 1) | (cols % 3 < 1)) + _grain(photo.size, 81) * 0.04
    result = _finish(work, photo.size, ink=lines, ink_color=(60, 34, 22), shade=_f32(weave))
    return _gold_frame(result)


# --------------------------------------------------------------------------
# Decorations
# --------------------------------------------------------------------------


def _stamp_seal(image: Image.Image) -> Image.Image:
    """Stamp a cinnabar seal with carved pseudo-glyphs in the lower right, in place."""
    width, height = image.size
    if min(width, height) < _MIN_DECORATED:
        return image
    side = min(width, height) // 8
    seal = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(seal)
    draw.rounded_rectangle((0, 0, side - 1, side - 1), radius=side // 10, fill=255)
    stroke = max(1, side // 14)
    inner = side // 8
    draw.rectangle((inner, inner, side - inner, side - inner), outline=0, width=stroke)
    rng = np.random.default_rng(5)
    # Two columns of carved strokes suggest a two-character seal.
    span = (side - 2 * inner) // 2
    for column in range(2):
        left = inner + stroke * 2 + column * span
        right = left + span - stroke * 4
        top, bottom = inner + stroke * 2, side - inner - stroke * 2
        for _ in range(3):
            y = int(rng.integers(top, max(top + 1, bottom)))
            draw.line((left, y, right, y), fill=0, width=stroke)
        x = int(rng.integers(left, max(left + 1, right)))
        draw.line((x, top, x, bottom), fill=0, width=stroke)
    # Imperfect ink transfer: knock out random specks.
    specks = np.random.default_rng(6).random((side, side)) < 0.1
    alpha = np.asarray(seal, dtype=np.float32) * np.where(specks, 0.35, 0.92)
    margin = side // 3
    image.paste(
        Image.new("RGB", (side, side), (178, 32, 28)),
        (width - side - margin, height - side - margin),
        Image.fromarray(alpha.astype(np.uint8)),
    )
    return image


def _gold_frame(image: Image.Image) -> Image.Image:
    """Draw a thin gold and cinnabar border, as on a mounted silk painting, in place."""
    width, height = image.size
    if min(width, height) < _MIN_DECORATED:
        return image
    unit = max(1, min(width, height) // 200)
    draw = ImageDraw.Draw(image)
    outer = unit * 8
    gold_box = (outer, outer, width - 1 - outer, height - 1 - outer)
    draw.rectangle(gold_box, outline=(196, 156, 72), width=unit * 3)
    inner = outer + unit * 6
    red_box = (inner, inner, width - 1 - inner, height - 1 - inner)
    draw.rectangle(red_box, outline=(168, 42, 32), width=unit)
    return image


_RENDERERS: tuple[Callable[[_Photo], Image.Image], ...] = (
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
    photo = _Photo(_auto_levels(_downscale(source, _EDGE_SHORT)), source.size)
    result = _RENDERERS[index](photo)
    if result.size != source.size:
        result = result.resize(source.size, Image.Resampling.LANCZOS)
    return result if result.mode == "RGB" else result.convert("RGB")
