"""Synthetic endoscopy recordings with per-frame ground truth, for the analysis tests.

A recording is a script of scenes, drawn straight into YUV planes with numpy and encoded with
libx264 (CRF 18, B-frames) into MP4:

- "endoscopy": the live image, a red/pink textured disc on black whose content moves (the
  texture scrolls like a camera moving over mucosa, with darker vessels, vignetting and a few
  moving specular highlights) while the disc itself stays put, as the optics fix it; beside it
  a static overlay of text-like glyph lines (patient data) with a clock that ticks every second.
  Variant 1: a grey instrument with black depth marks slides in; variant 2: dark and washed
  out.
- "blank": black (with sensor-like noise); variant 1 keeps the device's overlay visible, as
  processors do while the scope is out.
- "text_screen": a patient-info or menu screen: lines of glyphs on a plain background
  (variant 0: white on dark blue; 1: black on light grey; 2: a sparse menu, a few short
  yellow lines on black), with a rule and a blinking cursor.
- "office": a grey office seen by the scope outside the body: beige wall, grey desk, a dark
  monitor, a blue-ish window; low saturation, slowly panning, noisy.

Glyphs are random bar patterns (horizontal and vertical strokes in a cell), no fonts needed.
The ground truth is the scene label of every frame (None for endoscopy), the bounding box of
the disc and that of the overlay.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np
import numpy.typing as npt
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from jobs.video import Roi
from testkit.media import plane_array

SceneKind = Literal["endoscopy", "blank", "text_screen", "office"]
TruthLabel = Literal["blank", "text_screen", "non_endoscopic"]
F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]

TRUTH: dict[SceneKind, TruthLabel | None] = {
    "endoscopy": None,
    "blank": "blank",
    "text_screen": "text_screen",
    "office": "non_endoscopic",
}


@dataclass(frozen=True)
class Scene:
    kind: SceneKind
    frames: int
    variant: int = 0


DEFAULT_SCRIPT: tuple[Scene, ...] = (
    Scene("endoscopy", 40),
    Scene("blank", 12),
    Scene("endoscopy", 20, 1),
    Scene("text_screen", 25, 0),
    Scene("endoscopy", 15),
    Scene("office", 25),
    Scene("blank", 10, 1),
    Scene("endoscopy", 10, 2),
    Scene("text_screen", 15, 1),
    Scene("endoscopy", 20, 1),
    Scene("text_screen", 15, 2),
    Scene("endoscopy", 15),
)


@dataclass(frozen=True)
class SceneTruth:
    """What a scene video contains, frame by frame."""

    path: Path
    width: int
    height: int
    fps: Fraction
    labels: tuple[TruthLabel | None, ...]  # per frame; None: endoscopic
    disc: Roi  # bounding box of the live image
    overlay: Roi  # bounding box of the burned-in text overlay

    @property
    def frames(self) -> int:
        return len(self.labels)


def make_scene_video(
    path: Path,
    *,
    width: int = 640,
    height: int = 360,
    fps: int | Fraction = 25,
    script: tuple[Scene, ...] = DEFAULT_SCRIPT,
    live_shape: Literal["round", "rect"] = "round",
    seed: int = 1,
) -> SceneTruth:
    """Write the scripted recording to `path` and return its ground truth. `live_shape`
    "rect" makes the live image a rectangle (as on processors that show it uncropped)."""
    rate = Fraction(fps)
    painter = _Painter(width, height, np.random.default_rng(seed), live_shape)
    labels: list[TruthLabel | None] = []
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=rate)
        assert isinstance(stream, VideoStream)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = 1 / rate
        stream.codec_context.options = {"crf": "18", "preset": "veryfast"}
        index = 0
        for scene in script:
            for _ in range(scene.frames):
                y, u, v = painter.paint(scene, index, float(rate))
                frame = VideoFrame(width, height, "yuv420p")
                for plane, data in zip(frame.planes, (y, u, v), strict=True):
                    plane_array(plane, frame)[:] = data
                frame.pts = index
                frame.time_base = stream.codec_context.time_base
                out.mux(stream.encode(frame))
                labels.append(TRUTH[scene.kind])
                index += 1
        out.mux(stream.encode(None))
    return SceneTruth(
        path=path,
        width=width,
        height=height,
        fps=rate,
        labels=tuple(labels),
        disc=painter.disc_box,
        overlay=painter.overlay_box,
    )


# ----------------------------------------------------------------------------------- drawing


def _smooth_noise(rng: np.random.Generator, height: int, width: int, scale: float) -> F32:
    """Random field in [-1, 1] with features about `scale` pixels wide (FFT low-pass)."""
    white = rng.standard_normal((height, width))
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    spectrum = np.fft.rfft2(white) * np.exp(-((fx**2 + fy**2) * (scale**2) * 4.0))
    field = np.fft.irfft2(spectrum, s=(height, width))
    field /= np.abs(field).max() + 1e-9
    return field.astype(np.float32)


def _glyph_bank(rng: np.random.Generator, count: int, gw: int, gh: int, stroke: int) -> Mask:
    """`count` random glyphs, (count, gh, gw) bool: 2-4 bars among the left/middle/right
    verticals and top/middle/bottom horizontals of the cell (or half of them)."""
    bank = np.zeros((count, gh, gw), dtype=np.bool_)
    for glyph in bank:
        for _ in range(int(rng.integers(2, 5))):
            kind = int(rng.integers(0, 6))
            half = int(rng.integers(0, 3))  # 0: full bar, 1: first half, 2: second half
            if kind < 3:  # vertical bar
                x = (0, (gw - stroke) // 2, gw - stroke)[kind]
                y0, y1 = ((0, gh), (0, gh // 2 + 1), (gh // 2, gh))[half]
                glyph[y0:y1, x : x + stroke] = True
            else:  # horizontal bar
                y = (0, (gh - stroke) // 2, gh - stroke)[kind - 3]
                x0, x1 = ((0, gw), (0, gw // 2 + 1), (gw // 2, gw))[half]
                glyph[y : y + stroke, x0:x1] = True
    return bank


def _text_block(
    rng: np.random.Generator,
    bank: Mask,
    lines: list[int],
    line_height: int,
    gap: int = 2,
) -> Mask:
    """Lines of random glyphs (lengths in `lines`, words separated by spaces), as a mask."""
    _, gh, gw = bank.shape
    width = max(lines) * (gw + gap)
    block = np.zeros((len(lines) * line_height, width), dtype=np.bool_)
    for row, length in enumerate(lines):
        y = row * line_height
        for col in range(length):
            if rng.random() < 0.15:  # a space between words
                continue
            x = col * (gw + gap)
            block[y : y + gh, x : x + gw] |= bank[int(rng.integers(0, len(bank)))]
    return block


def _blit(plane: F32, mask: Mask, x: int, y: int, value: float) -> None:
    h, w = mask.shape
    region = plane[y : y + h, x : x + w]
    region[mask[: region.shape[0], : region.shape[1]]] = value


class _Painter:
    """Draws the frames of every scene kind; keeps the state that persists between frames."""

    def __init__(self, width: int, height: int, rng: np.random.Generator, live_shape: str) -> None:
        self.w, self.h, self.rng = width, height, rng
        # The live image right of centre, as on most processors' screens: a disc, or a
        # rectangle with milder vignetting.
        self.radius = 0.45 * height
        self.cx, self.cy = 0.62 * width, 0.5 * height
        r = self.radius
        rx, ry = (r, r) if live_shape == "round" else (0.3 * width, 0.44 * height)
        self.disc_box = Roi(round(self.cx - rx), round(self.cy - ry), round(2 * rx), round(2 * ry))
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32) + np.float32(0.5)
        self.rho2 = ((xs - self.cx) / rx) ** 2 + ((ys - self.cy) / ry) ** 2
        if live_shape == "round":
            self.disc: Mask = self.rho2 <= 1.0
            self.vignetting = np.float32(0.45)
        else:
            box = self.disc_box
            self.disc = np.zeros((height, width), dtype=np.bool_)
            self.disc[box.y : box.y + box.height, box.x : box.x + box.width] = True
            self.vignetting = np.float32(0.2)
        # Mucosa texture, larger than the frame so that it can scroll.
        k = height / 360
        self.motion = 150 * k
        pad = round(2 * self.motion) + 4
        self.tex_y = _smooth_noise(rng, height + pad, width + pad, 18.0 * k)
        self.tex_c = _smooth_noise(rng, height + pad, width + pad, 40.0 * k)
        vessels = _smooth_noise(rng, height + pad, width + pad, 9.0 * k)
        self.vessels = np.clip(1.0 - np.abs(vessels) * 12.0, 0.0, 1.0).astype(np.float32)
        self.pad = pad
        # The device overlay left of the disc: lines of patient data and a clock, in a font
        # that scales with the frame (2 px strokes at 360 lines).
        k = height / 360
        self.glyph_w, self.glyph_h = max(4, round(7 * k)), max(6, round(11 * k))
        self.stroke = max(1, round(2 * k))
        self.overlay_bank = _glyph_bank(rng, 40, self.glyph_w, self.glyph_h, self.stroke)
        self.overlay_x, self.overlay_y = round(14 * k), round(24 * k)
        room = (self.disc_box.x - self.overlay_x - round(16 * k)) // (self.glyph_w + 2)
        lines = [int(n) for n in rng.integers(min(8, room - 1), min(17, room + 1), size=9)]
        self.overlay_text = _text_block(rng, self.overlay_bank, lines, round(22 * k))
        oh, ow = self.overlay_text.shape
        self.clock_y = self.overlay_y + oh + round(10 * k)
        self.overlay_box = Roi(
            self.overlay_x, self.overlay_y, ow, self.clock_y + self.glyph_h - self.overlay_y
        )
        self.digits = _glyph_bank(rng, 10, self.glyph_w, self.glyph_h, self.stroke)
        # Text screens: a bigger font, one block per variant.
        gw, gh = max(5, round(8 * k)), max(8, round(13 * k))
        self.screen_bank = _glyph_bank(rng, 60, gw, gh, max(1, round(2 * k)))
        self.screen_x, self.screen_y = round(24 * k), round(20 * k)
        per_line = (width - 2 * self.screen_x) // (gw + 2)
        self.screens = [
            _text_block(
                rng,
                self.screen_bank,
                [int(n) for n in rng.integers(per_line // 6, per_line, 13)],
                round(25 * k),
            )
            for _ in range(2)
        ]
        # Variant 2: a sparse menu, a few short lines far apart.
        self.screens.append(
            _text_block(
                rng,
                self.screen_bank,
                [int(n) for n in rng.integers(per_line // 10, per_line // 2, 6)],
                round(44 * k),
            )
        )
        # Office: a static layout of soft shapes.
        self.office = self._office_layout()
        # Sensor noise, from a small bank (drawing it per frame is slow).
        self.noise = [rng.normal(0.0, 1.0, (height, width)).astype(np.float32) for _ in range(7)]

    def paint(self, scene: Scene, index: int, fps: float) -> tuple[U8, U8, U8]:
        noise = self.noise[index % len(self.noise)]
        if scene.kind == "endoscopy":
            y, u, v = self._endoscopy(index, scene.variant)
            self._overlay(y, index, fps)
        elif scene.kind == "blank":
            y = np.full((self.h, self.w), 16.0, np.float32)
            u = np.full((self.h, self.w), 128.0, np.float32)
            v = u.copy()
            if scene.variant == 1:
                self._overlay(y, index, fps)
        elif scene.kind == "text_screen":
            y, u, v = self._text_screen(scene.variant, index)
        else:
            y, u, v = self._office(index)
        y = y + noise
        return (
            _to_u8(y),
            _to_u8(_half(u) + noise[::2, ::2] * 0.5),
            _to_u8(_half(v) + noise[1::2, 1::2] * 0.5),
        )

    def _endoscopy(self, index: int, variant: int) -> tuple[F32, F32, F32]:
        """Variant 0: plain; 1: a grey instrument with black marker bands enters the view;
        2: dark and washed out (the tip close to the wall)."""
        # The camera drifts along a slow loop over the mucosa.
        ox = int(self.pad / 2 + self.motion * math.sin(index * 0.045))
        oy = int(self.pad / 2 + 0.8 * self.motion * math.sin(index * 0.031 + 1.0))
        tex = self.tex_y[oy : oy + self.h, ox : ox + self.w]
        col = self.tex_c[oy : oy + self.h, ox : ox + self.w]
        ves = self.vessels[oy : oy + self.h, ox : ox + self.w]
        light = np.float32(1.0) - self.vignetting * self.rho2
        if variant == 2:
            light = light * np.float32(0.5)
            tex = tex * np.float32(0.4)
        y = (120.0 + 55.0 * tex - 45.0 * ves) * light
        u = 110.0 - 8.0 * col + 6.0 * ves
        v = 170.0 + 14.0 * col + 8.0 * ves
        for k in range(3):  # specular highlights wander around
            hx = self.cx + 0.5 * self.radius * math.cos(index * 0.09 + 2.1 * k)
            hy = self.cy + 0.5 * self.radius * math.sin(index * 0.07 + 1.7 * k)
            size = (6.0 + 3 * k) * self.h / 360
            spot = (self._dist2(hx, hy) < size**2) & self.disc
            y[spot], u[spot], v[spot] = 235.0, 128.0, 128.0
        if variant == 1:
            self._instrument(y, u, v, index)
        outside = ~self.disc
        y[outside], u[outside], v[outside] = 16.0, 128.0, 128.0
        return y.astype(np.float32), u.astype(np.float32), v.astype(np.float32)

    def _instrument(self, y: F32, u: F32, v: F32, index: int) -> None:
        # A shaft from the lower right edge of the image towards its centre, sliding in.
        angle = math.radians(220.0)
        dx, dy = math.cos(angle), math.sin(angle)
        start_x = self.cx + self.radius * math.cos(math.radians(40.0))
        start_y = self.cy + self.radius * math.sin(math.radians(40.0))
        xs = np.arange(self.w, dtype=np.float32)[None, :] + 0.5 - np.float32(start_x)
        ys = np.arange(self.h, dtype=np.float32)[:, None] + 0.5 - np.float32(start_y)
        along = xs * np.float32(dx) + ys * np.float32(dy)
        across = -xs * np.float32(dy) + ys * np.float32(dx)
        half_width = 0.07 * self.h
        length = min(self.radius * 1.1, 20.0 + 6.0 * (index % 40))
        shaft = (np.abs(across) < half_width) & (along > 0) & (along < length) & self.disc
        shine = 1.0 - (across / np.float32(half_width)) ** 2  # round metal catches light
        metal = 90.0 + 110.0 * np.clip(shine, 0.0, 1.0)
        bands = (along.astype(np.int32) // 14) % 4 == 0  # black depth marks
        y[shaft] = np.where(bands, 30.0, metal)[shaft]
        u[shaft], v[shaft] = 128.0, 128.0

    def _dist2(self, x: float, y: float) -> F32:
        xs = np.arange(self.w, dtype=np.float32) + 0.5 - np.float32(x)
        ys = np.arange(self.h, dtype=np.float32) + 0.5 - np.float32(y)
        return np.asarray(ys[:, None] ** 2 + xs[None, :] ** 2, dtype=np.float32)

    def _overlay(self, y: F32, index: int, fps: float) -> None:
        _blit(y, self.overlay_text, self.overlay_x, self.overlay_y, 220.0)
        seconds = int(index / fps)
        x = self.overlay_x
        for digit in f"{seconds // 60:02d}:{seconds % 60:02d}".replace(":", ""):
            _blit(y, self.digits[int(digit)], x, self.clock_y, 220.0)
            x += self.glyph_w + 3

    def _text_screen(self, variant: int, index: int) -> tuple[F32, F32, F32]:
        """Variant 0: white on dark blue; 1: black on light grey; 2: a sparse menu in yellow
        on black."""
        background, ink = (
            ((40.0, 190.0, 110.0), (230.0, 128.0, 128.0)),
            ((200.0, 128.0, 128.0), (28.0, 128.0, 128.0)),
            ((16.0, 128.0, 128.0), (205.0, 40.0, 142.0)),
        )[variant]
        planes = [np.full((self.h, self.w), level, np.float32) for level in background]
        block = self.screens[variant]
        bh = block.shape[0]
        x0, y0 = self.screen_x, self.screen_y
        for plane, level in zip(planes, ink, strict=True):
            _blit(plane, block[: self.h - y0 - 10, : self.w - x0 - 10], x0, y0, level)
            # A rule above the form, and a blinking cursor after the last line.
            plane[y0 - 8 : y0 - 6, x0 - 8 : self.w - 16] = level
            if (index // 8) % 2 == 0:
                cy = min(self.h - 30, y0 + bh)
                plane[cy : cy + 14, x0 : x0 + 8] = level
        return planes[0], planes[1], planes[2]

    def _office_layout(self) -> list[tuple[tuple[float, float, float, float], tuple[float, ...]]]:
        # (x0, y0, x1, y1) in frame fractions, (Y, U, V).
        return [
            ((-1.0, -1.0, 3.0, 0.62), (172.0, 121.0, 133.0)),  # beige wall
            ((0.55, 0.05, 0.95, 0.45), (190.0, 140.0, 121.0)),  # blue-ish window
            ((-1.0, 0.62, 3.0, 2.0), (105.0, 126.0, 131.0)),  # grey desk
            ((0.08, 0.20, 0.42, 0.58), (45.0, 130.0, 127.0)),  # dark monitor
            ((0.20, 0.58, 0.30, 0.66), (80.0, 128.0, 128.0)),  # its stand
            ((0.60, 0.66, 0.85, 0.80), (215.0, 126.0, 130.0)),  # papers
        ]

    def _office(self, index: int) -> tuple[F32, F32, F32]:
        y = np.zeros((self.h, self.w), np.float32)
        u = np.zeros_like(y)
        v = np.zeros_like(y)
        pan = 0.002 * index
        xs = np.arange(self.w, dtype=np.float32)[None, :] / self.w + np.float32(pan)
        ys = np.arange(self.h, dtype=np.float32)[:, None] / self.h
        for (x0, y0, x1, y1), (ly, lu, lv) in self.office:
            # Soft edges (a slightly defocused scope): a 3 px ramp.
            ramp = np.float32(3.0 / self.w)
            wx = np.clip(np.minimum(xs - x0, x1 - xs) / ramp + 0.5, 0.0, 1.0)
            wy = np.clip(np.minimum(ys - y0, y1 - ys) / np.float32(3.0 / self.h) + 0.5, 0.0, 1.0)
            weight = (wx * wy).astype(np.float32)
            y = (y * (1 - weight) + ly * weight).astype(np.float32)
            u = (u * (1 - weight) + lu * weight).astype(np.float32)
            v = (v * (1 - weight) + lv * weight).astype(np.float32)
        shade = 1.0 - 0.15 * ys  # light from above
        return (y * shade).astype(np.float32), u, v


def _half(plane: F32) -> F32:
    """2x2 average (4:2:0 chroma from a full-resolution chroma drawing)."""
    h, w = plane.shape
    p = plane[: h // 2 * 2, : w // 2 * 2]
    return np.asarray((p[0::2, 0::2] + p[1::2, 0::2] + p[0::2, 1::2] + p[1::2, 1::2]) * 0.25)


def _to_u8(plane: F32) -> U8:
    return np.clip(np.rint(plane), 0, 255).astype(np.uint8)
