"""A corpus of realistic endoscopy recordings, generated in code, with per-frame ground truth,
for the analysis tests and the bench (tests/test_realistic_corpus.py, bench case 11).

testkit.scenes draws a scripted recording with one layout; this module draws the layouts and
the difficulties of real footage, the ones the first live-image finder failed on:

- Layouts: the Olympus CV-1500 (1920x1080 output; the image box at 550,0,1350,1080 holds a round
  live image about 1060 px across; name, birth date, date, a ticking clock and the scope's type
  and serial burned in on the left at the built-in device's text-field positions), scaled to the
  corpus' frame size; a centred layout: an octagonal (rounded-rectangle; small or large
  corners) or rectangular image in the middle, text strips at the top and bottom; and a
  full-height layout: a round image clipped by the frame's top and bottom, text on the left.
- The live image: fine mucosa-like texture (features a few pixels wide) or a smoother one,
  vessels, strong vignetting (the rim at 40% of the centre's light), specular highlights that
  move with the texture; camera motion fast (a passage), slow (an inspection: a fraction of a
  pixel per frame) or none (a nearly still image: sensor noise and a slight breathing drift).
- Stretches: dark (the light off or the tip covered: black image, the overlay still shown;
  truth "blank"), an instrument sliding in, a full-screen registration screen (truth
  "text_screen"), out of the body (a grey room seen through the same optics, so still inside
  the round image; truth "non_endoscopic").

:func:`corpus` lists the scenes; :func:`make_realistic_video` writes one; :func:`score` compares
an analysis with the truth (ROI IoU as pixel masks of the shapes, and recall / false positives
per label).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np
import numpy.typing as npt
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from jobs.device_catalogue import builtin_devices
from jobs.roi_choice import recognise_device
from jobs.video import Roi
from jobs.video.analyze import Analysis
from jobs.video.planes import luma_keep_mask
from testkit.media import plane_array
from testkit.scenes import _blit, _glyph_bank, _half, _smooth_noise, _text_block, _to_u8

ImageShape = Literal["round", "octagon", "rect"]
Motion = Literal["fast", "slow", "still"]
StretchKind = Literal["live", "instrument", "dark", "registration", "outside"]
TruthLabel = Literal["blank", "text_screen", "non_endoscopic"]
LABELS: tuple[TruthLabel, ...] = ("blank", "text_screen", "non_endoscopic")
F32 = npt.NDArray[np.float32]
Mask = npt.NDArray[np.bool_]

TRUTH: dict[StretchKind, TruthLabel | None] = {
    "live": None,
    "instrument": None,
    "dark": "blank",
    "registration": "text_screen",
    "outside": "non_endoscopic",
}
OLYMPUS = "olympus_cv_1500"
#: The Olympus CV-1500's round live image in its 1920x1080 frame (centre, diameter).
OLYMPUS_CIRCLE = (1225.0, 540.0, 1060.0)


@dataclass(frozen=True)
class Layout:
    """Where a processor puts the live image and its burned-in text, at one frame size."""

    name: str
    width: int
    height: int
    image: Roi  # bounding box of the lit live image
    shape: ImageShape
    corner: float = 0.0  # octagon: the corners cut, as a share of the shorter side
    fields: tuple[Roi, ...] = ()  # static burned-in text
    clock: Roi | None = None  # a clock that ticks every second
    device: str | None = None  # the catalogued device this layout is
    inside: tuple[Roi, ...] = ()  # static text printed over the live image
    panels: tuple[Roi, ...] = ()  # light boxes with dark text (an info panel), static
    bars: tuple[Roi, ...] = ()  # dark grey boxes (`bar_level`) with light text
    bar_level: float = 26.0

    def image_mask(self) -> Mask:
        """The live image's pixels."""
        return shape_mask(self.width, self.height, self.image, self.shape, self.corner)


def shape_mask(
    width: int, height: int, box: Roi, shape: ImageShape | str, corner: float = 0.0
) -> Mask:
    """The pixels of a round (ellipse in `box`), octagonal or rectangular region."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32) + np.float32(0.5)
    inside = (xs >= box.x) & (xs < box.x + box.width) & (ys >= box.y) & (ys < box.y + box.height)
    if shape in ("round", "ellipse"):
        rx, ry = box.width / 2, box.height / 2
        rho2 = ((xs - box.x - rx) / rx) ** 2 + ((ys - box.y - ry) / ry) ** 2
        return np.asarray(rho2 <= 1.0)
    if shape == "octagon":
        cut = corner * min(box.width, box.height)
        dx = np.minimum(xs - box.x, box.x + box.width - xs)
        dy = np.minimum(ys - box.y, box.y + box.height - ys)
        return np.asarray(inside & (dx + dy >= cut))
    return np.asarray(inside)


def olympus_layout(width: int = 640) -> Layout:
    """The Olympus CV-1500's layout scaled to `width` x (width * 9/16)."""
    height = width * 9 // 16
    device = builtin_devices()[OLYMPUS]
    sx, sy = width / device.frame_width, height / device.frame_height
    cx, cy, d = OLYMPUS_CIRCLE
    image = Roi(round((cx - d / 2) * sx), round((cy - d / 2) * sy), round(d * sx), round(d * sy))
    fields: list[Roi] = []
    clock = None
    for text in device.text_fields_for(width, height):
        if text.name == "examination_time":
            clock = text.box
        elif text.name == "examination_date":  # the date, left of the clock
            box = text.box
            fields.append(Roi(box.x, box.y, max(4, round(230 * sx)), box.height))
        else:
            fields.append(text.box)
    return Layout(OLYMPUS, width, height, image, "round", 0.0, tuple(fields), clock, OLYMPUS)


def centred_layout(
    width: int = 640,
    shape: ImageShape = "octagon",
    *,
    inside_text: bool = False,
    panel: bool = False,
    bar: bool = False,
) -> Layout:
    """The image in the middle, a line of text above it and one below (with a clock);
    `inside_text`: a short static line printed over the image too (a zoom level, initials);
    `panel`: a light info panel with dark text, 4 px right of the image's lower right; `bar`:
    a dark grey status bar with light text along the image's right side, touching it."""
    height = width * 9 // 16
    k = height / 360
    image = Roi(round(150 * k), round(46 * k), round(340 * k), round(268 * k))
    top = Roi(round(160 * k), round(10 * k), round(300 * k), round(22 * k))
    bottom = Roi(round(160 * k), round(326 * k), round(180 * k), round(22 * k))
    clock = Roi(round(380 * k), round(326 * k), round(90 * k), round(22 * k))
    inside = (Roi(round(196 * k), round(70 * k), round(80 * k), round(18 * k)),)
    return Layout(
        f"centred_{shape}",
        width,
        height,
        image,
        shape,
        0.16,
        (top, bottom),
        clock,
        inside=inside if inside_text else (),
        panels=(Roi(round(494 * k), round(250 * k), round(70 * k), round(64 * k)),)
        if panel
        else (),
        bars=(Roi(image.x + image.width, image.y, round(40 * k), image.height),) if bar else (),
    )


def full_height_layout(width: int = 640) -> Layout:
    """A round image wider than the frame is high, so the frame's top and bottom clip it (a
    16:9 processor showing the whole height), right of the centre; the patient's name, an id,
    the date and a ticking clock on the left."""
    height = width * 9 // 16
    k = height / 360
    d = round(404 * k)
    cx, cy = round(0.6 * width), height / 2
    image = Roi(round(cx - d / 2), round(cy - d / 2), d, d)
    fields = (
        Roi(round(16 * k), round(36 * k), round(150 * k), round(20 * k)),
        Roi(round(16 * k), round(64 * k), round(120 * k), round(20 * k)),
        Roi(round(16 * k), round(280 * k), round(120 * k), round(20 * k)),
    )
    clock = Roi(round(16 * k), round(308 * k), round(90 * k), round(20 * k))
    return Layout("full_height_round", width, height, image, "round", 0.0, fields, clock)


def full_frame_layout(width: int = 640) -> Layout:
    """A picture filling the whole frame (no border at all), the patient's name and an id
    printed over its top left corner."""
    height = width * 9 // 16
    k = height / 360
    inside = (
        Roi(round(12 * k), round(10 * k), round(120 * k), round(16 * k)),
        Roi(round(12 * k), round(30 * k), round(90 * k), round(16 * k)),
    )
    return Layout("full_frame", width, height, Roi(0, 0, width, height), "rect", inside=inside)


@dataclass(frozen=True)
class Stretch:
    kind: StretchKind
    frames: int
    motion: Motion = "fast"


@dataclass(frozen=True)
class Conditions:
    """How a recording's light and border depart from the corpus' usual ones (the corpus
    keeps the defaults; bench/finder_variations.py varies them)."""

    gain: float = 1.0  # the image's light above black scaled: a dim recording
    lumen: float = 0.0  # a dark lumen wandering over the image, its radius a share of the image
    border_level: float = 16.0  # the border's luma: a processor's black above the camera's
    border_noise: float = 0.0  # extra noise on the border (an analog capture): its sigma
    still: bool = False  # every live stretch nearly still


@dataclass(frozen=True)
class RealisticScene:
    """One corpus recording: a layout, its texture and a script of stretches."""

    name: str
    layout: Layout
    script: tuple[Stretch, ...]
    texture: Literal["fine", "smooth"] = "fine"
    seed: int = 1
    notes: str = ""
    #: None: the usual vignetting (the rim at 40% of the centre's light, never under 25%, the
    #: light scaling the luma); (strength, floor): the light falls to 1 - strength at the rim
    #: and to `floor` beyond it, scaling the luma above black (16): dark corners a few levels
    #: above the border.
    vignetting: tuple[float, float] | None = None
    conditions: Conditions = field(default_factory=Conditions)


@dataclass(frozen=True)
class RealisticTruth:
    """What a corpus recording contains."""

    scene: RealisticScene
    path: Path
    labels: tuple[TruthLabel | None, ...]  # per frame; None: endoscopic
    #: the glyph pixels of the text printed beside the image (fields, panels, bars) and over it
    text_beside: Mask = field(repr=False, compare=False)
    text_over: Mask = field(repr=False, compare=False)
    fps: Fraction = field(default=Fraction(25))

    @property
    def frames(self) -> int:
        return len(self.labels)


def corpus(width: int = 640) -> tuple[RealisticScene, ...]:
    """The corpus' scenes at `width` (the 1080p case is :func:`olympus_1080p`)."""
    olympus = olympus_layout(width)
    return (
        RealisticScene(
            "olympus_passage",
            olympus,
            (
                Stretch("registration", 20),
                Stretch("live", 60, "fast"),
                Stretch("instrument", 30, "fast"),
                Stretch("dark", 15),
                Stretch("live", 30, "fast"),
                Stretch("outside", 25, "fast"),
                Stretch("live", 20, "fast"),
            ),
            notes="fast passage, instrument, dark stretch, registration, out of body",
        ),
        RealisticScene(
            "olympus_inspection",
            olympus,
            (Stretch("registration", 15), Stretch("live", 150, "slow")),
            seed=2,
            notes="slow inspection (0.3 px/frame)",
        ),
        RealisticScene(
            "olympus_still",
            olympus,
            (Stretch("live", 90, "still"), Stretch("dark", 10), Stretch("live", 40, "still")),
            seed=3,
            notes="nearly still image, dark stretch",
        ),
        RealisticScene(
            "olympus_smooth",
            olympus,
            (Stretch("live", 100, "slow"), Stretch("instrument", 30, "slow")),
            texture="smooth",
            seed=4,
            notes="smooth texture, slow, instrument",
        ),
        RealisticScene(
            "centred_octagon",
            centred_layout(width, "octagon", inside_text=True),
            (
                Stretch("live", 60, "slow"),
                Stretch("registration", 15),
                Stretch("live", 50, "fast"),
                Stretch("outside", 20, "slow"),
            ),
            seed=5,
            notes="octagonal image centred, text top and bottom and over the image",
        ),
        RealisticScene(
            "centred_rect",
            centred_layout(width, "rect"),
            (Stretch("live", 70, "still"), Stretch("dark", 10), Stretch("live", 60, "slow")),
            seed=6,
            notes="rectangular image centred, nearly still then slow",
        ),
        RealisticScene(
            "centred_octagon_big_corners",
            replace(centred_layout(width, "octagon"), corner=0.25),
            (
                Stretch("live", 50, "slow"),
                Stretch("registration", 10),
                Stretch("live", 40, "fast"),
                Stretch("dark", 10),
            ),
            seed=8,
            notes="octagonal image with corners cut by a quarter of its height",
        ),
        RealisticScene(
            "centred_rect_panel",
            centred_layout(width, "rect", panel=True),
            (Stretch("live", 50, "fast"), Stretch("registration", 10), Stretch("live", 40, "slow")),
            seed=10,
            notes="rectangular image, a light info panel with dark text 4 px beside it",
        ),
        RealisticScene(
            "centred_rect_dark_corners",
            centred_layout(width, "rect"),
            (
                Stretch("live", 50, "slow"),
                Stretch("dark", 10),
                Stretch("live", 40, "fast"),
                Stretch("registration", 10),
            ),
            seed=11,
            vignetting=(0.85, 0.05),
            notes="rectangular image, deep vignetting: rim at 15%, corners 4-6 levels above black",
        ),
        RealisticScene(
            "centred_octagon_dim_bar",
            centred_layout(width, "octagon", bar=True),
            (Stretch("live", 60, "slow"), Stretch("registration", 10), Stretch("live", 40, "fast")),
            seed=12,
            vignetting=(0.85, 0.05),
            notes="octagonal image, deep vignetting, a dark grey status bar touching its side",
        ),
        RealisticScene(
            "centred_rect_still_bar",
            centred_layout(width, "rect", bar=True),
            (Stretch("live", 70, "still"), Stretch("dark", 10), Stretch("live", 60, "slow")),
            seed=6,
            vignetting=(0.6, 0.05),
            notes="rect image, nearly still, then slow; dark corners; a grey bar with text beside",
        ),
        RealisticScene(
            "centred_rect_lit_bar",
            replace(centred_layout(width, "rect", bar=True), bar_level=30.0),
            (Stretch("live", 50, "slow"), Stretch("registration", 10), Stretch("live", 40, "fast")),
            seed=13,
            vignetting=(0.6, 0.05),
            notes="rect image, a grey bar with text touching it, lit (14 levels above black)",
        ),
        RealisticScene(
            "full_frame",
            full_frame_layout(width),
            (
                Stretch("live", 50, "slow"),
                Stretch("registration", 10),
                Stretch("live", 40, "fast"),
                Stretch("dark", 10),
            ),
            seed=20,
            notes="the picture fills the frame, a name and an id printed over its corner",
        ),
        RealisticScene(
            "full_height_round",
            full_height_layout(width),
            (
                Stretch("registration", 10),
                Stretch("live", 50, "fast"),
                Stretch("instrument", 20, "fast"),
                Stretch("live", 40, "slow"),
                Stretch("outside", 15, "slow"),
            ),
            seed=9,
            notes="round image clipped by the frame's top and bottom, text on the left",
        ),
    )


def olympus_1080p() -> RealisticScene:
    """The Olympus layout at its own 1920x1080 (short: 1080p frames are slow to draw)."""
    return RealisticScene(
        "olympus_1080p",
        olympus_layout(1920),
        (Stretch("registration", 8), Stretch("live", 40, "slow"), Stretch("dark", 6)),
        seed=7,
        notes="1080p, slow inspection",
    )


def make_realistic_video(scene: RealisticScene, path: Path, *, fps: int = 25) -> RealisticTruth:
    """Write `scene` to `path` (H.264 in MP4, CRF 18, B-frames) and return its truth."""
    layout = scene.layout
    rate = Fraction(fps)
    painter = _Painter(scene, np.random.default_rng(scene.seed))
    labels: list[TruthLabel | None] = []
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=rate)
        assert isinstance(stream, VideoStream)
        stream.width, stream.height, stream.pix_fmt = layout.width, layout.height, "yuv420p"
        stream.codec_context.time_base = 1 / rate
        stream.codec_context.options = {"crf": "18", "preset": "veryfast"}
        index = 0
        for stretch in scene.script:
            for step in range(stretch.frames):
                y, u, v = painter.paint(stretch, index, step, float(rate))
                frame = VideoFrame(layout.width, layout.height, "yuv420p")
                for plane, data in zip(frame.planes, (y, u, v), strict=True):
                    plane_array(plane, frame)[:] = data
                frame.pts = index
                frame.time_base = stream.codec_context.time_base
                out.mux(stream.encode(frame))
                labels.append(TRUTH[stretch.kind])
                index += 1
        out.mux(stream.encode(None))
    beside = painter.overlay | painter.panel_text | painter.bar_text
    return RealisticTruth(scene, path, tuple(labels), beside, painter.inside_text, rate)


def inside_text_box(scene: RealisticScene) -> Roi | None:
    """The bounding box of the glyph pixels printed over the image (None: none are)."""
    mask = _Painter(scene, np.random.default_rng(scene.seed)).inside_text
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return Roi(int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1))


class _Painter:
    def __init__(self, scene: RealisticScene, rng: np.random.Generator) -> None:
        layout = scene.layout
        self.seed = scene.seed
        self.layout, self.rng = layout, rng
        self.w, self.h = w, h = layout.width, layout.height
        k = h / 360
        self.k = k
        self.mask = layout.image_mask()
        box = layout.image
        cx, cy = box.x + box.width / 2, box.y + box.height / 2
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32) + np.float32(0.5)
        rho2 = ((xs - cx) / (box.width / 2)) ** 2 + ((ys - cy) / (box.height / 2)) ** 2
        # Strong vignetting: the rim (and an octagon's corners) at 40% of the centre's light.
        strength, floor = scene.vignetting or (0.6, 0.25)
        self.black = 0.0 if scene.vignetting is None else 16.0  # what the light scales from
        self.light = np.clip(1.0 - strength * np.minimum(rho2, 1.6), floor, 1.0).astype(np.float32)
        self.amplitude = 120.0 * k
        self.pad = round(2 * self.amplitude) + 8
        th, tw = h + self.pad, w + self.pad
        fine = scene.texture == "fine"
        self.tex = _smooth_noise(rng, th, tw, (2.5 if fine else 14.0) * k)
        self.tex2 = _smooth_noise(rng, th, tw, (8.0 if fine else 30.0) * k)
        self.col = _smooth_noise(rng, th, tw, 40.0 * k)
        ves = _smooth_noise(rng, th, tw, 10.0 * k)
        self.vessels = np.clip(1.0 - np.abs(ves) * 10.0, 0.0, 1.0).astype(np.float32)
        # Specular highlights: where a bumpy surface faces the light, fixed to the texture.
        self.spec = (self.tex2 > 0.55) & (self.tex > 0.3)
        self.noise = [rng.normal(0.0, 1.6, (h, w)).astype(np.float32) for _ in range(5)]
        # The overlay: a line of glyphs in each field, the clock's digits.
        self.overlay = np.zeros((h, w), np.bool_)
        for text in layout.fields:
            self._field_text(text, self.overlay)
        # Light panels with lines of dark text, dark grey bars with sparser lines of light text.
        line = max(8, round(14 * k))
        self.panels, self.panel_text = self._boxes_with_text(
            layout.panels, line, 2, line + 2, max(2, round(3 * k))
        )
        line = max(8, round(12 * k))
        self.bars, self.bar_text = self._boxes_with_text(
            layout.bars, line, line, 3 * line, max(2, round(4 * k))
        )
        self.conditions = scene.conditions
        # The border: where neither the image nor anything drawn on the border is.
        self.border = ~(self.mask | self.overlay | self.panels | self.bars)
        self.inside_text = np.zeros((h, w), np.bool_)
        for text in layout.inside:
            self._field_text(text, self.inside_text)
        self.clock_digits: Mask | None = None
        if layout.clock is not None:
            gh = max(6, round(layout.clock.height * 0.6))
            gw = max(4, round(gh * 0.64))
            self.clock_digits = _glyph_bank(rng, 10, gw, gh, max(1, round(gh / 6)))
        # The registration screen: a form in white on dark blue.
        gw, gh = max(5, round(8 * k)), max(8, round(13 * k))
        bank = _glyph_bank(rng, 60, gw, gh, max(1, round(2 * k)))
        per_line = (w - round(48 * k)) // (gw + 2)
        self.form = _text_block(
            rng, bank, [int(n) for n in rng.integers(per_line // 5, per_line, 12)], round(26 * k)
        )
        self.drift = (float(rng.uniform(0, 6.28)), float(rng.uniform(0, 6.28)))

    def _boxes_with_text(
        self,
        boxes: tuple[Roi, ...],
        line: int,
        first: int,
        step: int,
        inset: int,
    ) -> tuple[Mask, Mask]:
        """The pixels of `boxes` and of the lines of text in them: lines `line` px high,
        `inset` px from the sides, the first `first` px below a box's top, one every `step`
        px."""
        area = np.zeros((self.h, self.w), np.bool_)
        text = np.zeros((self.h, self.w), np.bool_)
        for box in boxes:
            area[box.y : box.y + box.height, box.x : box.x + box.width] = True
            for top in range(box.y + first, box.y + box.height - line, step):
                self._field_text(Roi(box.x + inset, top, box.width - 2 * inset, line), text)
        return area, text

    def _field_text(self, box: Roi, into: Mask) -> None:
        gh = max(6, round(box.height * 0.6))
        gw = max(4, round(gh * 0.64))
        bank = _glyph_bank(self.rng, 30, gw, gh, max(1, round(gh / 6)))
        count = max(1, box.width // (gw + 2))
        line = _text_block(self.rng, bank, [count], gh)
        y0 = box.y + (box.height - gh) // 2
        mh, mw = line.shape
        region = into[y0 : y0 + mh, box.x : box.x + mw]
        region |= line[: region.shape[0], : region.shape[1]]

    def _offset(self, index: int, motion: Motion) -> tuple[int, int, float, float]:
        """The texture's offset (integer part, and the sub-pixel remainder)."""
        a, b = self.drift
        if motion == "fast":
            ox = self.amplitude * math.sin(index * 0.05 + a)
            oy = 0.8 * self.amplitude * math.sin(index * 0.037 + b)
        elif motion == "slow":
            ox = 0.3 * index * self.k * math.cos(a) % (self.amplitude)
            oy = 0.3 * index * self.k * math.sin(a) % (self.amplitude)
            ox, oy = ox - self.amplitude / 2, oy - self.amplitude / 2
        else:  # breathing: a pixel or so, slowly
            ox = 1.2 * self.k * math.sin(index * 0.08)
            oy = 0.8 * self.k * math.sin(index * 0.06)
        fx, fy = ox + self.pad / 2, oy + self.pad / 2
        return int(fx), int(fy), fx - int(fx), fy - int(fy)

    def _shifted(self, plane: F32, ix: int, iy: int, fx: float, fy: float) -> F32:
        a = plane[iy : iy + self.h, ix : ix + self.w]
        b = plane[iy : iy + self.h, ix + 1 : ix + 1 + self.w]
        c = plane[iy + 1 : iy + 1 + self.h, ix : ix + self.w]
        d = plane[iy + 1 : iy + 1 + self.h, ix + 1 : ix + 1 + self.w]
        top = a + (b - a) * np.float32(fx)
        return np.asarray(top + ((c + (d - c) * np.float32(fx)) - top) * np.float32(fy))

    def paint(
        self, stretch: Stretch, index: int, step: int, fps: float
    ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
        h, w, layout = self.h, self.w, self.layout
        noise = self.noise[index % len(self.noise)]
        if stretch.kind == "registration":
            y = np.full((h, w), 40.0, np.float32)
            u = np.full((h, w), 185.0, np.float32)
            v = np.full((h, w), 112.0, np.float32)
            x0, y0 = round(24 * self.k), round(24 * self.k)
            for plane, ink in ((y, 225.0), (u, 128.0), (v, 128.0)):
                _blit(plane, self.form[: h - y0 - 4, : w - x0 - 4], x0, y0, ink)
                plane[y0 - 10 : y0 - 8, x0 : w - x0] = ink
        else:
            y = np.full((h, w), 16.0, np.float32)
            u = np.full((h, w), 128.0, np.float32)
            v = np.full((h, w), 128.0, np.float32)
            if stretch.kind in ("live", "instrument"):
                self._live(y, u, v, index, stretch.motion)
                if stretch.kind == "instrument":
                    self._instrument(y, u, v, step)
            elif stretch.kind == "outside":
                self._room(y, u, v, index)
            if stretch.kind != "dark":
                y[self.inside_text], u[self.inside_text], v[self.inside_text] = 230, 128, 128
            y[self.overlay] = 220.0
            y[self.panels], u[self.panels], v[self.panels] = 205.0, 128.0, 128.0
            y[self.panel_text] = 30.0
            y[self.bars], u[self.bars], v[self.bars] = layout.bar_level, 128.0, 128.0
            y[self.bar_text] = 200.0
            conditions = self.conditions
            if conditions.border_level != 16.0:
                y[self.border] += np.float32(conditions.border_level - 16.0)
            if conditions.border_noise:
                grain = np.random.default_rng((self.seed, index)).normal(
                    0.0, conditions.border_noise, (h, w)
                )
                y[self.border] += grain.astype(np.float32)[self.border]
            self._clock(y, index, fps)
        y = y + noise
        return (
            _to_u8(y),
            _to_u8(_half(u) + noise[::2, ::2] * 0.4),
            _to_u8(_half(v) + noise[1::2, 1::2] * 0.4),
        )

    def _live(self, y: F32, u: F32, v: F32, index: int, motion: Motion) -> None:
        conditions = self.conditions
        ix, iy, fx, fy = self._offset(index, "still" if conditions.still else motion)
        tex = self._shifted(self.tex, ix, iy, fx, fy)
        tex2 = self._shifted(self.tex2, ix, iy, fx, fy)
        col = self.col[iy : iy + self.h, ix : ix + self.w]
        ves = self.vessels[iy : iy + self.h, ix : ix + self.w]
        spec = self.spec[iy : iy + self.h, ix : ix + self.w]
        black = np.float32(self.black)
        light = self.light
        if conditions.gain != 1.0:
            light = light * np.float32(conditions.gain)
        if conditions.lumen:
            light = light * self._lumen(index, conditions.lumen)
        luma = black + (125.0 + 35.0 * tex + 25.0 * tex2 - 40.0 * ves - black) * light
        inside = self.mask
        y[inside] = luma[inside]
        u[inside] = (112.0 - 8.0 * col + 5.0 * ves)[inside]
        v[inside] = (168.0 + 12.0 * col + 8.0 * ves)[inside]
        shine = spec & inside
        y[shine] = black + (235.0 - black) * np.float32(conditions.gain)
        u[shine], v[shine] = 128.0, 128.0

    def _lumen(self, index: int, radius: float) -> F32:
        """The light left by a dark lumen wandering over the image: black at its middle."""
        box = self.layout.image
        cx = box.x + box.width * (0.5 + 0.3 * math.sin(index * 0.07))
        cy = box.y + box.height * (0.5 + 0.3 * math.cos(index * 0.05))
        r = radius * min(box.width, box.height)
        xs = np.arange(self.w, dtype=np.float32)[None, :] + np.float32(0.5 - cx)
        ys = np.arange(self.h, dtype=np.float32)[:, None] + np.float32(0.5 - cy)
        d2 = (xs * xs + ys * ys) / np.float32(r * r)
        return np.asarray(np.where(d2 < 1.0, np.clip(d2 - 0.1, 0.0, 1.0), 1.0), dtype=np.float32)

    def _instrument(self, y: F32, u: F32, v: F32, step: int) -> None:
        box = self.layout.image
        cx, cy = box.x + box.width / 2, box.y + box.height / 2
        r = min(box.width, box.height) / 2
        sx, sy = cx + r * math.cos(math.radians(40)), cy + r * math.sin(math.radians(40))
        dx, dy = math.cos(math.radians(220)), math.sin(math.radians(220))
        xs = np.arange(self.w, dtype=np.float32)[None, :] + 0.5 - np.float32(sx)
        ys = np.arange(self.h, dtype=np.float32)[:, None] + 0.5 - np.float32(sy)
        along = xs * np.float32(dx) + ys * np.float32(dy)
        across = -xs * np.float32(dy) + ys * np.float32(dx)
        half = 0.06 * self.h
        length = min(r * 1.1, (8.0 + 5.0 * step) * self.k)
        shaft = (np.abs(across) < half) & (along > 0) & (along < length) & self.mask
        metal = 80.0 + 120.0 * np.clip(1.0 - (across / np.float32(half)) ** 2, 0.0, 1.0)
        bands = (along.astype(np.int32) // max(4, round(12 * self.k))) % 4 == 0
        y[shaft] = np.where(bands, 28.0, metal)[shaft]
        u[shaft], v[shaft] = 128.0, 128.0

    def _room(self, y: F32, u: F32, v: F32, index: int) -> None:
        """Out of the body: a grey room with a window and a desk, panning, through the optics."""
        xs = np.arange(self.w, dtype=np.float32)[None, :] / self.w + np.float32(0.004 * index)
        ys = np.arange(self.h, dtype=np.float32)[:, None] / self.h
        room_y = np.where(ys < 0.6, 165.0, 100.0) + np.zeros_like(xs)
        window = (np.sin(xs * 9.0) > 0.6) & (ys < 0.45)
        room_y = np.where(window, 200.0, room_y).astype(np.float32)
        room_u = np.where(window, 140.0, 126.0).astype(np.float32)
        room_v = np.where(window, 121.0, 131.0).astype(np.float32)
        inside = self.mask
        y[inside] = (self.black + (room_y - self.black) * self.light)[inside]
        u[inside] = room_u[inside]
        v[inside] = room_v[inside]

    def _clock(self, y: F32, index: int, fps: float) -> None:
        clock, digits = self.layout.clock, self.clock_digits
        if clock is None or digits is None:
            return
        _, gh, gw = digits.shape
        seconds = 36000 + int(index / fps)
        x = clock.x + 2
        y0 = clock.y + (clock.height - gh) // 2
        text = f"{seconds // 3600:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}"
        for n, digit in enumerate(text):
            if x + gw > clock.x + clock.width:
                break
            _blit(y, digits[int(digit)], x, y0, 220.0)
            x += gw + (5 if n % 2 else 2)


# ------------------------------------------------------------------------------------ scoring


@dataclass(frozen=True)
class LabelScore:
    label: TruthLabel
    truth_frames: int
    recall: float
    false_positives: int

    def __str__(self) -> str:
        return f"{self.label} {self.recall:.2f}/{self.truth_frames} fp {self.false_positives}"


@dataclass(frozen=True)
class SceneScore:
    """How an analysis of a corpus recording compares with its truth."""

    name: str
    size: str
    roi_iou: float  # pixel masks: the found ROI (ellipse or rectangle) vs the true image
    box_iou: float  # bounding boxes
    found: str  # the found ROI, or "none"
    confidence: float
    labels: tuple[LabelScore, ...]
    notes: str
    device: str | None  # the device recognised (jobs.roi_choice)
    device_truth: str | None
    inside_truth: int  # text boxes printed over the image
    inside_found: int  # ... whose centre lies in a found inside region
    inside_extra: int  # found inside regions with no such text
    overlay_on_image: float = 0.0  # the largest share of an overlay region inside the image
    #: pixels of the text printed beside the image (fields, panels, bars) that an output masked
    #: to the found ROI would keep (the inside regions found are blackened by reprocess)
    outside_text_kept: int = 0
    #: pixels of the text printed over the image that such an output keeps
    inside_text_kept: int = 0

    def row(self) -> str:
        labels = " | ".join(
            f"{s.recall:.2f} / {s.false_positives}"
            if s.truth_frames
            else f"- / {s.false_positives}"
            for s in self.labels
        )
        return (
            f"| {self.name} | {self.size} | {self.notes} | {self.roi_iou:.3f} | "
            f"{self.confidence:.2f} | {self.device or '-'} | "
            f"{self.inside_found}/{self.inside_truth} / {self.inside_extra} | {labels} |"
        )


TABLE_HEAD = (
    "| scene | size | what | ROI IoU | confidence | device | text inside: found / extra | "
    "blank: recall / FP | text_screen: recall / FP | non_endoscopic: recall / FP |\n"
    "|---|---|---|---|---|---|---|---|---|---|"
)


def score(truth: RealisticTruth, analysis: Analysis) -> SceneScore:
    """ROI IoU and per-label recall / false positives (frames) of `analysis` on `truth`."""
    layout = truth.scene.layout
    found_labels: list[str | None] = [None] * analysis.total_frames
    for segment in analysis.segments:
        for index in range(segment.start_frame, segment.end_frame + 1):
            found_labels[index] = segment.label
    scores = []
    for label in LABELS:
        positives = [i for i, t in enumerate(truth.labels) if t == label]
        hits = sum(found_labels[i] == label for i in positives)
        false = sum(
            1 for i, t in enumerate(truth.labels) if t != label and found_labels[i] == label
        )
        scores.append(
            LabelScore(label, len(positives), hits / len(positives) if positives else 1.0, false)
        )
    device = recognise_device(analysis, layout.width, layout.height, builtin_devices().values())
    centres = [(b.x + b.width / 2, b.y + b.height / 2) for b in layout.inside]
    found = analysis.inside_regions

    def holds(box: Roi, x: float, y: float) -> bool:
        return box.x <= x < box.x + box.width and box.y <= y < box.y + box.height

    image = layout.image_mask()

    def on_image(box: Roi) -> float:
        area = image[box.y : box.y + box.height, box.x : box.x + box.width]
        return float(area.mean()) if area.size else 0.0

    common = {
        "overlay_on_image": max((on_image(b) for b in analysis.overlay_regions), default=0.0),
        "labels": tuple(scores),
        "notes": truth.scene.notes,
        "device": None if device is None else device.name,
        "device_truth": layout.device,
        "inside_truth": len(centres),
        "inside_found": sum(any(holds(b, x, y) for b in found) for x, y in centres),
        "inside_extra": sum(not any(holds(b, x, y) for x, y in centres) for b in found),
    }
    size = f"{layout.width}x{layout.height}"
    suggestion = analysis.suggested_roi
    if suggestion is None:
        return SceneScore(truth.scene.name, size, 0.0, 0.0, "none", 0.0, **common)  # type: ignore[arg-type]
    roi = suggestion.roi
    # What an output masked to the suggestion keeps.
    found_mask = luma_keep_mask(
        layout.width, layout.height, roi, suggestion.shape, corner=suggestion.corner
    )
    true_mask = image
    iou = float((found_mask & true_mask).sum() / max(1, (found_mask | true_mask).sum()))
    kept = found_mask.copy()
    for box in analysis.inside_regions:
        kept[box.y : box.y + box.height, box.x : box.x + box.width] = False
    return SceneScore(
        truth.scene.name,
        size,
        iou,
        box_iou(roi, layout.image),
        f"{roi.x},{roi.y},{roi.width}x{roi.height} {suggestion.shape}"
        + (f" {suggestion.corner}" if suggestion.corner else ""),
        suggestion.confidence,
        **common,  # type: ignore[arg-type]
        outside_text_kept=int((kept & truth.text_beside).sum()),
        inside_text_kept=int((kept & truth.text_over).sum()),
    )


def box_iou(a: Roi, b: Roi) -> float:
    """Intersection over union of two boxes."""
    w = min(a.x + a.width, b.x + b.width) - max(a.x, b.x)
    h = min(a.y + a.height, b.y + b.height) - max(a.y, b.y)
    inter = max(0, w) * max(0, h)
    return inter / (a.width * a.height + b.width * b.height - inter)
