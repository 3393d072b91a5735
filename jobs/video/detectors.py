"""Per-frame detectors of the analysis ("classical-v1"): numpy statistics on the decoded
8-bit limited-range YUV planes, no OCR or learned model.

All three work on a grid of tiles: 16x16 pixels of a "working" luma plane (the decoded luma,
subsampled by 2 or more when it is wider than 960 px, so a 1080p frame costs about as much as
a 540p one). Per tile: min, max and mean luma, the number of sharp horizontal and vertical
luma steps (>= EDGE_STEP code values between neighbours), the share of "mid-tone" pixels
between the tile's dark and bright level, and from the chroma planes the number of lit and of
tissue-coloured samples (the steps and mid-tones are measured on the contrasty tiles only,
those with a luma range >= TEXT_RANGE: no test reads them elsewhere). Tiles known to hold
the device's static overlay (learned by the analysis from the live frames, see analyze.py) are
left out of every decision, so a burned-in patient-data overlay does not make a black frame or
a live image look like text.

blank
    Method: at least 97% of the tiles are flat (luma range <= 12) and the flat tiles share
    one level (5th-95th percentile spread of their mean luma <= 12, of their mean chroma
    <= 8), the overlay's tiles left out unless at least 2% of the tiles among them show
    tissue (an overlay learned over a nearly still picture: then not blank). Catches black
    frames and uniform (e.g. blue "no signal") screens, noisy or not.
    Limits: a frame that is almost uniform except for a small object or text covering more
    than ~3% of it is not blank (it may be a text_screen); a very dark but not black live
    image with some detail is not blank either (by design).

text_screen
    Method: a tile is text-like when its luma range is >= 60 (ink against background), it
    has at least 12 sharp horizontal and 6 sharp vertical steps (strokes crossing the tile
    both ways) and at most 40% mid-tones (rendered text is two-level; tissue, blur and
    gradients are not). Tiles that are contrasty, two-level and have a few (>= 4) sharp steps
    join when connected to a text-like tile through such tiles (hysteresis, as in Canny's
    edge linking: tiles catching only the top of a line of glyphs, short words, rules and
    boxes of the form). A frame is a text screen when this text region makes at least 2% of
    the frame and at least 50% of its "content" tiles (those not flat at the background
    level, the most common flat level). So a screen of text lines on a plain background
    qualifies, even a sparse menu of a few lines; a live image with a patient-data strip
    beside it does not (the strip is a small part of the content, and once learned it is
    left out). On the synthetic scenes (7 seeds) text screens score 0.94-1.0, live images
    (some with an instrument) at most 0.28, office scenes at most 0.06. Limits: large
    non-text elements (thumbnail images, photos) dilute the ratio, so a report screen that
    is mostly pictures is missed; tiny (1 px strokes at low resolution), low-contrast
    (< 60) or blurred text is missed; dense sharp man-made patterns (a keyboard, a grid, a
    barcode, an instrument with many marks) can look like text.

non_endoscopic
    Method: among "lit" chroma samples (luma > 40), the share with a tissue colour: Cr - 128
    >= 10 and a red-to-orange-to-magenta hue (Cr' >= -0.8 Cb' and 2 Cr' >= Cb', with Cb', Cr'
    the chroma offsets from 128). When at least 5% of the samples are lit and fewer than 35%
    of them are tissue-coloured, the frame does not show the inside of the body (grey
    office, blue-ish room, white sheet, text screen). Limits: skin, wood and orange objects
    have tissue hues (a hand or face in front of the scope is NOT flagged); narrow band
    imaging (NBI/BLI, teal-brown) and bile-stained or greenish content look non-tissue and
    are flagged; very dark frames (< 5% lit) are never flagged; white balance far off
    (bluish live image) is flagged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, get_args

import numpy as np
import numpy.typing as npt

from jobs.video.planes import U8Array

#: The labels the analysis gives, in precedence order; the one definition every other part of
#: the service (request checks, the OpenAPI schema, the jobs) takes them from.
Label = Literal["blank", "text_screen", "non_endoscopic"]
LABELS: tuple[Label, ...] = get_args(Label)

BoolGrid = npt.NDArray[np.bool_]
FloatGrid = npt.NDArray[np.float32]
IntGrid = npt.NDArray[np.int32]
U16Array = npt.NDArray[np.uint16]

TILE = 16  # tile size in working-luma pixels
MAX_WORK_WIDTH = 960

EDGE_STEP = 40  # a "sharp" luma step between neighbouring pixels
FLAT_RANGE = 12  # max luma range of a flat tile
BLANK_FLAT_SHARE = 0.97
BLANK_LUMA_SPREAD = 12.0
BLANK_CHROMA_SPREAD = 8.0
# Not blank either when at least this share of the tiles left out (the overlay) shows tissue
# (TileStats.tissue_tiles): an overlay learned over a nearly still picture
# must not turn the picture into a black frame.
BLANK_HIDDEN_TISSUE = 0.02
TISSUE_TILE_SHARE = 0.5  # a tile shows tissue when this share of its chroma samples does
TEXT_RANGE = 60
TEXT_H_STEPS = 12
TEXT_V_STEPS = 6
TEXT_MAX_MIDTONES = 0.40
TEXT_WEAK_STEPS = 4  # sharp two-level tiles with this many steps can join a text region
TEXT_MIN_SHARE = 0.02  # of all tiles
TEXT_CONTENT_SHARE = 0.5  # of the content tiles
BACKGROUND_TOLERANCE = 16.0
LIT_LUMA = 40
TISSUE_MIN_CR = 10
LIT_MIN_SHARE = 0.05
TISSUE_MIN_SHARE = 0.35


@dataclass(frozen=True)
class FramePlanes:
    """One decoded frame for detectors: its 0-based number and its 8-bit limited-range Y, U, V
    planes as read-only (height, width) numpy views (valid during the call only)."""

    index: int
    y: U8Array
    u: U8Array
    v: U8Array


class FrameDetector(Protocol):
    """A pluggable detector (e.g. a later OCR or ML model), run by analyze_video on every
    analysed frame next to the classical ones; the labels it returns are added to theirs."""

    @property
    def name(self) -> str:
        """Short identifier, appended to the analysis' detection_method."""
        ...

    def __call__(self, planes: FramePlanes) -> Iterable[Label]:
        """The labels that apply to this frame (empty if none)."""
        ...


@dataclass(frozen=True)
class Grid:
    """The tile geometry of a video: working-luma stride, tile rows/columns, chroma layout."""

    stride: int  # working luma = luma[::stride, ::stride]
    rows: int
    cols: int
    sub_x: int  # chroma subsampling of the (normalized) planes
    sub_y: int
    c_step_x: int  # chroma sample step used for the colour statistics
    c_step_y: int
    c_tile_x: int  # sampled chroma per tile
    c_tile_y: int

    @classmethod
    def of(cls, width: int, height: int, sub_x: int, sub_y: int) -> Grid:
        """The grid for a width x height frame (at least TILE pixels a side: probe.check_size)
        whose chroma is subsampled by (sub_x, sub_y). The stride keeps the working luma at most
        MAX_WORK_WIDTH wide, but at least a tile high (a wide strip, 1920x18, is read whole), so
        there is at least one tile row and column."""
        stride = max(1, min(-(-width // MAX_WORK_WIDTH), height // TILE))
        rows = height // stride // TILE
        cols = width // stride // TILE
        tile_px = TILE * stride  # tile size in source luma pixels
        # Sample chroma at most every 2 source pixels' worth, at least 4 per tile side.
        c_step_x = max(1, tile_px // sub_x // 8)
        c_step_y = max(1, tile_px // sub_y // 8)
        return cls(
            stride=stride,
            rows=rows,
            cols=cols,
            sub_x=sub_x,
            sub_y=sub_y,
            c_step_x=c_step_x,
            c_step_y=c_step_y,
            c_tile_x=max(1, tile_px // sub_x // c_step_x),
            c_tile_y=max(1, tile_px // sub_y // c_step_y),
        )

    @property
    def tiles(self) -> int:
        return self.rows * self.cols

    @property
    def tile_px(self) -> int:
        """Tile size in source pixels."""
        return TILE * self.stride

    @property
    def chroma_luma_step(self) -> tuple[int, int] | None:
        """(down, across): the step in working-luma pixels between the luma samples at the
        chroma samples the colour statistics read, or None when those are not on the working
        luma's grid."""
        step_y, step_x = self.sub_y * self.c_step_y, self.sub_x * self.c_step_x
        if step_y % self.stride or step_x % self.stride:
            return None
        return step_y // self.stride, step_x // self.stride


@dataclass(frozen=True)
class TileStats:
    """Per-tile measurements of a batch of frames, (frames, rows, cols) arrays (frame(k) gives
    one frame's, (rows, cols) views)."""

    lo: npt.NDArray[np.int16]
    hi: npt.NDArray[np.int16]
    mean: FloatGrid
    # Measured on the contrasty tiles only (luma range >= TEXT_RANGE), 0 on the others: only
    # the text tests read them, and those need that range first.
    h_steps: IntGrid
    v_steps: IntGrid
    midtones: FloatGrid  # share of pixels between the tile's dark and bright level
    u_mean: FloatGrid
    v_mean: FloatGrid
    lit: IntGrid
    tissue: IntGrid
    samples_per_tile: int  # chroma samples behind lit and tissue

    def frame(self, k: int) -> TileStats:
        """Frame `k`'s measurements."""
        return TileStats(
            lo=self.lo[k],
            hi=self.hi[k],
            mean=self.mean[k],
            h_steps=self.h_steps[k],
            v_steps=self.v_steps[k],
            midtones=self.midtones[k],
            u_mean=self.u_mean[k],
            v_mean=self.v_mean[k],
            lit=self.lit[k],
            tissue=self.tissue[k],
            samples_per_tile=self.samples_per_tile,
        )

    @staticmethod
    def stacked(frames: Sequence[TileStats]) -> TileStats:
        """One batch of the (rows, cols) measurements of `frames`."""
        return TileStats(
            lo=np.stack([f.lo for f in frames]),
            hi=np.stack([f.hi for f in frames]),
            mean=np.stack([f.mean for f in frames]),
            h_steps=np.stack([f.h_steps for f in frames]),
            v_steps=np.stack([f.v_steps for f in frames]),
            midtones=np.stack([f.midtones for f in frames]),
            u_mean=np.stack([f.u_mean for f in frames]),
            v_mean=np.stack([f.v_mean for f in frames]),
            lit=np.stack([f.lit for f in frames]),
            tissue=np.stack([f.tissue for f in frames]),
            samples_per_tile=frames[0].samples_per_tile,
        )

    @property
    def tissue_tiles(self) -> BoolGrid:
        """Tiles showing tissue: at least TISSUE_TILE_SHARE of their chroma samples are
        tissue-coloured."""
        return np.asarray(self.tissue >= TISSUE_TILE_SHARE * self.samples_per_tile)

    @property
    def flat(self) -> BoolGrid:
        return np.asarray(self.hi - self.lo <= FLAT_RANGE)

    @property
    def text(self) -> BoolGrid:
        """Text-like tiles: contrasty, strokes both ways, two-level."""
        return np.asarray(
            (self.hi - self.lo >= TEXT_RANGE)
            & (self.h_steps >= TEXT_H_STEPS)
            & (self.v_steps >= TEXT_V_STEPS)
            & (self.midtones <= TEXT_MAX_MIDTONES)
        )

    @property
    def text_region(self) -> BoolGrid:
        """Text-like tiles plus the sharp two-level tiles connected to them through such tiles
        (hysteresis, as in Canny's edge linking): a tile that only catches the top of a line
        of glyphs, a short word, the rule under a heading. Each frame's grid grows on its own
        (the last two axes), at most rows + cols steps."""
        region = self.text
        weak = region | (
            (self.hi - self.lo >= TEXT_RANGE)
            & (self.h_steps + self.v_steps >= TEXT_WEAK_STEPS)
            & (self.midtones <= TEXT_MAX_MIDTONES)
        )
        if not region.any() or np.array_equal(weak, region):
            return np.asarray(region)  # nothing to grow from, or nothing to grow into
        for _ in range(sum(region.shape[-2:])):
            grown = region.copy()
            grown[..., 1:, :] |= region[..., :-1, :]
            grown[..., :-1, :] |= region[..., 1:, :]
            grown[..., :, 1:] |= region[..., :, :-1]
            grown[..., :, :-1] |= region[..., :, 1:]
            grown &= weak
            if np.array_equal(grown, region):
                break
            region = grown
        return np.asarray(region)


def sampled(
    plane: U8Array,
    step_y: int,
    step_x: int,
    height: int,
    width: int,
    out: U8Array | None = None,
) -> U8Array:
    """A contiguous copy of plane[::step_y, ::step_x][:height, :width] (written into `out`, a
    contiguous array of the copy's shape, when given; returned).

    numpy copies a view whose rows step 2 bytes several times slower than a contiguous one;
    every other byte of a row is, read as little-endian 16-bit words, each word's low byte, so
    for step_x 2 the rows are read as words and narrowed to bytes (the cast keeps the low
    byte): the same values in one vectorised pass.
    """
    rows = plane[: height * step_y : step_y]
    if step_x == 2 and plane.strides[1] == 1 and 2 * width <= plane.shape[1]:
        words = rows[:, : 2 * width].view("<u2")
        if out is None:
            return np.asarray(words.astype(np.uint8))
        np.copyto(out, words, casting="unsafe")
        return out
    view = rows[:, ::step_x][:, :width]
    if out is None:
        return np.ascontiguousarray(view)
    np.copyto(out, view)
    return out


class FrameSamples:
    """The pixels the tile statistics read, of up to `capacity` frames stacked one below the
    other, in buffers reused batch after batch: the working luma (rows * TILE lines a frame),
    the sampled chroma and, with `luma_at_chroma`, the luma at the chroma samples.

    Measuring a batch at once shares numpy's fixed cost per call (a few microseconds, a few
    hundred calls a frame) among its frames, and a frame's pixels are copied as it comes, so
    the decoder's picture is not kept.
    """

    def __init__(self, grid: Grid, capacity: int, *, luma_at_chroma: bool) -> None:
        self.grid = grid
        self.capacity = capacity
        self.count = 0
        self._height, width = grid.rows * TILE, grid.cols * TILE
        self._ch, self._cw = grid.rows * grid.c_tile_y, grid.cols * grid.c_tile_x
        self._work = np.empty((capacity * self._height, width), dtype=np.uint8)
        self._u = np.empty((capacity * self._ch, self._cw), dtype=np.uint8)
        self._v = np.empty_like(self._u)
        self._y_at_c = np.empty_like(self._u) if luma_at_chroma else None

    def add(self, planes: FramePlanes) -> None:
        """Copy the next frame's samples (raises IndexError when the batch is full)."""
        k, g = self.count, self.grid
        if k == self.capacity:
            raise IndexError("The batch of frame samples is full.")
        h, w, ch, cw = self._height, self._work.shape[1], self._ch, self._cw
        sampled(planes.y, g.stride, g.stride, h, w, self._work[k * h : (k + 1) * h])
        sampled(planes.u, g.c_step_y, g.c_step_x, ch, cw, self._u[k * ch : (k + 1) * ch])
        sampled(planes.v, g.c_step_y, g.c_step_x, ch, cw, self._v[k * ch : (k + 1) * ch])
        if self._y_at_c is not None:
            step_y, step_x = g.sub_y * g.c_step_y, g.sub_x * g.c_step_x
            sampled(planes.y, step_y, step_x, ch, cw, self._y_at_c[k * ch : (k + 1) * ch])
        self.count += 1

    def taken(self) -> tuple[U8Array, U8Array, U8Array, U8Array | None]:
        """The batch so far, stacked: working luma, u, v and the luma at the chroma samples
        (None without `luma_at_chroma`); views of the buffers, valid until the next add after
        clear."""
        n = self.count
        y_at_c = None if self._y_at_c is None else self._y_at_c[: n * self._ch]
        return (
            self._work[: n * self._height],
            self._u[: n * self._ch],
            self._v[: n * self._ch],
            y_at_c,
        )

    def clear(self) -> None:
        """Start the next batch (the buffers are reused)."""
        self.count = 0


def tile_stats(
    grid: Grid,
    work: U8Array,
    u8: U8Array,
    v8: U8Array,
    luma_at_chroma: U8Array,
    blocks: U16Array | None = None,
) -> TileStats:
    """Measure the tiles of a batch of frames (FrameSamples.taken): their working luma `work`
    (grid.rows * TILE lines a frame, one frame below the other), their sampled chroma `u8`
    and `v8` and the luma at those samples `luma_at_chroma` (grid.rows * c_tile_y lines a
    frame), and optionally `blocks`, the block_sums of `work` (of any block size dividing
    TILE).

    Runs on every analysed frame, so it works in uint8 on contiguous copies where it can (a
    strided view costs several times as much per pass), sums bools in narrow integers, and
    takes a batch at a time: a stacked frame's tiles are just more tile rows to reductions
    over tiles.
    """
    frames = work.shape[0] // (grid.rows * TILE)
    rows, cols = frames * grid.rows, grid.cols
    lo = _tile_reduce(np.minimum, work, rows, cols, TILE, TILE).astype(np.int16)
    hi = _tile_reduce(np.maximum, work, rows, cols, TILE, TILE).astype(np.int16)
    if blocks is None:
        sums = tile_sum(work, rows, cols, TILE, TILE)
    else:  # the same integers from the block sums: a pass over a few times fewer values
        n = blocks.shape[0] // rows  # blocks per tile side
        sums = tile_sum(blocks, rows, cols, n, n)
    mean = _quotient(sums, TILE * TILE)
    shape = (frames, grid.rows, cols)
    lo, hi = lo.reshape(shape), hi.reshape(shape)
    h_steps, v_steps, midtones = _stroke_stats(work.reshape(frames, -1, work.shape[1]), lo, hi)

    # Chroma samples every c_step, and the luma at the same places; the chroma tiles line up
    # with the luma tiles (c_tile * c_step * sub == tile size, for subsampling 1, 2 or 4).
    lit = luma_at_chroma > LIT_LUMA
    tissue = tissue_colour(u8, v8)
    tissue &= lit
    c_tiles = (rows, cols, grid.c_tile_y, grid.c_tile_x)
    return TileStats(
        lo=lo,
        hi=hi,
        mean=mean.reshape(shape),
        h_steps=h_steps,
        v_steps=v_steps,
        midtones=midtones,
        u_mean=_chroma_mean(u8, grid, rows).reshape(shape),
        v_mean=_chroma_mean(v8, grid, rows).reshape(shape),
        lit=tile_sum(lit, *c_tiles).reshape(shape),
        tissue=tile_sum(tissue, *c_tiles).reshape(shape),
        samples_per_tile=grid.c_tile_x * grid.c_tile_y,
    )


def _stroke_stats(
    work: U8Array, lo: npt.NDArray[np.int16], hi: npt.NDArray[np.int16]
) -> tuple[IntGrid, IntGrid, FloatGrid]:
    """Per tile of each frame of the (frames, height, width) working luma `work`, whose
    (frames, rows, cols) tile minima and maxima are `lo` and `hi`: the share of mid-tones,
    measured on the contrasty tiles (range >= TEXT_RANGE) only, and the sharp horizontal and
    vertical steps, measured on the contrasty tiles that are two-level (mid-tones <=
    TEXT_MAX_MIDTONES) only; 0 elsewhere.

    A step is |a - b| >= EDGE_STEP between a pixel and its left (upper) neighbour, counted in
    the pixel's tile (the first column and row of the frame have none). Mid-tones are the
    pixels with |y - (lo + hi) / 2| < (hi - lo) / 4, that is 3 lo + hi < 4 y < lo + 3 hi.
    Usually a small share of the tiles is contrasty (an endoscopic image is smooth: 10-25% of
    the tiles on the test corpus), and of those textured tissue is mostly mid-tones, so these
    are measured on those tiles alone. The text tests read the steps only where the mid-tones
    allow text, so leaving them 0 elsewhere changes no result.

    Shaped for speed, as it runs on every analysed frame (on 8-frame batches, one CPU, about
    4 times cheaper than the earlier 17 x 17 windows of a padded copy on a 1080p text screen,
    twice on live images; figures in the commits): the contrasty tiles are copied out
    (_TileLines), each as one row of TILE * TILE bytes, together with the same rows of their
    left and of their upper neighbours (each pixel's neighbour at the pixel's place), so a
    step count is one element-wise |a - b| >= EDGE_STEP over whole rows and no padded copy of
    the frames is made; the masks are counted as packed bits. They are measured 1024 tiles
    at a time, so that a pass's operands stay in the CPU cache (a text screen has thousands
    of contrasty tiles a batch; whole-batch passes ran at a third of the speed).
    """
    _, rows, cols = lo.shape
    h_steps = np.zeros(lo.shape, dtype=np.int32)
    v_steps = np.zeros(lo.shape, dtype=np.int32)
    midtones = np.zeros(lo.shape, dtype=np.float32)
    f, r, c = np.nonzero(hi - lo >= TEXT_RANGE)
    luma = _TileLines(work, rows, cols)
    for start in range(0, r.size, _CHUNK):
        tile = (f[start : start + _CHUNK], r[start : start + _CHUNK], c[start : start + _CHUNK])
        pixels = luma.tiles(*tile)
        share = _midtone_share(pixels, lo[tile], hi[tile])
        midtones[tile] = share
        two_level = share <= TEXT_MAX_MIDTONES
        if not two_level.all():
            tile = (tile[0][two_level], tile[1][two_level], tile[2][two_level])
            pixels = pixels[two_level]
        h_steps[tile] = _steps(pixels, luma.left(pixels, *tile))
        v_steps[tile] = _steps(pixels, luma.above(pixels, *tile))
    return h_steps, v_steps, midtones


_CHUNK = 1024  # tiles measured at once: 256 KB a pass, so that its operands stay in the cache

TileIndex = npt.NDArray[np.intp]


class _TileLines:
    """A batch's (frames, rows * TILE, cols * TILE) working luma, read a few tiles at a time
    as rows of TILE * TILE bytes (a tile each), and so are their left and upper neighbours:
    each pixel's left (upper) neighbour at the pixel's place in the row, the frame's first
    column (row) repeating itself (no step there).

    All three are fancy indexes over views of the luma as 16-byte items, indexed (tile row
    of the batch, line in the tile, tile column); for the neighbours, views that start one
    column left (one line up). numpy copies an item as one unit, where a gather of 16- or
    17-byte runs of a uint8 array (the earlier 17 x 17 windows of a padded copy) pays a
    strided inner loop per run: several times slower."""

    def __init__(self, work: U8Array, rows: int, cols: int) -> None:
        self.rows = rows
        tile_rows = work.shape[0] * rows
        lines = np.ascontiguousarray(work).reshape(-1, cols * TILE)
        items = lines.view(f"V{TILE}")
        self._tiles = items.reshape(tile_rows, TILE, cols)
        # Item (k, i, c): line i of the tile (k, c + 1) from the column before it on.
        left = lines[:, TILE - 1 : -1].view(f"V{TILE}")
        self._left = left.reshape(tile_rows, TILE, cols - 1)
        # Item (k, i, c): the line above line i of the tile (k + 1, c).
        self._above = items[TILE - 1 : -1].reshape(tile_rows - 1, TILE, cols)

    def tiles(self, f: TileIndex, r: TileIndex, c: TileIndex) -> U8Array:
        """The tiles (f, r, c)."""
        return _bytes(self._tiles[f * self.rows + r, :, c])

    def left(self, pixels: U8Array, f: TileIndex, r: TileIndex, c: TileIndex) -> U8Array:
        """The left neighbours of the tiles (f, r, c), whose `pixels` are as `tiles` gives."""
        if self._left.shape[2] == 0:  # a single column of tiles
            return _shifted(pixels, 1)
        left = _bytes(self._left[f * self.rows + r, :, np.maximum(c - 1, 0)])
        edge = c == 0
        if edge.any():
            left[edge] = _shifted(pixels[edge], 1)
        return left

    def above(self, pixels: U8Array, f: TileIndex, r: TileIndex, c: TileIndex) -> U8Array:
        """The upper neighbours of the tiles (f, r, c), whose `pixels` are as `tiles` gives."""
        if self._above.shape[0] == 0:  # a single row of tiles
            return _shifted(pixels, TILE)
        above = _bytes(self._above[np.maximum(f * self.rows + r - 1, 0), :, c])
        edge = r == 0
        if edge.any():
            above[edge] = _shifted(pixels[edge], TILE)
        return above


def _bytes(items: npt.NDArray[np.void]) -> U8Array:
    """Gathered (tiles, TILE) 16-byte items as (tiles, TILE * TILE) bytes."""
    return np.asarray(items.view(np.uint8).reshape(items.shape[0], TILE * TILE))


def _shifted(pixels: U8Array, by: int) -> U8Array:
    """Each row of `pixels` (a tile's, line after line) moved on by `by` bytes (1: a column,
    TILE: a line) within its lines, the first column (line) repeated."""
    tiles = pixels.reshape(-1, TILE, TILE)
    out = np.empty_like(tiles)
    if by == 1:
        out[:, :, 1:] = tiles[:, :, :-1]
        out[:, :, 0] = tiles[:, :, 0]
    else:
        out[:, 1:] = tiles[:, :-1]
        out[:, 0] = tiles[:, 0]
    return out.reshape(pixels.shape)


def _steps(pixels: U8Array, neighbours: U8Array) -> IntGrid:
    """The sharp steps between `pixels` and `neighbours`, in each row (tile)."""
    return _count(abs_diff(pixels, neighbours) >= EDGE_STEP)


def _midtone_share(
    pixels: U8Array, lo: npt.NDArray[np.int16], hi: npt.NDArray[np.int16]
) -> FloatGrid:
    """The share of mid-tones in each row of `pixels` (a tile each, of minimum `lo` and
    maximum `hi`): 3 lo + hi < 4 y < lo + 3 hi, that is `first` <= y < `first` + `count`
    for the integers y, tested as (y - first) mod 256 < count in uint8 (two passes instead
    of two comparisons and their and)."""
    first = (3 * lo + hi) // 4 + 1
    count = np.maximum(-(-(lo + 3 * hi) // 4) - first, 0)  # 0 <= first + count <= 255
    offset = pixels - first.astype(np.uint8)[:, None]
    mid = offset < count.astype(np.uint8)[:, None]
    return np.asarray((_count(mid) / (TILE * TILE)).astype(np.float32))


def _count(mask: npt.NDArray[np.bool_]) -> IntGrid:
    """The true values in each row of a (tiles, TILE * TILE) mask: packed into bits and
    counted 64 at a time with numpy >= 2 (several times faster than a sum over each row,
    which numpy runs as a short loop a row)."""
    if mask.shape[0] == 0 or not hasattr(np, "bitwise_count"):  # no tiles: no words
        return np.asarray(mask.view(np.uint8).sum(axis=1, dtype=np.int32))
    words = np.bitwise_count(np.packbits(mask.reshape(-1)).view(np.uint64))
    words = words.reshape(mask.shape[0], -1)
    counts = words[:, 0].astype(np.int32)
    for k in range(1, words.shape[1]):
        counts += words[:, k]
    return counts


def _tissue_uv() -> npt.NDArray[np.bool_]:
    """Whether each chroma pair is tissue-coloured, indexed by u * 256 + v. With the offsets
    u' = u - 128, v' = v - 128: v' >= TISSUE_MIN_CR, 5 v' >= -4 u' and 2 v' >= u'."""
    u, v = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    tissue = (v >= 128 + TISSUE_MIN_CR) & (5 * v + 4 * u >= 9 * 128) & (2 * v - u >= 128)
    return np.ascontiguousarray(tissue.ravel())


_TISSUE_UV = _tissue_uv()


def _tissue_min_v() -> bytes:
    """Per u, the least v of a tissue colour (u, v): each condition of _tissue_uv bounds v
    from below, so (u, v) is tissue exactly when v >= this (always at most 255 here; a u with
    no tissue v would need 256 and fails the check below). As bytes, a table for
    bytes.translate."""
    table = _TISSUE_UV.reshape(256, 256)
    least = np.where(table.any(axis=1), table.argmax(axis=1), 256)
    at_least = np.arange(256)[None, :] >= least[:, None]
    if least.max() > 255 or not np.array_equal(at_least, table):
        raise AssertionError("The tissue colours are not v >= a bound per u.")
    return bytes(least.astype(np.uint8))


_TISSUE_MIN_V = _tissue_min_v()


def tissue_colour(u8: U8Array, v8: U8Array) -> npt.NDArray[np.bool_]:
    """Whether each chroma sample (u8, v8, contiguous arrays of one shape) is tissue-coloured:
    v >= the least tissue v of its u.

    The per-u bound is looked up with bytes.translate, one byte per byte with no index array:
    numpy's gathers (np.take, fancy indexing) first widen every index to 64 bits, and
    indexing a (u, v) table also needs the 16-bit index built (a cast, a shift and an or);
    the copy to bytes and back costs a memcpy.
    """
    bounds = np.frombuffer(u8.tobytes().translate(_TISSUE_MIN_V), dtype=np.uint8)
    return np.asarray(np.greater_equal(v8, bounds.reshape(u8.shape)))


def abs_diff(a: U8Array, b: U8Array) -> U8Array:
    """|a - b| of uint8 arrays, as max - min in uint8 (no wrap-around), in one buffer."""
    diff = np.maximum(a, b)
    np.subtract(diff, np.minimum(a, b), out=diff)
    return diff


def block_sums(work: U8Array, block: int) -> U16Array:
    """The sums of the `block` x `block` squares of the contiguous working luma `work` (block
    a power of two up to TILE; work's sides are multiples of TILE), exact in uint16."""
    return np.asarray(_run_totals(_row_sums(work, block), block).astype(np.uint16))


def _row_sums(values: U8Array, tile_y: int) -> U16Array:
    """The sums of each `tile_y` consecutive rows of the uint8 plane `values` (tile_y * 255
    fits uint16), a fresh contiguous array: the widening add of two uint8 rows, then uint8
    rows added into the uint16 sums, cheaper than numpy's casting sum over an axis."""
    lines = values.reshape(values.shape[0] // tile_y, tile_y, values.shape[1])
    if tile_y == 1:
        return np.asarray(lines[:, 0].astype(np.uint16))
    rows = np.add(lines[:, 0], lines[:, 1], dtype=np.uint16)
    for k in range(2, tile_y):
        np.add(rows, lines[:, k], out=rows)
    return np.asarray(rows)


_WORDS: dict[int, np.dtype[np.unsignedinteger[Any]]] = {
    2: np.dtype("<u2"),
    4: np.dtype("<u4"),
    8: np.dtype("<u8"),
}


def _run_totals(partial: U8Array | U16Array, run: int) -> npt.NDArray[np.unsignedinteger[Any]]:
    """The totals of each `run` neighbouring values along the rows of `partial` (a fresh
    contiguous (h, n * run) uint8 or uint16 array, which this overwrites; run a power of two
    >= 2; every total fits partial's type), (h, n) in an unsigned type at least as wide.

    numpy's strided adds (partial[:, k::run]) or reduction over a short last axis are several
    times slower than a vectorised pass over whole rows, so the neighbours are read as the
    fields of little-endian words: a uint64 word holds 8 bytes or four uint16 values, x0 +
    x1 B + x2 B^2 + ... (B = 2^8 or 2^16), and times 1 + B + B^2 + ... (modulo the word) its
    top field is x0 + x1 + ... + the last: every field of the product is a partial total
    below B, so no carry crosses a field. In place: fresh large temporaries cost page faults
    that show in the timings. Runs longer than a word add words, a few times fewer values.
    """
    size = partial.itemsize
    lanes = min(run, 8 // size)
    word = _WORDS[size * lanes]
    words = partial.view(word)
    bits = 8 * size
    words *= word.type(sum(1 << (bits * i) for i in range(lanes)))
    words >>= word.type(bits * (lanes - 1))
    if run == lanes:
        return words
    n = run // lanes
    totals = words[:, 0::n].copy()
    for k in range(1, n):
        totals += words[:, k::n]
    return np.asarray(totals)


def tile_sum(
    values: npt.NDArray[np.bool_] | U8Array | U16Array,
    rows: int,
    cols: int,
    tile_y: int,
    tile_x: int,
) -> IntGrid:
    """Per-tile sums of a (rows * tile_y, cols * tile_x) plane of bools, uint8 (tile_y <= 16)
    or uint16 block sums of the working luma (a tile's sum fits in uint16)."""
    # Rows of a tile first (long contiguous runs, in the narrowest integer that holds the sum:
    # uint8 for bools, uint16 for bytes, at most 16 rows), then columns: as fields of words
    # for a power-of-two tile width (see _run_totals), else across the tiles' columns; both
    # several times faster than sum(axis=(1, 3)) on the 4-d view.
    partial: U8Array | U16Array
    if values.dtype == np.bool_:
        partial = (
            values.view(np.uint8).reshape(rows, tile_y, cols * tile_x).sum(axis=1, dtype=np.uint8)
        )
        fits = tile_y * min(tile_x, 8) <= 255  # a word's bytes' total stays a byte
    elif values.dtype == np.uint8:
        partial = _row_sums(values.view(np.uint8), tile_y)
        fits = True
    else:
        partial = values.reshape(rows, tile_y, cols * tile_x).sum(axis=1, dtype=np.uint16)
        fits = True
    if fits and tile_x >= 2 and tile_x & (tile_x - 1) == 0:
        return np.asarray(_run_totals(partial, tile_x).astype(np.int32))
    return np.asarray(_across(partial, rows, cols, tile_x).sum(axis=0, dtype=np.int32))


def _tile_reduce(
    ufunc: np.ufunc, values: U8Array, rows: int, cols: int, tile_y: int, tile_x: int
) -> U8Array:
    partial = ufunc.reduce(values.reshape(rows, tile_y, cols * tile_x), axis=1)
    return np.asarray(ufunc.reduce(_across(partial, rows, cols, tile_x), axis=0), dtype=np.uint8)


def _across(partial: npt.NDArray[Any], rows: int, cols: int, tile_x: int) -> npt.NDArray[Any]:
    """The (rows, cols * tile_x) partial results as tile_x rows of (rows, cols) values, the
    k-th holding every tile's k-th column: reduced over axis 0, element by element over whole
    rows (numpy's reduction over a short last axis is several times slower than this copy)."""
    return np.ascontiguousarray(partial.reshape(rows * cols, tile_x).T).reshape(tile_x, rows, cols)


def _chroma_mean(values: U8Array, grid: Grid, rows: int) -> FloatGrid:
    """Per-tile mean of the chroma offset (value - 128), of `rows` rows of tiles."""
    n = grid.c_tile_y * grid.c_tile_x
    sums = tile_sum(values, rows, grid.cols, grid.c_tile_y, grid.c_tile_x)
    sums -= 128 * n
    return _quotient(sums, n)


def _quotient(sums: IntGrid, n: int) -> FloatGrid:
    """sums / n as float32, the value of (sums / np.float32(n)).astype(np.float32), which
    divides in float64 and rounds: divided in float32 directly, without the float64 array.
    The same numbers: the sums (|sums| < 2^24) are exact in float32, and a float64 quotient
    rounded to float32 is the correctly rounded float32 quotient (53 >= 2 * 24 + 2 bits)."""
    return np.asarray(np.divide(sums, np.float32(n), dtype=np.float32))


@dataclass(frozen=True)
class FrameVerdict:
    """The classical labels of one frame and the measurements behind them."""

    labels: frozenset[Label]
    flat_share: float
    text_share: float  # text-like tiles / all tiles considered
    text_content_share: float  # text-like tiles / content tiles
    lit_share: float
    tissue_share: float  # tissue-coloured / lit


def classify(stats: TileStats, ignore: BoolGrid | None = None) -> list[FrameVerdict]:
    """The classical labels of each frame of a batch, from its tile stats ((frames, rows,
    cols) arrays); `ignore` (the same shape) marks tiles to leave out (the device's static
    overlay). The counts are taken for the whole batch at once, the decisions frame by
    frame."""
    use = np.ones(stats.lo.shape, dtype=np.bool_) if ignore is None else ~ignore
    considered = use.sum(axis=(1, 2))
    flat = stats.flat & use
    flat_n = flat.sum(axis=(1, 2))
    n_text = (stats.text_region & use).sum(axis=(1, 2))
    # The content: tiles not flat at the background level (the most common flat level); a
    # frame without flat tiles is all content.
    background = _mode_levels(stats.mean, flat)[:, None, None]
    content = use & ~(flat & (np.abs(stats.mean - background) <= BACKGROUND_TOLERANCE))
    n_content = content.sum(axis=(1, 2))
    lit_n = np.where(use, stats.lit, 0).sum(axis=(1, 2))
    tissue_n = np.where(use, stats.tissue, 0).sum(axis=(1, 2))
    hidden_tissue = np.zeros(considered.shape, dtype=np.int64)
    if ignore is not None:
        hidden_tissue = (ignore & stats.tissue_tiles).sum(axis=(1, 2))
    tiles = stats.lo.shape[1] * stats.lo.shape[2]

    verdicts = []
    for k in range(stats.lo.shape[0]):
        used = int(considered[k])
        if used == 0:
            verdicts.append(FrameVerdict(frozenset(), 0.0, 0.0, 0.0, 0.0, 0.0))
            continue
        labels: set[Label] = set()
        flat_share = int(flat_n[k]) / used
        if flat_share >= BLANK_FLAT_SHARE and hidden_tissue[k] < BLANK_HIDDEN_TISSUE * tiles:
            on = flat[k]
            if (
                _spread(stats.mean[k][on]) <= BLANK_LUMA_SPREAD
                and _spread(stats.u_mean[k][on]) <= BLANK_CHROMA_SPREAD
                and _spread(stats.v_mean[k][on]) <= BLANK_CHROMA_SPREAD
            ):
                labels.add("blank")
        text_share = int(n_text[k]) / used
        text_content_share = int(n_text[k]) / int(n_content[k]) if n_content[k] else 0.0
        if text_share >= TEXT_MIN_SHARE and text_content_share >= TEXT_CONTENT_SHARE:
            labels.add("text_screen")
        lit = int(lit_n[k])
        samples = used * stats.samples_per_tile
        lit_share = lit / samples if samples else 0.0
        tissue_share = int(tissue_n[k]) / lit if lit else 0.0
        if lit_share >= LIT_MIN_SHARE and tissue_share < TISSUE_MIN_SHARE:
            labels.add("non_endoscopic")
        verdicts.append(
            FrameVerdict(
                labels=frozenset(labels),
                flat_share=flat_share,
                text_share=text_share,
                text_content_share=text_content_share,
                lit_share=lit_share,
                tissue_share=tissue_share,
            )
        )
    return verdicts


def _spread(values: FloatGrid) -> float:
    if values.size == 0:
        return 0.0
    lo, hi = np.percentile(values, (5, 95))
    return float(hi - lo)


def _mode_levels(values: FloatGrid, where: BoolGrid) -> FloatGrid:
    """Per frame of (frames, rows, cols) `values`: the most common level of those `where`
    holds (16-code bins, the lowest of the fullest; then the median inside it, as np.median
    takes it: the middle value, or the float32 mean of the two middle ones), 0 for a frame
    with none."""
    frames = values.shape[0]
    bins = np.clip(values // 16, 0, 15).astype(np.int64)
    bins += 16 * np.arange(frames)[:, None, None]
    counts = np.bincount(bins[where], minlength=16 * frames).reshape(frames, 16)
    fullest = counts.argmax(axis=1) + 16 * np.arange(frames)
    chosen = where & (bins == fullest[:, None, None])
    n = chosen.sum(axis=(1, 2))
    ordered = np.sort(np.where(chosen, values, np.float32(np.inf)).reshape(frames, -1), axis=1)
    every = np.arange(frames)
    low = ordered[every, np.maximum(n - 1, 0) // 2]
    high = ordered[every, n // 2]
    middle = (low + high) / np.float32(2)
    return np.asarray(np.where(n > 0, middle, np.float32(0)), dtype=np.float32)
