"""Analysis: find the frames that should not be published (text screens, scenes outside the
body, blank frames), the live endoscope image and the burned-in overlays, in one decoding pass.

Every frame is decoded (H.264 needs it anyway); every `sample_every`-th frame is analysed.
Memory is constant apart from one byte per analysed frame for its label (plus the stats of
the last DECISION_LAG analysed frames, a few KB each). Method "classical-v1": numpy
statistics on the decoded YUV planes; see detectors.py for the three per-frame detectors
(blank, text_screen, non_endoscopic), their method and their limits. Cost: about 1 ms per
analysed 320x240 frame, 2 ms at 640x360, 3 ms at 1280x720 (decoding included, 2 cores).

Labels. A frame gets at most one label; when several detectors fire the precedence is
blank > text_screen > non_endoscopic (a black frame is reported as blank even though it is
also "not endoscopic"; a text screen as text_screen even though its colours are not tissue's).
Frames that are not analysed (sample_every > 1) take the label of the analysed frames around
them when those agree; when they differ, the more cautious one: text_screen >
non_endoscopic > no label > blank (sensitive content is assumed to extend over the uncertain
gap, blank is not). "Sensitive" frames are those labelled text_screen or non_endoscopic.

Live frames. An analysed frame is live when enough tissue-coloured tiles changed since the
previous analysed frame (the scope is in the body and moving). Only live frames, and pairs of
consecutive live frames, feed the overlay statistics below, whatever their label.

Suggested ROI (the live image). The live image is where the picture is lit, over the recording
as a whole, inside a border that stays dark. Every analysed frame's working luma is averaged
over light cells (blocks of 1-8 working pixels, at least LIGHT_CELLS_ACROSS across; 2 px at
640 wide, 8 px at 1080p) and a cell is lit when it is LIT_STEP brighter than the frame's
darkest tile mean (a robust black level: no outlier pixel lowers it). Only frames that end up
with no label (from the scope: not black, not a registration or menu screen, not flagged by an
extra detector) and that have some lit cells count; per cell the number of frames it was lit
in is kept (constant memory, one uint32 per cell), and the sum of its light over them. At the
end, the cells lit in at least half of those frames, less the static areas (a lit grey status
bar or background that never changed while the picture moved, with its lines of text: light
cells STATIC_CELL_SHARE of whose change cells stayed within STATIC_RANGE over the live frames,
opened by the same square and closed by a 9x9 one, in groups of STATIC_MIN_TILES tiles or
more, with the cells connected to them within RINGING_PX (at 360 lines, scaled with the
frame's height) that stayed within RINGING_RANGE, the encoder's ringing from the picture
beside them; LEARN_MIN_PAIRS live frames first), opened by a 5x5 square (text lines and thin
bridges drop out), give tiles; the
largest 8-connected group of tiles selects the lit cells of the image: those connected, cell by
cell, to the group's core (the group less an eighth of its size at its edges) within a tile of
the group, so a lit info panel or logo whose tiles touch the image's is left out; their holes
and notches are filled (row and column spans). The same is done once more with the dim rim
added: the cells whose mean light over those frames is DIM_STEP above the border's (the median
over the cells well away from the lit ones, so that neither a dark lumen passing by nor noise
moves it), within 1/RIM_REACH of the image's size of the box found first: the vignetted rim
and corners of an image too dark to be LIT_STEP above the darkest tile in half of the frames,
and not a dim static thing beside it, nor towards light text within STROKE_GAP cells of that
reach (a dim bar's text right beside the image): then it only completes the box. A picture
that fills the frame (the lit cells' box reaching its four edges, the cells well away from them
PICTURE_STEP above VIDEO_BLACK and changing) has no border: the ROI is the whole frame. The ROI
is the bounding box, with the shape
of the three that fits the region best: the box itself, the inscribed ellipse, or an octagon
(the box with 45-degree corners cut off, their size measured from the cells missing in each
corner of the box, averaged over the four: an octagonal or rounded-rectangle image, and a round
image clipped by the frame's top and bottom). Motion is not needed: a nearly still image is
lit too; vignetting only needs the rim's mean light DIM_STEP above the border's. Confidence
(0-1) is the product of: the frames used (full from MIN_LIT_FRAMES on), the fit (1 - IoU of
region and shape: full up to GOOD_FIT, none from MAX_FIT_RESIDUAL) and the size (full from
MIN_AREA_SHARE of the frame); below ROI_MIN_CONFIDENCE reprocess without a mask refuses to use
it. Limits: a live image that is dark in more than half of its frames at some place (a lumen
always at the same edge) loses that part (filled back if it is inside); lit things touching
the image (text closer than two cells) can join it, and a static one dimmer than that but
DIM_STEP above the border (a dark grey bar) adds up to 1/RIM_REACH of the image's size; a lit
static area (a bar, a background) stays out only once the picture has moved (LEARN_MIN_PAIRS
live frames) and only if it never changed (an analog capture's noise makes it change): else it
is taken as part of the image (then the fit is poor and the confidence low, or the box too
large); next to it, up to RINGING_PX of a nearly still picture can be lost with it.

Overlay regions. Tiles that are text-like (see detectors.py) in at least half of the live
frames, that change in at most 10% of the live frame pairs (a clock ticking once a second
still counts as static) and whose centre lies outside the suggested ROI form the overlay;
tiles within one tile of each other are grouped, and each group's bounding box (whole tiles of
16 working pixels, plus half a tile of margin) is reported. Limits: overlays that change often
(a running frame counter) or have little edge detail (large plain logos) are missed, as are
small isolated items (a clock alone can be too small to be text-like); an overlay shown only
over black frames is not found.

Learning the overlay also helps the labels: decisions are taken DECISION_LAG analysed frames
after the measurement, and the overlay learned by then (after LEARN_MIN_PAIRS live pairs) is
left out of them, so a live image or a black frame still showing the device's patient data is
not taken for a text screen. Until then, the overlay learned the same way from the frames that
show tissue, moving or not, is left out (a nearly still image never makes moving pairs; static
tissue tiles that look like text then join it, which only leaves them out of the decisions).
Before any overlay is learned (e.g. a video starting with a long
black stretch with overlay), such frames are labelled text_screen: the cautious side.
"""

from __future__ import annotations

import itertools
import queue
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from av.video.frame import VideoFrame

from jobs.video.codec import ProgressCallback, decode_video, demux, plane_view, readable_frame
from jobs.video.detectors import (
    LABELS,
    TILE,
    BoolGrid,
    FloatGrid,
    FrameDetector,
    FramePlanes,
    FrameSamples,
    Grid,
    Label,
    TileStats,
    U16Array,
    abs_diff,
    block_sums,
    classify,
    sampled,
    tile_stats,
    tile_sum,
)
from jobs.video.errors import InvalidVideo
from jobs.video.planes import Roi, Shape, U8Array, centres, in_shape
from jobs.video.probe import check_size, open_input, select_video_stream
from jobs.video.timeline import FrameRange, format_ranges, merge_ranges, range_frames

__all__ = [
    "DETECTION_METHOD",
    "SENSITIVE",
    "Analysis",
    "FrameDetector",
    "FramePlanes",
    "Label",
    "LiveAnalysis",
    "Segment",
    "SuggestedRoi",
    "analyze_video",
]

DETECTION_METHOD = "classical-v1"
SENSITIVE: tuple[Label, ...] = ("text_screen", "non_endoscopic")

# The live-image finder (see the module docstring).
LIGHT_CELLS_ACROSS = 240  # light cells across the frame, at least (when the frame has them)
LIT_STEP = 12  # a lit light cell is this much brighter than the darkest tile mean
LIT_FRAME_SHARE = 0.01  # frames with fewer lit cells (dark) do not count
LIT_SHARE = 0.5  # a cell of the live image is lit in at least this share of the frames
# The dim rim: a cell whose mean light is DIM_STEP (and DIM_SPREADS times the border's spread)
# above the border's, measured where the border is: BORDER_GAP cells and more from the lit
# cells, at least BORDER_SHARE of the frame.
DIM_STEP = 4
DIM_SPREADS = 6
BORDER_GAP = 4
BORDER_SHARE = 0.05
STROKE_GAP = 2  # light cells kept between the dim rim and text beside the image
RIM_REACH = 64  # the dim rim reaches 1/RIM_REACH of the image's size beyond its lit box
VIDEO_BLACK = 16  # the luma of black (limited range)
PICTURE_STEP = 8  # corners this much above black on average, and changing, are picture
STATIC_RANGE = 3  # a change cell whose luma stayed within this over the live frames is static
STATIC_CLOSE = 4  # gaps in a static area up to 2 * STATIC_CLOSE cells wide are filled
STATIC_CELL_SHARE = 0.75  # of a light cell's change cells, for it to be static
STATIC_MIN_TILES = 4  # a smaller static lit area (a line of text) is not left out
RINGING_PX = 32  # beside a static area, the encoder's ringing reaches this far (at 360 lines) ...
RINGING_RANGE = 12  # ... and varies within this
OPEN_CELLS = 2  # the opening that removes text lines and thin bridges, in light cells
CORE_DEPTH = 8  # the image's core: its tiles less 1/CORE_DEPTH of its size at the edges
MIN_LIT_FRAMES = 10  # fewer endoscopic frames lower the confidence
GOOD_FIT = 0.06  # fit residuals up to this are a perfect fit...
MAX_FIT_RESIDUAL = 0.2  # ... and from this on no fit at all
MIN_AREA_SHARE = 0.04  # a smaller live image lowers the confidence
#: Below this confidence reprocess without a mask does not use the suggested ROI.
ROI_MIN_CONFIDENCE = 0.5
#: The confidence at most when the image found rests on lit areas that stayed unchanged while
#: too few frames moved to tell whether they are picture (see _Learner._undecided).
UNDECIDED_CONFIDENCE = 0.25
CELL = 2  # change grid: one cell every 2 working pixels
CELLS_PER_TILE = TILE // CELL
CHANGE_STEP = 4  # a luma change larger than this counts
MIN_CELLS_PER_LINE = 3  # rows/columns with fewer live cells do not extend the ROI
MIN_PAIRS = 2
STATIC_SHARE = 0.10  # an overlay tile changes in at most this share of the frame pairs
OVERLAY_BOX_INSIDE = 0.25  # an overlay box with more of the image than this is split
OVERLAY_TEXT_SHARE = 0.5  # ... and is text-like in at least this share of the live frames
# Text over the picture: at least INSIDE_INK_SHARE of a tile's cells stay at least INK_BRIGHT
# (or at most INK_DARK) in every live frame.
INSIDE_INK_SHARE = 0.05
INK_BRIGHT = 190
INK_DARK = 30
INK_JOIN_STEPS = 2  # inked tiles up to 2 tiles from text over the image join it, this often
LEARN_MIN_PAIRS = 8  # live frame pairs before the overlay is left out of the decisions
DECISION_LAG = 2 * LEARN_MIN_PAIRS  # analysed frames between measuring and deciding
# A live frame: at least LIVE_MIN_TILES and LIVE_MIN_SHARE of the tiles are tissue-coloured
# (detectors.TileStats.tissue_tiles) and changed (MOVING_TILE_SHARE of the cells).
MOVING_TILE_SHARE = 0.2
LIVE_MIN_TILES = 4
LIVE_MIN_SHARE = 0.03

# Label codes of the per-frame byte arrays; 0 is "no label".
_CODES: dict[Label, int] = {label: code for code, label in enumerate(LABELS, start=1)}
_BY_CODE: dict[int, Label] = {code: label for label, code in _CODES.items()}
_CAUTION = {0: 1, _CODES["blank"]: 0, _CODES["non_endoscopic"]: 2, _CODES["text_screen"]: 3}


@dataclass(frozen=True)
class Segment:
    """A run of consecutive frames with the same label; frame numbers inclusive."""

    label: Label
    start_frame: int
    end_frame: int


@dataclass(frozen=True)
class SuggestedRoi:
    """The live endoscope image: the region lit in most of the endoscopic frames, inside a
    border that stays dark, with how sure the finder is of it."""

    roi: Roi
    shape: Shape  # the kept area in roi, as a mask request gives it
    corner: int = 0  # an octagon's corners cut off, in pixels (see planes.luma_keep_mask)
    confidence: float = 1.0  # 0-1; below ROI_MIN_CONFIDENCE reprocess does not trust it
    fit_residual: float = 0.0  # 1 - IoU of the lit region and the fitted shape
    frames_used: int = 0  # analysed frames whose light fed the finder
    frame_share: float = 0.0  # ... as a share of the analysed frames
    moving_frames: int = 0  # live frames in which the picture moved (tell static areas)

    @property
    def ellipse(self) -> bool:
        """Whether the live area is round (fills its box like an ellipse)."""
        return self.shape == "ellipse"

    def to_dict(self) -> dict[str, object]:
        """The suggestion as the analysis result shows it: the box, ``shape`` (and an
        octagon's ``corner``) as a mask request takes them, and ``ellipse`` (whether the shape
        is the ellipse) as earlier results had it."""
        return {
            **self.roi.to_dict(),
            "shape": self.shape,
            **({"corner": self.corner} if self.shape == "octagon" else {}),
            "ellipse": self.ellipse,
            "confidence": round(self.confidence, 3),
            "evidence": {
                "fit": self.shape,
                "fit_residual": round(self.fit_residual, 4),
                "frames_used": self.frames_used,
                "frame_share": round(self.frame_share, 4),
                "moving_frames": self.moving_frames,
            },
        }


@dataclass(frozen=True)
class Analysis:
    """What analyze_video found."""

    total_frames: int
    sample_every: int
    segments: tuple[Segment, ...]  # sorted by start; a frame is in at most one
    suggested_roi: SuggestedRoi | None
    overlay_regions: tuple[Roi, ...]  # static text-like regions outside the live image
    detection_method: str
    inside_regions: tuple[Roi, ...] = ()  # static text-like regions inside the live image

    def frames_with(self, labels: Iterable[Label]) -> tuple[FrameRange, ...]:
        """The frames labelled with any of `labels`, as sorted, merged ranges."""
        wanted = set(labels)
        return merge_ranges(
            (s.start_frame, s.end_frame) for s in self.segments if s.label in wanted
        )

    def to_dict(self) -> dict[str, object]:
        """JSON-able summary (sensitive = text_screen or non_endoscopic)."""
        sensitive = self.frames_with(SENSITIVE)
        count = range_frames(sensitive)
        roi = self.suggested_roi
        return {
            "total_frames": self.total_frames,
            "sample_every": self.sample_every,
            "detection_method": self.detection_method,
            "segments": [
                {"label": s.label, "start_frame": s.start_frame, "end_frame": s.end_frame}
                for s in self.segments
            ],
            "sensitive_frame_count": count,
            "sensitive_ratio": round(count / self.total_frames, 6) if self.total_frames else 0.0,
            "sensitive_frame_ids": format_ranges(sensitive),
            "suggested_roi": None if roi is None else roi.to_dict(),
            "overlay_regions": [
                *({**r.to_dict(), "inside_roi": False} for r in self.overlay_regions),
                *({**r.to_dict(), "inside_roi": True} for r in self.inside_regions),
            ],
        }


def analyze_video(
    src: Path,
    *,
    sample_every: int = 1,
    on_progress: ProgressCallback | None = None,
    extra_detectors: Sequence[FrameDetector] = (),
) -> Analysis:
    """Analyse the video `src` (only read) in one decoding pass; see the module docstring.

    Every frame is decoded, every `sample_every`-th (0, n, 2n, ...) is analysed by the
    classical detectors and by `extra_detectors`, whose labels are added. Blocking; run it
    in a worker thread. `on_progress` gets the number of frames decoded after every frame
    and once more at the end; an exception it raises aborts and propagates.

    Raises ValueError if sample_every < 1, InvalidVideo if the video cannot be decoded.
    """
    with LiveAnalysis(sample_every=sample_every, extra_detectors=extra_detectors) as analysis:
        with open_input(src) as inp:
            vin = select_video_stream(inp)
            vin.codec_context.thread_type = "AUTO"
            for packet in demux(inp, (vin,)):
                for frame in decode_video(vin, packet):
                    analysis.push(frame)
                    if on_progress is not None:
                        on_progress(analysis.frames)
        analysis.finish()
    if on_progress is not None:
        on_progress(analysis.frames)
    return analysis.result()


class LiveAnalysis:
    """The analysis of a video whose frames someone else decodes, given one at a time.

    analyze_video feeds it from its own decoding loop. The editor feeds it too when a video is
    analysed and edited in one pass (reprocess with a given mask): with `hold` labels, each
    frame is held back until its label is decided (DECISION_LAG analysed frames later; only
    with sample_every 1) and then handed on, and `in` tells whether a handed-on frame carries
    one of those labels, i.e. is to be cut. The labels are the ones analyze_video would give:
    same code, same order.

    The frames are analysed in a thread of its own (see _AnalysisThread), so that the caller's
    thread goes on decoding (libavcodec and numpy's big passes run without the GIL) while a
    frame is measured; at most IN_FLIGHT analysed frames wait for it, the thread measures them
    BATCH at a time, and with `hold` at most DECISION_LAG + IN_FLIGHT + BATCH + 2 frames are
    held. An exception of the analysis is raised by the
    next push or finish. The thread ends with finish or close (a `with` block closes): a
    caller that stops early (an error, a cancel) must close, or the thread waits for frames
    until this object is garbage collected.
    """

    def __init__(
        self,
        *,
        sample_every: int = 1,
        extra_detectors: Sequence[FrameDetector] = (),
        hold: Iterable[Label] | None = None,
    ) -> None:
        if sample_every < 1:
            raise ValueError(f"sample_every must be at least 1, not {sample_every}.")
        if hold is not None and sample_every != 1:
            raise ValueError("Frames can only be held back while every frame is analysed.")
        self._every = sample_every
        self._extra = extra_detectors
        self._hold = None if hold is None else frozenset(_CODES[label] for label in hold)
        self._thread = _AnalysisThread(extra_detectors)
        # Ends the thread if this object is dropped without finish or close.
        self._stop = weakref.finalize(self, self._thread.close)
        self._size: tuple[int, int] | None = None
        self._held: deque[VideoFrame] = deque()
        self._handed_on = 0
        self._finished = False
        self.frames = 0  # frames given so far

    def __enter__(self) -> LiveAnalysis:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def push(self, frame: VideoFrame) -> list[VideoFrame]:
        """Take the next decoded frame; returns the held frames whose label is now decided,
        in order (always empty unless labels are held)."""
        if self._size is None:
            self._size = (frame.width, frame.height)
        elif (frame.width, frame.height) != self._size:
            raise InvalidVideo("The picture size changes within the video; this is not supported.")
        if self.frames % self._every == 0:
            self._thread.put(self.frames, frame)
        self.frames += 1
        if self._hold is None:
            return []
        self._held.append(frame)
        return self._hand_on(self._thread.decided)

    def finish(self) -> list[VideoFrame]:
        """Decide the labels still pending; returns the frames still held back."""
        if not self._finished:
            self._thread.finish()
            self._stop.detach()
            self._finished = True
        return self._hand_on(self.frames)

    def close(self) -> None:
        """Stop the analysis thread (at once, dropping the frames it has not analysed yet) and
        wait for it; finish calls for nothing more. Idempotent."""
        self._stop()

    def __contains__(self, index: object) -> bool:
        """Whether handed-on frame `index` has one of the held labels."""
        learner = self._thread.learner
        if self._hold is None or learner is None or not isinstance(index, int):
            return False
        codes = learner.codes
        return 0 <= index < len(codes) and codes[index] in self._hold

    def result(self) -> Analysis:
        """What analyze_video returns, once `finish` was called."""
        learner, size, done = self._thread.learner, self._size, self.frames
        if done == 0 or learner is None or size is None:
            raise InvalidVideo("The video stream contains no decodable frame.")
        method = DETECTION_METHOD + "".join(f"+{d.name}" for d in self._extra)
        roi = learner.suggested_roi()
        return Analysis(
            total_frames=done,
            sample_every=self._every,
            segments=_segments(learner.codes, self._every, done),
            suggested_roi=roi,
            overlay_regions=learner.overlay_regions(roi),
            detection_method=method,
            inside_regions=learner.inside_regions(roi),
        )

    def _hand_on(self, decided: int) -> list[VideoFrame]:
        ready: list[VideoFrame] = []
        while self._held and self._handed_on < decided:
            ready.append(self._held.popleft())
            self._handed_on += 1
        return ready


#: Analysed frames waiting for the analysis thread, at most: enough to even out the decoder's
#: bursts, few enough to keep memory small (a decoded 1080p frame is 3 MB).
IN_FLIGHT = 4


class _AnalysisThread:
    """The thread that runs _Learner.take on the analysed frames, in order, fed through a
    bounded queue by the decoding thread (put blocks while IN_FLIGHT frames wait).

    The learner is created with the first frame and only this thread touches it until the
    thread ended (finish or close); meanwhile the caller reads `decided` (the number of
    analysed frames whose label is decided) and the codes below it, which no longer change. An
    exception in the thread is kept and raised by the caller's next put or finish; the thread
    then drops what it is given until it is told to stop.
    """

    _STOP = None

    def __init__(self, extra: Sequence[FrameDetector]) -> None:
        self._extra = extra
        self._queue: queue.Queue[tuple[int, VideoFrame] | None] = queue.Queue(IN_FLIGHT)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._abort = False  # close: drop the frames still queued
        self.learner: _Learner | None = None

    @property
    def decided(self) -> int:
        learner = self.learner
        return 0 if learner is None else len(learner.codes)

    def put(self, index: int, frame: VideoFrame) -> None:
        """Queue analysed frame `index` (a frame number); raises the thread's exception."""
        self._raise()
        if self._thread is None:
            if self._abort:
                raise RuntimeError("The analysis was closed.")
            self._thread = threading.Thread(
                target=self._run, name="vidcorrect-analysis", daemon=True
            )
            self._thread.start()
        self._queue.put((index, frame))

    def finish(self) -> None:
        """Analyse the frames still queued, end the thread, decide the pending labels."""
        self._end()
        self._raise()
        if self._abort:
            raise RuntimeError("The analysis was closed.")
        if self.learner is not None:
            self.learner.finish()

    def close(self) -> None:
        """End the thread, dropping the frames still queued."""
        self._abort = True
        self._end()

    def _end(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(self._STOP)
            thread.join()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while (item := self._queue.get()) is not self._STOP:
            if self._error is not None or self._abort:
                continue
            try:
                self._take(*item)
            except BaseException as exc:  # raised in the caller's thread
                self._error = exc
            item = None  # the decoder's picture is not kept while waiting

    def _take(self, index: int, frame: VideoFrame) -> None:
        planes = _planes(index, frame)
        if self.learner is None:
            self.learner = _Learner(frame.width, frame.height, planes)
        self.learner.take(planes, self._extra)


def _planes(index: int, frame: VideoFrame) -> FramePlanes:
    frame = readable_frame(frame)
    y, u, v = (plane_view(p) for p in frame.planes[:3])
    for plane in (y, u, v):
        plane.flags.writeable = False  # detectors get a view of the decoder's picture
    return FramePlanes(index=index, y=y, u=u, v=v)


#: A frame's light cells: their block sums (the working luma itself for blocks of 1).
LightSums = U8Array | U16Array
#: A frame waiting for its label: its tile stats, the extra detectors' labels, its lit cells,
#: its light cells and the overlay known when it became due.
_Due = tuple[TileStats, frozenset[Label], BoolGrid, LightSums, BoolGrid | None]

#: Analysed frames measured together (numpy's fixed cost per call shared among them).
BATCH = 8


class _Learner:
    """Labels the analysed frames and learns, from the live ones, where the live image and
    the overlay are.

    A frame is "live" when enough tissue-coloured tiles changed since the previous analysed
    frame: the endoscope is in the body and moving. Only live frames (and pairs of
    consecutive live frames) feed the ROI and overlay statistics, whatever their label, so a
    large overlay that makes the first frames look like a text screen is still learned.
    Labels are decided DECISION_LAG analysed frames late, with the overlay known by then.
    """

    def __init__(self, width: int, height: int, first: FramePlanes) -> None:
        self._width = width
        self._height = height
        sub_x = max(1, round(width / first.u.shape[1]))
        sub_y = max(1, round(height / first.u.shape[0]))
        check_size(width, height)  # (uploads this small are refused already)
        self.grid = Grid.of(width, height, sub_x, sub_y)
        self._tile_change = np.zeros((self.grid.rows, self.grid.cols), dtype=np.float64)
        # Per change cell, its darkest and brightest luma over the live frames: the strokes of
        # text printed over a moving picture stay bright (or dark) while the tissue around
        # them changes.
        shape = (self.grid.rows * CELLS_PER_TILE, self.grid.cols * CELLS_PER_TILE)
        self._cell_min = np.full(shape, 255, dtype=np.uint8)
        self._cell_max = np.zeros(shape, dtype=np.uint8)
        # ... and over the frames showing tissue, moving or not: what a slow or short
        # recording's picture did, to tell whether the static test could be trusted.
        self._tissue_min = np.full(shape, 255, dtype=np.uint8)
        self._tissue_max = np.zeros(shape, dtype=np.uint8)
        self._text_hits = np.zeros((self.grid.rows, self.grid.cols), dtype=np.int32)
        self._previous: U8Array | None = None  # the last frame's change cells
        self._previous_live = False
        self._previous_tissue = False
        self._still = _StillOverlay(self.grid.rows, self.grid.cols)
        self._live = 0  # live frames seen
        self._pairs = 0  # pairs of consecutive live frames seen
        self._overlay: BoolGrid | None = None
        self._overlay_dirty = False
        self._pending: deque[tuple[TileStats, frozenset[Label], BoolGrid, LightSums]] = deque()
        self._samples = FrameSamples(
            self.grid, BATCH, luma_at_chroma=self.grid.chroma_luma_step != (CELL, CELL)
        )
        self._extra_labels: list[frozenset[Label]] = []  # of the frames in the batch
        self.codes = bytearray()  # label code of every analysed frame decided so far
        # The live-image finder: per light cell (LIGHT_BLOCK working pixels square), in how
        # many of the endoscopic frames it was lit; constant memory.
        self._block = _light_block(self.grid.cols * TILE)
        self._lit_count = np.zeros(
            (self.grid.rows * TILE // self._block, self.grid.cols * TILE // self._block),
            dtype=np.uint32,
        )
        # ... and the sum of its block sums over those frames (its mean light, see
        # _dim_rim); uint64: 2**64 / (64 * 255) frames.
        self._light_sum = np.zeros(self._lit_count.shape, dtype=np.uint64)
        self._lit_frames = 0  # endoscopic frames that fed _lit_count
        self._analysed = 0

    def take(self, planes: FramePlanes, extra: Sequence[FrameDetector]) -> None:
        """Take one analysed frame: its samples are copied (the frame is not kept) and the
        extra detectors run; every BATCH frames the batch is measured and learned from, and
        the labels that are due are decided."""
        self._samples.add(planes)
        extra_labels: set[Label] = set()
        for detector in extra:
            extra_labels.update(detector(planes))
        self._extra_labels.append(frozenset(extra_labels))
        if self._samples.count == BATCH:
            self._measure()

    def finish(self) -> None:
        """Measure the frames still in the batch, then decide the labels still pending."""
        self._measure()
        due: list[_Due] = []
        while self._pending:
            due.append((*self._pending.popleft(), self._known_overlay()))
        self._decide(due)

    def _measure(self) -> None:
        """Measure the batch, learn from its frames in order and decide the labels due after
        each (with the overlay known then), as if the frames came one at a time."""
        n = self._samples.count
        if n == 0:
            return
        g = self.grid
        work, u8, v8, y_at_c = self._samples.taken()
        # The light cells' sums, which also give the tiles' (one pass over the pixels for both).
        blocks = None if self._block == 1 else block_sums(work, self._block)
        # The change cells, copied once (a pass over a strided view costs several times a
        # copy); the colour statistics' luma when they are the same pixels.
        cells = sampled(work, CELL, CELL, work.shape[0] // CELL, -(-work.shape[1] // CELL))
        stats = tile_stats(g, work, u8, v8, cells if y_at_c is None else y_at_c, blocks)
        self._samples.clear()
        sums = work if blocks is None else blocks
        lit = self._lit_cells(sums, stats.mean)
        light = sums.reshape(n, -1, sums.shape[1])
        if blocks is None:  # the samples' buffer is reused by the next batch
            light = light.copy()
        learned = self._learned(cells.reshape(n, -1, cells.shape[1]), stats)
        extra, self._extra_labels = self._extra_labels, []
        due: list[_Due] = []
        for k in range(n):
            learned(k)
            self._pending.append((stats.frame(k), extra[k], lit[k], light[k]))
            self._analysed += 1
            if len(self._pending) > DECISION_LAG:
                due.append((*self._pending.popleft(), self._known_overlay()))
        self._decide(due)

    def _decide(self, due: list[_Due]) -> None:
        """Label the frames `due` (their stats, extra labels, light cells and the overlay
        known when each was due), classified in one batch."""
        if not due:
            return
        overlays = [overlay for *_, overlay in due]
        ignore = None
        if any(overlay is not None for overlay in overlays):
            none = np.zeros((self.grid.rows, self.grid.cols), dtype=np.bool_)
            ignore = np.stack([none if overlay is None else overlay for overlay in overlays])
        verdicts = classify(TileStats.stacked([stats for stats, *_ in due]), ignore)
        for (_, extra_labels, lit, light, _), verdict in zip(due, verdicts, strict=True):
            labels = verdict.labels | extra_labels
            code = next((_CODES[label] for label in LABELS if label in labels), 0)
            self.codes.append(code)
            # Only frames from the scope (no label) show where its image is: a registration
            # screen, a black frame or a frame some detector flagged say nothing about it.
            if code == 0 and lit.mean() >= LIT_FRAME_SHARE:
                self._lit_count += lit
                self._light_sum += light
                self._lit_frames += 1

    def _lit_cells(self, sums: U8Array | U16Array, means: FloatGrid) -> BoolGrid:
        """The light cells of each frame of the batch: block means of the working luma
        (compared as the block sums `sums`, the working luma itself for blocks of 1) more than
        LIT_STEP above the frame's darkest tile mean (`means`: a tile's 256 pixels, so no
        outlier pixel, such as the encoder's ringing at a sharp edge, lowers it)."""
        b = self._block
        frames = means.shape[0]
        floors = [float(floor) for floor in means.reshape(frames, -1).min(axis=1)]
        if b == 1:
            limits = [int(floor) + LIT_STEP for floor in floors]
        else:
            limits = [int((floor + LIT_STEP) * b * b) for floor in floors]
        per_frame = sums.reshape(frames, -1, sums.shape[1])
        # Compared in the sums' own type (an int64 limit would widen every sum first): a limit
        # above the type's largest value lights nothing, as that largest value does.
        top = int(np.iinfo(sums.dtype).max)
        bounds = np.array([min(limit, top) for limit in limits], dtype=sums.dtype)
        return np.asarray(np.greater(per_frame, bounds[:, None, None]))

    def _learned(self, cells: U8Array, stats: TileStats) -> Callable[[int], None]:
        """Learning from the batch's frames: what each frame adds, measured for the batch at
        once (its change cells `cells`, every CELL-th pixel of the working luma, (frames, h,
        w)); returns the step that adds frame k's to what is learned, to be called for each
        frame in order.

        The cells stay uint8: a change |a - b| > CHANGE_STEP is max - min in uint8 (no
        wrap-around), a few byte passes instead of an int16 copy and int16 passes."""
        n, rows, cols, m = cells.shape[0], self.grid.rows, self.grid.cols, CELLS_PER_TILE
        changed = np.zeros(cells.shape, dtype=np.bool_)
        first = self._previous is None
        if self._previous is not None:
            np.greater(abs_diff(cells[0], self._previous), CHANGE_STEP, out=changed[0])
        np.greater(abs_diff(cells[1:], cells[:-1]), CHANGE_STEP, out=changed[1:])
        change = np.ascontiguousarray(changed[:, : rows * m, : cols * m])
        tile_change = (
            tile_sum(change.reshape(-1, cols * m), n * rows, cols, m, m) / (m * m)
        ).reshape(n, rows, cols)
        tissue = stats.tissue_tiles
        enough = max(LIVE_MIN_TILES, LIVE_MIN_SHARE * self.grid.tiles)
        shows_tissue = tissue.sum(axis=(1, 2)) >= enough
        moving = (tissue & (tile_change >= MOVING_TILE_SHARE)).sum(axis=(1, 2)) >= enough
        text = stats.text
        live = [k for k in range(n) if moving[k] and (k > 0 or not first)]
        # Per change cell, its darkest and brightest luma over the live frames and over those
        # showing tissue (only read at the end, so taken for the batch at once), frame by
        # frame in place: cells[live] would copy the batch's cells first.
        for k in live:
            np.minimum(self._cell_min, cells[k], out=self._cell_min)
            np.maximum(self._cell_max, cells[k], out=self._cell_max)
        for k in [k for k in range(n) if shows_tissue[k]]:
            np.minimum(self._tissue_min, cells[k], out=self._tissue_min)
            np.maximum(self._tissue_max, cells[k], out=self._tissue_max)
        self._previous = cells[-1].copy()

        def learn(k: int) -> None:
            previous_live, previous_tissue = self._previous_live, self._previous_tissue
            self._previous_live = self._previous_tissue = False
            if k == 0 and first:
                return
            if shows_tissue[k]:
                # A frame showing tissue, moving or not: what the overlay is learned from
                # when the image hardly moves (a still overlay is then a fallback, see
                # _known_overlay).
                self._previous_tissue = True
                self._still.frames += 1
                self._still.text_hits += text[k]
                if previous_tissue:
                    self._still.tile_change += tile_change[k]
                    self._still.pairs += 1
            if not moving[k]:
                return
            self._previous_live = True
            self._live += 1
            self._text_hits += text[k]
            if previous_live:
                self._tile_change += tile_change[k]
                self._pairs += 1
                self._overlay_dirty = True

        return learn

    def _static_text_tiles(self) -> BoolGrid:
        static = self._tile_change <= STATIC_SHARE * max(1, self._pairs)
        text = self._text_hits >= OVERLAY_TEXT_SHARE * self._live
        return np.asarray(static & text & (self._text_hits > 0))

    def _known_overlay(self) -> BoolGrid | None:
        """The tiles of the overlay learned so far (boxes around the static text-like tile
        groups, one tile wider, static tiles only), or None before there is enough to learn
        from. Before LEARN_MIN_PAIRS pairs of moving live frames, the overlay learned from
        frames showing tissue, moving or not (a nearly still image), if there were enough."""
        if self._pairs < LEARN_MIN_PAIRS:
            return self._still.overlay(self._overlay_tile_boxes)
        # Regrouping is cheap but not free: every LEARN_MIN_PAIRS new pairs.
        if self._overlay_dirty and self._pairs % LEARN_MIN_PAIRS == 0:
            static = self._tile_change <= STATIC_SHARE * self._pairs
            boxes = np.zeros_like(static)
            for r0, c0, r1, c1 in self._overlay_tile_boxes(self._static_text_tiles()):
                boxes[r0 : r1 + 1, c0 : c1 + 1] = True
            # One tile more around (glyphs at the border, a clock below), if static.
            overlay = _grow(boxes, 1) & static
            self._overlay = overlay if overlay.any() else None
            self._overlay_dirty = False
        return self._overlay

    @staticmethod
    def _overlay_tile_boxes(tiles: BoolGrid) -> list[tuple[int, int, int, int]]:
        """(row0, col0, row1, col1) inclusive tile boxes of the groups of `tiles` (tiles
        within one tile of each other belong together)."""
        return [_bounds(group) for group in _overlay_tile_groups(tiles)]

    def suggested_roi(self) -> SuggestedRoi | None:
        """The live image: the cells lit in at least LIT_SHARE of the endoscopic frames,
        opened (thin lit things such as text lines drop out), the largest connected region
        of them (see _image_cells); then once more with the dim rim within RIM_REACH of that
        region's box; filled, and the shape that fits it best; None when no frame was
        endoscopic or nothing was lit."""
        if self._lit_frames == 0:
            return None
        lit = self._lit_count >= LIT_SHARE * self._lit_frames
        # A lit area that never changed while the picture moved (a grey status bar or panel
        # with its text, a lit background drawn around the image) is not the image.
        shown = lit & ~self._static_areas(lit)
        found = self._image_cells(_open(shown, OPEN_CELLS))
        if found is None:
            return None
        undecided = self._undecided(lit, found[1])
        selected, (r0, r1, c0, c1) = found
        if self._fills_frame(lit, found[1]):  # its corners are picture too
            selected = np.ones_like(lit)
            r0, r1, c0, c1 = 0, lit.shape[0] - 1, 0, lit.shape[1] - 1
        else:
            # The dim rim completes the image's box (dark corners) and extends it a little (a
            # vignetted rim), no further: a dim static thing beside the image stays out.
            reach = max(1, max(r1 - r0, c1 - c0) // RIM_REACH)
            near_box = np.zeros_like(lit)
            rows = slice(max(0, r0 - reach), r1 + reach + 1)
            near_box[rows, max(0, c0 - reach) : c1 + reach + 1] = True
            in_box = np.zeros_like(lit)
            in_box[r0 : r1 + 1, c0 : c1 + 1] = True
            rim = self._dim_rim(lit) & near_box & ~lit
            if (self._strokes(lit.shape) & _grow(near_box, STROKE_GAP) & ~in_box).any():
                # Text right beside the box (light strokes that never changed, on a dim bar,
                # sampled every CELL pixels): the rim completes the box but does not extend
                # it towards them.
                rim &= in_box
            if rim.any():
                found = self._image_cells(_open(shown | rim, OPEN_CELLS)) or found
                selected, (r0, r1, c0, c1) = found
        region = _filled(selected[r0 : r1 + 1, c0 : c1 + 1])
        step = self.grid.stride * self._block
        x0, y0 = c0 * step, r0 * step
        # A region reaching the last observed cell reaches the frame's edge (the working
        # luma covers whole tiles only).
        right_edge = c1 == lit.shape[1] - 1
        bottom_edge = r1 == lit.shape[0] - 1
        x1 = self._width if right_edge else min(self._width, (c1 + 1) * step)
        y1 = self._height if bottom_edge else min(self._height, (r1 + 1) * step)
        shape, corner, best = _fitted_shape(region, step, x1 - x0, y1 - y0)
        residual = 1.0 - best
        area_share = float(region.sum()) / lit.size
        confidence = (
            min(1.0, self._lit_frames / MIN_LIT_FRAMES)
            * float(np.clip((MAX_FIT_RESIDUAL - residual) / (MAX_FIT_RESIDUAL - GOOD_FIT), 0, 1))
            * min(1.0, area_share / MIN_AREA_SHARE)
        )
        if undecided:
            confidence = min(confidence, UNDECIDED_CONFIDENCE)
        return SuggestedRoi(
            roi=Roi(x0, y0, x1 - x0, y1 - y0),
            shape=shape,
            corner=corner,
            confidence=confidence,
            fit_residual=residual,
            frames_used=self._lit_frames,
            frame_share=self._lit_frames / max(1, self._analysed),
            moving_frames=self._live,
        )

    def _image_cells(self, lit: BoolGrid) -> tuple[BoolGrid, tuple[int, int, int, int]] | None:
        """The image's cells among the `lit` light cells: the largest 8-connected group of
        tiles, and of its lit cells and those a tile around it the ones connected, cell by
        cell, to its core (the group less an eighth of its size at its edges), so that a lit
        box or logo whose tiles touch the image's, or the edge of one a tile away, is left
        out; with their bounding box (first and last row, first and last column) over the
        rows and columns with MIN_CELLS_PER_LINE of them. None when nothing is lit."""
        rows, cols = self.grid.rows, self.grid.cols
        n = TILE // self._block  # light cells per tile side
        tile_lit = lit.reshape(rows, n, cols, n).mean(axis=(1, 3)) >= 0.5
        groups = _components(tile_lit)
        if not groups:
            return None
        main = np.zeros((rows, cols), dtype=np.bool_)
        for r, c in max(groups, key=len):
            main[r, c] = True
        extent = min(int(np.count_nonzero(main.any(axis=axis))) for axis in (0, 1))
        depth = max(1, extent // CORE_DEPTH)
        core = ~_grow(~main, depth)
        if not core.any():
            core = main
        seed = lit & core.repeat(n, axis=0).repeat(n, axis=1)
        near = lit & _grow(main, 1).repeat(n, axis=0).repeat(n, axis=1)
        selected = _reconstructed(seed, near, (depth + 2) * n)
        row_hits = np.flatnonzero(selected.sum(axis=1) >= MIN_CELLS_PER_LINE)
        col_hits = np.flatnonzero(selected.sum(axis=0) >= MIN_CELLS_PER_LINE)
        if row_hits.size == 0 or col_hits.size == 0:
            return None
        box = (int(row_hits[0]), int(row_hits[-1]), int(col_hits[0]), int(col_hits[-1]))
        return selected, box

    def _static_areas(self, lit: BoolGrid) -> BoolGrid:
        """The lit light cells of areas that did not change while the picture moved: cells
        whose change cells stayed within STATIC_RANGE over the live frames (see
        _unchanged), opened by the same square as the lit cells (not the specks of a
        moving picture that happened to stay: saturated highlights, a flat spot) and closed
        by a larger one (the lines of text on a bar, around whose glyphs the encoder's
        ringing varies), in groups of at least STATIC_MIN_TILES tiles (not a line of
        burned-in text), with the cells that stayed within RINGING_RANGE connected to them
        within RINGING_PX, scaled from 360 lines to the frame's (the ringing of the moving
        picture next to them, reaching into the lines of text there, which are as large as
        the frame). None before LEARN_MIN_PAIRS live frames: until then too few frames tell
        a still picture from a static area."""
        if self._live < LEARN_MIN_PAIRS:
            return np.zeros_like(lit)
        areas = self._still_lit_groups(lit, self._unchanged(STATIC_RANGE, lit.shape))
        if not areas.any():
            return areas
        reach = -(-RINGING_PX * self._height // (360 * self.grid.stride * self._block))
        ringing = self._unchanged(RINGING_RANGE, lit.shape) & lit
        return _reconstructed(areas, areas | ringing, reach)

    def _still_lit_groups(self, lit: BoolGrid, still: BoolGrid) -> BoolGrid:
        """The `lit` light cells among the `still` ones, opened, closed and in groups of at
        least STATIC_MIN_TILES tiles (see _static_areas)."""
        areas = np.zeros_like(lit)
        least = STATIC_MIN_TILES * (TILE // self._block) ** 2
        for group in _components(_close(_open(still, OPEN_CELLS), STATIC_CLOSE) & lit):
            if len(group) >= least:
                rows, cols = zip(*group, strict=True)
                areas[rows, cols] = True
        return areas

    def _undecided(self, lit: BoolGrid, box: tuple[int, int, int, int]) -> bool:
        """Whether too few frames moved (fewer than LEARN_MIN_PAIRS) to leave the static areas
        out, and the image found (its cells' `box`) rests on lit areas that stayed within
        STATIC_RANGE over the frames showing tissue, moving or not: the image found without
        them would differ, and a static area (a lit bar or panel touching the image, its
        text) cannot be told from a picture that hardly moved. A short clip, or one that
        barely moves, with a lit bar beside the image would otherwise be kept bar, text and
        all; a long slow one (a dim inspection) moves over its tissue frames."""
        if self._live >= LEARN_MIN_PAIRS:
            return False
        spans = self._tissue_max - self._tissue_min  # (max >= min once a frame showed tissue)
        still = self._still_lit_groups(lit, self._unchanged(STATIC_RANGE, lit.shape, spans))
        if not still.any():
            return False
        without = self._image_cells(_open(lit & ~still, OPEN_CELLS))
        return without is None or without[1] != box

    def _unchanged(
        self, within: int, shape: tuple[int, int], spans: U8Array | None = None
    ) -> BoolGrid:
        """The light cells (a grid of `shape`) STATIC_CELL_SHARE of whose change cells stayed
        within `within` over the live frames (a glyph's edge does not make a whole light cell
        count as changing), or whose `spans` (max - min per change cell) are within it."""
        if spans is None:
            # (every change cell has seen the live frames: max >= min)
            spans = self._cell_max - self._cell_min
        return np.asarray(self._change_share(spans <= within, shape) >= STATIC_CELL_SHARE)

    def _change_share(self, cells: BoolGrid, shape: tuple[int, int]) -> FloatGrid:
        """Per light cell (a grid of `shape`), the share of its change cells that are `cells`."""
        rows, cols = shape
        if self._block >= CELL:  # each light cell holds (block / CELL)^2 change cells
            k = self._block // CELL
            return np.asarray(
                cells[: rows * k, : cols * k].reshape(rows, k, cols, k).mean(axis=(1, 3))
            )
        # each change cell holds CELL^2 light cells
        return np.asarray(
            cells.repeat(CELL, axis=0).repeat(CELL, axis=1)[:rows, :cols], dtype=np.float64
        )

    def _strokes(self, shape: tuple[int, int]) -> BoolGrid:
        """The light cells (a grid of `shape`) holding a change cell that stayed INK_BRIGHT or
        brighter over all the live frames: light text (a moving picture's highlights move).
        None before LEARN_MIN_PAIRS live frames."""
        if self._live < LEARN_MIN_PAIRS:
            return np.zeros(shape, dtype=np.bool_)
        return np.asarray(self._change_share(self._cell_min >= INK_BRIGHT, shape) > 0)

    def _fills_frame(self, lit: BoolGrid, box: tuple[int, int, int, int]) -> bool:
        """Whether the picture fills the frame (no border at all): the lit cells' box reaches
        the frame's four edges and the cells well away from them (BORDER_GAP cells: the
        vignetted corners) are no border, being PICTURE_STEP above black on average over the
        recording and changing while the picture moved (fewer than half of them static). A
        border is black or nearly (a processor's black a few levels up), and never changes
        unless it is noisy; a round image in a frame cropped to it has black corners."""
        r0, r1, c0, c1 = box
        rows, cols = lit.shape
        if (r0, c0, r1, c1) != (0, 0, rows - 1, cols - 1) or self._live < LEARN_MIN_PAIRS:
            return False
        far = ~_grow(lit, BORDER_GAP)
        if not far.any():
            return False
        b = self._block
        mean = self._light_sum / (self._lit_frames * b * b)
        static = self._unchanged(STATIC_RANGE, lit.shape)
        return bool(
            float(np.median(mean[far])) >= VIDEO_BLACK + PICTURE_STEP
            and float(static[far].mean()) < 0.5
        )

    def _dim_rim(self, lit: BoolGrid) -> BoolGrid:
        """The light cells whose mean light over the endoscopic frames is DIM_STEP above the
        border's (and above its spread): the vignetted rim and corners of the image, which are
        too dark to be LIT_STEP above the darkest tile in half of the frames (`lit`). The
        border's light is the median over the cells at least BORDER_GAP cells away from `lit`
        (no rim when they are fewer than BORDER_SHARE of the frame, the image filling it, or
        when nothing is lit: no image to have a rim); its spread is the median deviation from
        it. Averaged over the recording, a dark lumen
        passing by does not lower the border's level, and noise hardly moves it."""
        border = ~_grow(lit, BORDER_GAP)
        if not lit.any() or border.mean() < BORDER_SHARE:
            return np.zeros_like(lit)
        b = self._block
        mean = self._light_sum / (self._lit_frames * b * b)
        level = float(np.median(mean[border]))
        spread = float(np.median(np.abs(mean[border] - level)))
        return np.asarray(mean >= level + max(DIM_STEP, DIM_SPREADS * spread))

    def overlay_regions(self, roi: SuggestedRoi | None) -> tuple[Roi, ...]:
        """Bounding boxes of the static text-like tile groups outside the live image; a group
        whose box would cover the image (text above it and a bar beside it, grouped at its
        corner) is reported as its parts instead."""
        if self._pairs < 1:
            return ()
        tiles = self._static_text_tiles()
        if roi is None:
            return self._boxes(tiles)
        inside = _tiles_inside(roi, self.grid)
        return self._boxes(tiles & ~inside, avoid=inside)

    def inside_regions(self, roi: SuggestedRoi | None) -> tuple[Roi, ...]:
        """Bounding boxes of the static text-like tile groups inside the live image (a clock
        or zoom level printed over the picture), at least a tile from its edge (the image's
        rim is a static sharp edge) except where that edge is the frame's (no rim); once the
        picture moved in a frame. It needed LEARN_MIN_PAIRS pairs of consecutive moving
        frames before, which a slow inspection never gives (the picture moves in one frame of
        three or four): the text printed over it was kept. Over fewer moving frames more of
        a picture may look like text; it is blackened then, the safe side."""
        if self._live == 0 or roi is None:
            return ()
        size = self.grid.tile_px
        box = roi.roi
        if box.width <= 4 * size or box.height <= 4 * size:
            return ()
        # A tile in from each side that has a rim, not from the frame's edges (none there).
        left = size if box.x > 0 else 0
        top = size if box.y > 0 else 0
        right = size if box.x + box.width < self._width else 0
        bottom = size if box.y + box.height < self._height else 0
        inner = replace(
            roi,
            roi=Roi(
                box.x + left,
                box.y + top,
                box.width - left - right,
                box.height - top - bottom,
            ),
        )
        text = self._text_hits >= OVERLAY_TEXT_SHARE * self._live
        rows, cols, n = self.grid.rows, self.grid.cols, CELLS_PER_TILE
        low = self._cell_min[: rows * n, : cols * n]
        high = self._cell_max[: rows * n, : cols * n]
        ink = (low >= INK_BRIGHT) | (high <= INK_DARK)
        still_share = ink.reshape(rows, n, cols, n).mean(axis=(1, 3))
        inked = (still_share >= INSIDE_INK_SHARE) & _tiles_inside(inner, self.grid)
        tiles = text & (self._text_hits > 0) & inked
        # Joining needs a single stroke cell, bright ones up to the image's rim (a line over
        # an octagon's corner; the dark vignetted rim is no text).
        bright = (low >= INK_BRIGHT).reshape(rows, n, cols, n).any(axis=(1, 3))
        touched = ((still_share > 0) & _tiles_inside(inner, self.grid)) | (
            bright & _tiles_inside(roi, self.grid)
        )
        # These are blackened, glyphs and all: the inked tiles near the text (across a tile
        # of gap: a narrow glyph at a line's end may leave the tile next to it blank) join
        # it, and the boxes get a whole tile of margin (over a moving picture, the tiles at a
        # line's ends are less text-like than beside a black border).
        for _ in range(INK_JOIN_STEPS):
            tiles = tiles | (_grow(tiles, 2) & touched)
        return self._boxes(tiles, tiles_of_margin=1.0)

    def _boxes(
        self, tiles: BoolGrid, avoid: BoolGrid | None = None, *, tiles_of_margin: float = 0.5
    ) -> tuple[Roi, ...]:
        """The bounding boxes of the groups of `tiles`, with `tiles_of_margin` of margin (the
        glyphs at a group's border may not make a text-like tile); a group whose box is more
        than OVERLAY_BOX_INSIDE `avoid` tiles is split into its parts (its 8-connected tiles,
        not grouped across gaps)."""
        boxes: list[Roi] = []
        size = self.grid.tile_px
        margin = round(size * tiles_of_margin)
        groups: list[tuple[int, int, int, int]] = []
        for group in _overlay_tile_groups(tiles):
            r0, c0, r1, c1 = _bounds(group)
            if avoid is None or avoid[r0 : r1 + 1, c0 : c1 + 1].mean() <= OVERLAY_BOX_INSIDE:
                groups.append((r0, c0, r1, c1))
                continue
            part = np.zeros_like(tiles)  # the group's own tiles, not another group's in its box
            part[tuple(np.array(group).T)] = True
            groups += [_bounds(piece) for piece in _components(part)]
        for r0, c0, r1, c1 in groups:
            x0, y0 = max(0, c0 * size - margin), max(0, r0 * size - margin)
            x1 = min(self._width, (c1 + 1) * size + margin)
            y1 = min(self._height, (r1 + 1) * size + margin)
            boxes.append(Roi(x0, y0, x1 - x0, y1 - y0))
        return tuple(sorted(boxes, key=lambda b: (b.y, b.x)))


class _StillOverlay:
    """The overlay learned from the frames showing tissue, moving or not: static text-like
    tiles as _Learner learns them from moving frames, for recordings whose image hardly
    moves (then static tissue tiles that look like text join it: left out of the decisions,
    not reported)."""

    def __init__(self, rows: int, cols: int) -> None:
        self.frames = 0
        self.pairs = 0
        self.text_hits = np.zeros((rows, cols), dtype=np.int32)
        self.tile_change = np.zeros((rows, cols), dtype=np.float64)
        self._learned_at = 0
        self._overlay: BoolGrid | None = None

    def overlay(
        self, group: Callable[[BoolGrid], list[tuple[int, int, int, int]]]
    ) -> BoolGrid | None:
        if self.pairs < LEARN_MIN_PAIRS:
            return None
        if self.pairs - self._learned_at >= LEARN_MIN_PAIRS or self._learned_at == 0:
            static = self.tile_change <= STATIC_SHARE * self.pairs
            text = (self.text_hits >= OVERLAY_TEXT_SHARE * self.frames) & (self.text_hits > 0)
            boxes = np.zeros_like(static)
            for r0, c0, r1, c1 in group(np.asarray(static & text)):
                boxes[r0 : r1 + 1, c0 : c1 + 1] = True
            overlay = _grow(boxes, 1) & static
            self._overlay = overlay if overlay.any() else None
            self._learned_at = self.pairs
        return self._overlay


def _overlay_tile_groups(tiles: BoolGrid) -> list[list[tuple[int, int]]]:
    """The groups of `tiles` (tiles within one tile of each other belong together), each as
    its tiles' (row, col)."""
    groups = []
    for group in _components(_grow(tiles, 1)):
        members = [(r, c) for r, c in group if tiles[r, c]]
        if members:
            groups.append(members)
    return groups


def _bounds(cells: list[tuple[int, int]]) -> tuple[int, int, int, int]:
    """(row0, col0, row1, col1): the inclusive bounding box of `cells`, (row, col) pairs."""
    rows = [r for r, _ in cells]
    cols = [c for _, c in cells]
    return min(rows), min(cols), max(rows), max(cols)


def _tiles_inside(roi: SuggestedRoi, grid: Grid) -> BoolGrid:
    """Tiles whose centre lies in the ROI's kept area (its box, inscribed ellipse or octagon)."""
    size = grid.tile_px
    cx = centres(0, grid.cols) * size
    cy = centres(0, grid.rows) * size
    return in_shape(cx, cy, roi.roi, roi.shape, roi.corner)


def _fitted_shape(region: BoolGrid, step: int, width: int, height: int) -> tuple[Shape, int, float]:
    """The shape of the three that fits `region` (light cells of `step` pixels, filled, in its
    bounding box, which is `width` x `height` pixels) best: (shape, an octagon's corner in
    pixels, IoU of region and shape). The octagon's corner is measured from the cells missing
    in each corner of the box: a 45-degree cut of legs c cells misses about c (c - 1) / 2 of
    them, so c = 1/2 + sqrt(2 m + 1/4); the four are averaged. An octagon is chosen only when
    it fits better than both others and cuts at least 2 pixels."""
    h, w = region.shape
    box, xs, ys = Roi(0, 0, w, h), centres(0, w), centres(0, h)
    rect_iou = float(region.mean())  # the region lies in its box
    ellipse_iou = _iou(region, in_shape(xs, ys, box, "ellipse"))
    fits: list[tuple[float, Shape, int]] = [(rect_iou, "rect", 0), (ellipse_iou, "ellipse", 0)]
    half_h, half_w = h // 2, w // 2
    if half_h and half_w:
        missing = [
            int((~quadrant).sum())
            for quadrant in (
                region[:half_h, :half_w],
                region[:half_h, w - half_w :][:, ::-1],
                region[h - half_h :, :half_w][::-1],
                region[h - half_h :, w - half_w :][::-1, ::-1],
            )
        ]
        cells = float(np.mean([0.5 + np.sqrt(2 * m + 0.25) if m else 0.0 for m in missing]))
        most = min(width, height) // 2
        corner = min(most, round(cells * step))
        if corner >= 2:
            octagon_iou = _iou(region, in_shape(xs, ys, box, "octagon", cells))
            fits.append((octagon_iou, "octagon", corner))
    best, shape, corner = max(fits, key=lambda fit: fit[0])
    return shape, corner, best


def _light_block(work_width: int) -> int:
    """The light cell's side in working pixels: a power of two up to 8 (so that it divides a
    tile) leaving at least LIGHT_CELLS_ACROSS cells across."""
    block = 1
    while block < 8 and work_width // (2 * block) >= LIGHT_CELLS_ACROSS:
        block *= 2
    return block


def _open(mask: BoolGrid, k: int) -> BoolGrid:
    """Morphological opening by a (2k+1)^2 square: erase what is thinner than it."""
    return _grow(~_grow(~mask, k), k)


def _close(mask: BoolGrid, k: int) -> BoolGrid:
    """Morphological closing by a (2k+1)^2 square: fill the gaps narrower than it."""
    return ~_grow(~_grow(mask, k), k)


def _reconstructed(seed: BoolGrid, mask: BoolGrid, steps: int) -> BoolGrid:
    """The cells of `mask` connected (8-connected, within `steps` cells) to `seed`, a part of
    it: the seed grown a cell at a time inside the mask until it stops growing."""
    region = seed
    for _ in range(steps):
        grown = _grow(region, 1) & mask
        if np.array_equal(grown, region):
            break
        region = grown
    return region


def _filled(region: BoolGrid) -> BoolGrid:
    """The region with its holes and notches filled: cells between the first and last of the
    region along their row and along their column (a convex region's fill)."""

    def spans(mask: BoolGrid) -> BoolGrid:
        any_ = mask.any(axis=1, keepdims=True)
        first = np.argmax(mask, axis=1)[:, None]
        last = mask.shape[1] - 1 - np.argmax(mask[:, ::-1], axis=1)[:, None]
        index = np.arange(mask.shape[1])[None, :]
        return np.asarray(any_ & (index >= first) & (index <= last))

    return np.asarray(spans(region) & spans(region.T).T)


def _iou(a: BoolGrid, b: BoolGrid) -> float:
    union = int((a | b).sum())
    return int((a & b).sum()) / union if union else 0.0


def _grow(mask: BoolGrid, k: int) -> BoolGrid:
    """Dilate a small boolean grid by a (2k+1)^2 square."""
    h, w = mask.shape
    padded = np.pad(mask, k)
    out = np.zeros_like(mask)
    for dy in range(2 * k + 1):
        for dx in range(2 * k + 1):
            out |= padded[dy : dy + h, dx : dx + w]
    return out


def _components(mask: BoolGrid) -> list[list[tuple[int, int]]]:
    """8-connected components of a small boolean grid, as lists of (row, col), in the order of
    their first cell in row-major order (a breadth-first search's order when it scans the
    grid row by row; the cells within a group in row-major order)."""
    cells = int(np.count_nonzero(mask))
    if cells == 0:
        return []
    if cells <= _FEW_CELLS:
        return _components_searched(mask)
    # Every cell takes the smallest row-major index around it (its 3x3 neighbourhood) and
    # then the label of the cell that index names (pointer jumping), until nothing changes:
    # each component ends up labelled with the index of its first cell. A few dozen numpy
    # passes over the grid instead of a Python step per cell.
    h, w = mask.shape
    none = h * w
    index = np.arange(none, dtype=np.int64).reshape(h, w)
    labels = np.where(mask, index, none)
    padded = np.full((h + 2, w + 2), none, dtype=np.int64)
    while True:
        padded[1:-1, 1:-1] = labels
        smallest = labels.copy()
        for dy in range(3):
            for dx in range(3):
                np.minimum(smallest, padded[dy : dy + h, dx : dx + w], out=smallest)
        smallest = np.where(mask, smallest, none)
        flat = smallest.ravel()
        inside = flat < none
        while True:  # follow the labels to the label of the cell they name
            jumped = flat.copy()
            jumped[inside] = flat[flat[inside]]
            if np.array_equal(jumped, flat):
                break
            flat = jumped
        smallest = flat.reshape(h, w)
        if np.array_equal(smallest, labels):
            break
        labels = smallest
    found = np.flatnonzero(mask)
    owner = labels.ravel()[found]
    order = np.argsort(owner, kind="stable")  # by group, row-major within
    starts = np.unique(owner[order], return_index=True)[1]
    rows, cols = (found[order] // w).tolist(), (found[order] % w).tolist()
    bounds = [*starts.tolist(), len(order)]
    return [list(zip(rows[a:b], cols[a:b], strict=True)) for a, b in itertools.pairwise(bounds)]


#: Up to this many cells the breadth-first search is cheaper than the numpy passes.
_FEW_CELLS = 64


def _components_searched(mask: BoolGrid) -> list[list[tuple[int, int]]]:
    """_components by a breadth-first search from each unseen cell in row-major order."""
    h, w = mask.shape
    seen = np.zeros_like(mask)
    groups: list[list[tuple[int, int]]] = []
    for r0, c0 in zip(*np.nonzero(mask), strict=True):
        if seen[r0, c0]:
            continue
        seen[r0, c0] = True
        group: list[tuple[int, int]] = []
        queue = deque([(int(r0), int(c0))])
        while queue:
            r, c = queue.popleft()
            group.append((r, c))
            for nr in range(max(0, r - 1), min(h, r + 2)):
                for nc in range(max(0, c - 1), min(w, c + 2)):
                    if mask[nr, nc] and not seen[nr, nc]:
                        seen[nr, nc] = True
                        queue.append((nr, nc))
        groups.append(group)
    return groups


def _segments(codes: bytearray, every: int, total: int) -> tuple[Segment, ...]:
    """Per-frame labels from the analysed frames' codes (see the module docstring for the
    frames in between), as runs."""
    per_frame = bytearray(total)
    for i, code in enumerate(codes):
        start = i * every
        if start >= total:
            break
        following = codes[i + 1] if i + 1 < len(codes) else code
        gap = code if code == following else max(code, following, key=_CAUTION.__getitem__)
        per_frame[start] = code
        per_frame[start + 1 : min(start + every, total)] = bytes([gap]) * (
            min(start + every, total) - start - 1
        )
    segments: list[Segment] = []
    start = 0
    for index in range(1, total + 1):
        if index < total and per_frame[index] == per_frame[start]:
            continue
        if per_frame[start]:
            segments.append(Segment(_BY_CODE[per_frame[start]], start, index - 1))
        start = index
    return tuple(segments)
