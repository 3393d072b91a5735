"""An external oracle for published outputs: decoded by the ffmpeg command line, judged against
ground truth derived from the request and the generated source, never from the service's report.

- Decoding: `ffmpeg -v error -xerror` to raw planes (no pixel-format conversion for 8-bit YUV),
  `ffprobe` for the frame times; any decoder message, a non-zero exit or a frame count that
  ffprobe and ffmpeg disagree on fails the check. PyAV (the service's libavcodec binding) is
  not used here.
- The kept region is re-derived from the request (a custom rect or ellipse; a device's box
  read from its JSON file under jobs/devices/ and scaled to the frame, rounded inwards). Every
  luma sample more than MARGIN_PX outside it must be black and every chroma sample there
  neutral; inside, the picture must be that of the source frame (decoded by ffmpeg too).
- Frame identity: for every output frame the source frame it must show is computed from the
  request (every frame for a mask; the kept frames for a removal; a scene's ground truth for
  automatic removal). Sources made with `numbered=True` carry their frame number in large
  binary blocks (testkit.media.CodeRow), read back from the decoded pixels; in any case the
  output frame must match its source frame better than the neighbouring source frames.
  Blackened frames must be black all over.
- Audio: numbered sources carry, during frame i, a tone of testkit.media.tone_hz(i); the output's
  audio (decoded with `ffmpeg -f s16le`) must carry, during each output frame, the tone of the
  source frame that output frame stands for, and last as long as the video. For other sources
  a mask (audio copied through) must decode to the source's very samples. A request without
  `"audio": "keep"` gets the service's default, drop: its output must have no audio stream.

Every call is recorded per test (see tests/conftest.py and tests/oracle_coverage.py).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from jobs.video import Roi
from testkit.media import CODE_BITS, CodeRow, tone_hz
from testkit.scenes import SceneTruth
from tests.checks import chroma_all, grow, ref_keep

U8 = npt.NDArray[np.uint8]
Bool2D = npt.NDArray[np.bool_]

DEVICES_DIR = Path(__file__).resolve().parents[1] / "jobs" / "devices"

# The oracle's own tolerances (CRF 18 outputs of small synthetic clips).
MARGIN_PX = 8  # codec ringing allowed this far outside the kept region
OUTSIDE_Y_MAX = 24  # luma further out: black
OUTSIDE_C_DEV = 10  # |U-128|, |V-128| of chroma samples whose luma is all further out
BLACK_FRAME_Y_MAX = 24  # blackened frames, everywhere
BLACK_FRAME_C_DEV = 8
INNER_PX = 4  # the picture is compared this far inside the kept region
INSIDE_PSNR = 35.0  # luma PSNR of the kept picture against its source frame, dB
MATCH_WINDOW = 3  # identity: the source frame must match best among this many each side
TONE_TOLERANCE_HZ = 50.0
AUDIO_SLACK_S = 2048 / 48_000  # audio vs video duration (AAC frame granularity)
TWIN_DB = 1.5  # source frames this close to the best match are its twins (indistinguishable)
PSNR_CAP = 60.0  # above this, two pictures are the same (a flat kept area: 76 dB vs inf)

#: Pixel formats decoded as they are (8 bits, planar): name -> (horizontal, vertical)
#: chroma subsampling. Anything else is converted by ffmpeg to yuv444p.
_NATIVE = {"yuv420p": (2, 2), "yuvj420p": (2, 2), "yuv422p": (2, 1), "yuv444p": (1, 1)}


class OracleError(AssertionError):
    """The output failed the external check (or could not be decoded cleanly)."""


# ------------------------------------------------------------------------------- decoding


def _run(args: list[str], what: str) -> bytes:
    done = subprocess.run(args, capture_output=True, check=False, timeout=300)
    if done.returncode != 0 or done.stderr.strip():
        message = done.stderr.decode(errors="replace").strip()[-2000:]
        raise OracleError(f"{what}: exit {done.returncode}: {message}")
    return done.stdout


@dataclass(frozen=True)
class Probe:
    width: int
    height: int
    pix_fmt: str
    rate: Fraction  # the video stream's r_frame_rate
    times: list[float]  # every video packet's presentation time, in order (seconds)
    audio_rate: int | None  # None: no audio stream
    audio_start: float


def probe(path: Path) -> Probe:
    """Stream facts and every video packet's time, by ffprobe (decoding must then yield
    exactly one frame per packet: decode_video checks it)."""
    raw = _run(
        [
            "ffprobe", "-v", "error", "-of", "json", "-show_entries",
            "stream=codec_type,width,height,pix_fmt,r_frame_rate,sample_rate,start_time",
            str(path),
        ],
        f"ffprobe {path.name}",
    )  # fmt: skip
    streams = json.loads(raw)["streams"]
    video = next(s for s in streams if s["codec_type"] == "video")
    audio = next((s for s in streams if s["codec_type"] == "audio"), None)
    packets = _run(
        [
            "ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
            "packet=pts_time", "-of", "csv=p=0", str(path),
        ],
        f"ffprobe packets {path.name}",
    )  # fmt: skip
    times = sorted(float(line.strip().rstrip(",")) for line in packets.decode().split())
    return Probe(
        width=int(video["width"]),
        height=int(video["height"]),
        pix_fmt=str(video["pix_fmt"]),
        rate=Fraction(video["r_frame_rate"]),
        times=times,
        audio_rate=int(audio["sample_rate"]) if audio else None,
        audio_start=float(audio.get("start_time", 0.0)) if audio else 0.0,
    )


@dataclass(frozen=True)
class Planes:
    y: U8
    u: U8
    v: U8


def decode_video(path: Path, info: Probe, pix_fmt: str | None = None) -> Iterator[Planes]:
    """Every frame of the first video stream, in presentation order, as 8-bit planes, decoded
    by the ffmpeg command line (`-xerror`: the first decoding error fails it)."""
    fmt = pix_fmt or (info.pix_fmt if info.pix_fmt in _NATIVE else "yuv444p")
    sx, sy = _NATIVE[fmt]
    w, h = info.width, info.height
    cw, ch = -(-w // sx), -(-h // sy)
    size = w * h + 2 * cw * ch
    args = [
        "ffmpeg", "-nostdin", "-v", "error", "-xerror", "-noautorotate", "-i", str(path),
        "-map", "0:v:0", "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", fmt, "-",
    ]  # fmt: skip
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None
    assert process.stderr is not None
    count = 0
    try:
        while True:
            data = process.stdout.read(size)
            if not data:
                break
            if len(data) != size:
                raise OracleError(f"{path.name}: a partial frame ({len(data)} of {size} bytes)")
            buf = np.frombuffer(data, np.uint8)
            yield Planes(
                y=buf[: w * h].reshape(h, w),
                u=buf[w * h : w * h + cw * ch].reshape(ch, cw),
                v=buf[w * h + cw * ch :].reshape(ch, cw),
            )
            count += 1
    finally:
        process.stdout.close()
        errors = process.stderr.read().decode(errors="replace").strip()
        process.stderr.close()
        status = process.wait()
    if status != 0 or errors:
        raise OracleError(f"ffmpeg decoding {path.name}: exit {status}: {errors[-2000:]}")
    if count != len(info.times):
        raise OracleError(f"{path.name}: {count} frames decoded from {len(info.times)} packets")


def decode_audio(path: Path, info: Probe) -> npt.NDArray[np.float64]:
    """The first audio stream, mixed to mono, as float samples in [-1, 1] (ffmpeg s16le)."""
    raw = _run(
        [
            "ffmpeg", "-nostdin", "-v", "error", "-xerror", "-i", str(path), "-map", "0:a:0",
            "-f", "s16le", "-ac", "1", "-",
        ],
        f"ffmpeg audio {path.name}",
    )  # fmt: skip
    return np.frombuffer(raw, np.int16).astype(np.float64) / 32768.0


# ------------------------------------------------------------------- truth from the request


def device_roi(name: str, width: int, height: int) -> Roi:
    """A device's box (its JSON file, read here directly) scaled to width x height and rounded
    inwards."""
    spec = json.loads((DEVICES_DIR / f"{name}.json").read_text())
    fx = Fraction(width, spec["frame_width"])
    fy = Fraction(height, spec["frame_height"])
    x0 = math.ceil(spec["endoscope_image_x"] * fx)
    y0 = math.ceil(spec["endoscope_image_y"] * fy)
    x1 = math.floor((spec["endoscope_image_x"] + spec["endoscope_image_width"]) * fx)
    y1 = math.floor((spec["endoscope_image_y"] + spec["endoscope_image_height"]) * fy)
    return Roi(x=x0, y=y0, width=x1 - x0, height=y1 - y0)


@dataclass(frozen=True)
class Region:
    roi: Roi
    shape: str  # "rect" | "ellipse" | "octagon"
    holes: tuple[Roi, ...] = ()  # blackened boxes inside it (blacken_regions)
    corner: int = 0  # an octagon's corners cut, in pixels


def region_of(body: Mapping[str, Any], width: int, height: int) -> Region | None:
    """The kept region a mask request asks for (None: the request masks nothing)."""
    shape = str(body.get("shape", "rect"))
    corner = int(body.get("corner", 0))
    holes = tuple(
        Roi(x=r["x"], y=r["y"], width=r["width"], height=r["height"])
        for r in body.get("blacken_regions", [])
    )
    if body.get("mask_type") == "device":
        return Region(device_roi(str(body["device_name"]), width, height), shape, holes, corner)
    if body.get("mask_type") == "custom":
        if "roi" in body:
            r = body["roi"]
            roi = Roi(x=r["x"], y=r["y"], width=r["width"], height=r["height"])
            return Region(roi, shape, holes, corner)
        keys = ("endoscope_image_x", "endoscope_image_y", "endoscope_image_width")
        x, y, w = (int(body[k]) for k in keys)
        roi = Roi(x=x, y=y, width=w, height=int(body["endoscope_image_height"]))
        return Region(roi, shape, holes, corner)
    return None


def parse_frames(spec: str | Sequence[int] | None) -> set[int]:
    """Frame numbers of a `frame_list` ([3, 4]) or a ranges string ("10-20,30")."""
    if spec is None:
        return set()
    if not isinstance(spec, str):
        return {int(i) for i in spec}
    out: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


@dataclass(frozen=True)
class Truth:
    """What an output must be, derived from the request and the source alone."""

    shows: tuple[int, ...]  # the source frame each output frame stands for
    black: frozenset[int] = frozenset()  # output frames that must be black all over
    region: Region | None = None  # kept region (None: the whole frame)
    same_times: bool = True  # output frame j at the time of source frame shows[j] (a mask)


def mask_truth(body: Mapping[str, Any], frames: int, width: int, height: int) -> Truth:
    """A mask keeps every frame at its time; `blacken_frames` are black."""
    return Truth(
        shows=tuple(range(frames)),
        black=frozenset(parse_frames(body.get("blacken_frames"))),
        region=region_of(body, width, height),
    )


def removal_truth(removed: Iterable[int], frames: int, region: Region | None = None) -> Truth:
    """A removal keeps the other frames, in order, closing up their times."""
    gone = set(removed)
    kept = tuple(i for i in range(frames) if i not in gone)
    return Truth(shows=kept, region=region, same_times=False)


def removal_request_truth(body: Mapping[str, Any], frames: int) -> Truth:
    return removal_truth(
        parse_frames(body.get("frame_list")) | parse_frames(body.get("frame_ranges")), frames
    )


# ------------------------------------------------------------------------------- judging


@dataclass
class Verdict:
    """What the oracle measured (for messages)."""

    frames: int = 0
    identity_by_code: int = 0  # frames whose burned-in number was read
    min_inside_psnr: float = math.inf
    max_outside_y: int = 0
    max_outside_c_dev: int = 0
    audio_frames_checked: int = 0
    notes: list[str] = field(default_factory=list)


def _psnr(a: U8, b: U8) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def _code_row(width: int, height: int, inner: Bool2D) -> CodeRow | None:
    """The numbered clips' code row, if it lies wholly in the compared area."""
    row = CodeRow.for_size(width, height)

    x1, y1 = row.x + CODE_BITS * row.block, row.y + row.block
    if row.x < 0 or x1 > width or y1 > height:
        return None
    return row if bool(inner[row.y : y1, row.x : x1].all()) else None


def judge(
    output: Path,
    source: Path,
    truth: Truth,
    *,
    numbered: bool = False,
    audio: bool | None = None,
) -> Verdict:
    """Decode `output` and `source` with ffmpeg and assert that `output` is `truth`.

    `numbered`: the source carries burned-in frame numbers and frame tones (testkit.media's
    numbered clips); then every kept frame's number must read back right and the audio must
    follow the frames. `audio`: whether the output must have audio (default: if the source
    has)."""
    _record(output)
    out_info, src_info = probe(output), probe(source)
    verdict = Verdict(frames=len(out_info.times))
    if (out_info.width, out_info.height) != (src_info.width, src_info.height):
        raise OracleError(f"size {out_info.width}x{out_info.height} != source's")
    if len(out_info.times) != len(truth.shows):
        raise OracleError(f"{len(out_info.times)} frames, expected {len(truth.shows)}")
    _check_times(out_info, src_info, truth)
    _check_pictures(output, source, out_info, src_info, truth, numbered, verdict)
    want_audio = src_info.audio_rate is not None if audio is None else audio
    if want_audio != (out_info.audio_rate is not None):
        raise OracleError(f"audio present: {out_info.audio_rate is not None}, want {want_audio}")
    if want_audio:
        _check_audio(output, source, out_info, src_info, truth, numbered, verdict)
    return verdict


def _check_times(out: Probe, src: Probe, truth: Truth) -> None:
    if truth.same_times:
        expected = [src.times[k] for k in truth.shows]
    else:  # closed up: each kept frame keeps its duration (constant-rate sources)
        step = 1 / float(src.rate)
        expected = [src.times[0] + j * step for j in range(len(truth.shows))]
    for j, (got, want) in enumerate(zip(out.times, expected, strict=True)):
        if abs(got - want) > 0.5e-3 + 1e-6:
            raise OracleError(f"output frame {j} at {got:.6f} s, expected {want:.6f} s")


def _check_pictures(
    output: Path,
    source: Path,
    out_info: Probe,
    src_info: Probe,
    truth: Truth,
    numbered: bool,
    verdict: Verdict,
) -> None:
    out_fmt = out_info.pix_fmt if out_info.pix_fmt in _NATIVE else "yuv444p"
    w, h = out_info.width, out_info.height
    sx, sy = _NATIVE[out_fmt]
    if truth.region is None:
        keep: Bool2D = np.ones((h, w), dtype=np.bool_)
    else:
        region = truth.region
        keep = ref_keep(w, h, region.roi, region.shape, region.corner)  # type: ignore[arg-type]
        for hole in truth.region.holes:  # black as the outside is
            keep[hole.y : hole.y + hole.height, hole.x : hole.x + hole.width] = False
    far = ~grow(keep, MARGIN_PX)
    inner = ~grow(~keep, INNER_PX) if truth.region is not None else keep
    c_far = _chroma_all(far, sx, sy)
    row = _code_row(w, h, inner) if numbered else None
    if numbered and row is None:
        verdict.notes.append("the code row is outside the kept area: identity by matching only")
    if not inner.any():
        raise OracleError("nothing of the kept region is far enough from its edge to compare")

    # The source is decoded alongside (as 8-bit luma of the same layout), keeping only the
    # frames near the one the current output frame must show.
    src_frames = enumerate(decode_video(source, src_info, out_fmt))
    window: deque[tuple[int, U8]] = deque()
    exhausted = False
    for j, out in enumerate(decode_video(output, out_info, out_fmt)):
        k = truth.shows[j]
        where = f"output frame {j} (source frame {k})"
        if j in truth.black:
            y_max = int(out.y.max())
            c_dev = _chroma_dev(out, np.ones(out.u.shape, dtype=np.bool_))
            if y_max > BLACK_FRAME_Y_MAX or c_dev > BLACK_FRAME_C_DEV:
                raise OracleError(f"{where}: not black (max luma {y_max}, chroma dev {c_dev})")
            continue
        if far.any():
            y_out = int(out.y[far].max())
            c_dev = _chroma_dev(out, c_far)
            verdict.max_outside_y = max(verdict.max_outside_y, y_out)
            verdict.max_outside_c_dev = max(verdict.max_outside_c_dev, c_dev)
            if y_out > OUTSIDE_Y_MAX or c_dev > OUTSIDE_C_DEV:
                raise OracleError(f"{where}: outside the region luma {y_out}, chroma dev {c_dev}")
        while not exhausted and (not window or window[-1][0] < k + MATCH_WINDOW):
            try:
                index, planes = next(src_frames)
            except StopIteration:
                exhausted = True
                break
            window.append((index, planes.y.copy()))
        while window and window[0][0] < k - MATCH_WINDOW:
            window.popleft()
        scores = {index: min(PSNR_CAP, _psnr(out.y[inner], y[inner])) for index, y in window}
        if k not in scores:
            raise OracleError(f"{where}: the source has no frame {k}")
        best = max(scores, key=lambda i: scores[i])
        if scores[best] > scores[k] + TWIN_DB:  # k must be the best match, or a twin of it
            raise OracleError(f"{where}: looks like source frame {best} ({scores})")
        if scores[k] < INSIDE_PSNR:
            raise OracleError(f"{where}: the kept picture differs (PSNR {scores[k]:.1f} dB)")
        verdict.min_inside_psnr = min(verdict.min_inside_psnr, scores[k])
        if row is not None:
            shown = row.read(out.y)
            if shown != k:
                raise OracleError(f"{where}: shows the number {shown}")
            verdict.identity_by_code += 1
    for _ in src_frames:  # decode to the end: the source itself must decode cleanly
        pass


def _chroma_all(luma: Bool2D, sx: int, sy: int) -> Bool2D:
    if sx == sy:
        return chroma_all(luma, sx)
    h, w = luma.shape
    ch, cw = -(-h // sy), -(-w // sx)
    padded = np.ones((ch * sy, cw * sx), dtype=np.bool_)
    padded[:h, :w] = luma
    return np.asarray(padded.reshape(ch, sy, cw, sx).all(axis=(1, 3)))


def _chroma_dev(planes: Planes, where: Bool2D) -> int:
    if not where.any():
        return 0
    u = np.abs(planes.u[where].astype(np.int16) - 128)
    v = np.abs(planes.v[where].astype(np.int16) - 128)
    return int(max(u.max(), v.max()))


def _dominant_hz(samples: npt.NDArray[np.float64], rate: int) -> float:
    n = max(rate, len(samples))
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples)), n=n))
    return float(np.argmax(spectrum)) * rate / n


def _check_audio(
    output: Path,
    source: Path,
    out_info: Probe,
    src_info: Probe,
    truth: Truth,
    numbered: bool,
    verdict: Verdict,
) -> None:
    rate = out_info.audio_rate
    assert rate is not None
    audio = decode_audio(output, out_info)
    fps = float(src_info.rate)
    video_seconds = len(truth.shows) / fps
    if abs(len(audio) / rate - video_seconds) > AUDIO_SLACK_S:
        raise OracleError(f"audio lasts {len(audio) / rate:.3f} s, the video {video_seconds:.3f} s")
    if not numbered:
        if truth.same_times:  # copied through: the very samples of the source
            original = decode_audio(source, src_info)
            if not np.array_equal(audio, original):
                raise OracleError("the audio is not the source's")
        return
    for j, k in enumerate(truth.shows):
        start = out_info.times[j] - out_info.audio_start
        lo, hi = round((start + 0.25 / fps) * rate), round((start + 0.75 / fps) * rate)
        if lo < 0 or hi > len(audio):
            continue
        hz = _dominant_hz(audio[lo:hi], rate)
        if abs(hz - tone_hz(k)) > TONE_TOLERANCE_HZ:
            raise OracleError(f"output frame {j}: audio {hz:.0f} Hz, source frame {k}'s tone")
        verdict.audio_frames_checked += 1
    if verdict.audio_frames_checked < len(truth.shows) - 2:
        raise OracleError(f"only {verdict.audio_frames_checked} frames had audio to check")


# --------------------------------------------------------------- shortcuts for the tests


def judge_mask(
    output: Path, source: Path, body: Mapping[str, Any], *, numbered: bool = False
) -> Verdict:
    """A mask output, against the request `body` and the source."""
    info = probe(source)
    truth = mask_truth(body, len(info.times), info.width, info.height)
    return judge(output, source, truth, numbered=numbered, audio=audio_wanted(body))


def judge_removal(
    output: Path, source: Path, body: Mapping[str, Any], *, numbered: bool = False
) -> Verdict:
    """A removal output, against the request's frame list or ranges and the source."""
    truth = removal_request_truth(body, len(probe(source).times))
    return judge(output, source, truth, numbered=numbered, audio=audio_wanted(body))


def audio_wanted(body: Mapping[str, Any]) -> bool | None:
    """judge's `audio` for a request `body` sent to a server with the default audio policy:
    the source's audio (None: if it has some) only when the body says keep, else none."""
    return None if body.get("audio") == "keep" else False


#: Frames to be kept that an analysis may lose at scene changes (sample_every up to 2).
SCENE_LOST_AT_MOST = 0.05


def judge_scene_removal(
    output: Path,
    truth: SceneTruth,
    removed: set[str],
    region: Region | None = None,
    inner_px: int = INNER_PX,
) -> list[int]:
    """Judge an output of a scene video (testkit.scenes) against the script's ground truth:
    its frames, matched to the source's (match_frames), include no frame of a `removed` kind,
    and at most SCENE_LOST_AT_MOST of the frames to keep are missing. Returns the source
    frames shown."""
    published: list[int] = []
    for j, twins in enumerate(match_frames(output, truth.path, region, inner_px)):
        labels = {truth.labels[i] for i in twins}
        if len(labels) != 1:
            raise OracleError(f"output frame {j} could be source frames {twins}: {labels}")
        if labels & removed:
            raise OracleError(f"output frame {j} is source frame {twins[0]}: {labels}")
        published.append(twins[0])
    to_keep = [i for i, label in enumerate(truth.labels) if label not in removed]
    lost = sorted(set(to_keep) - set(published))
    if len(lost) > SCENE_LOST_AT_MOST * truth.frames:
        raise OracleError(f"frames to keep that are missing: {lost}")
    print(f"oracle: published {len(published)} of {len(to_keep)} frames to keep; lost {lost}")
    return published


# ------------------------------------------------------------------------ coverage record

#: Set by tests/conftest.py: a file to which every judged output's test is appended.
RECORD_ENV = "VIDCORRECT_ORACLE_RECORD"


def _record(output: Path) -> None:
    target = os.environ.get(RECORD_ENV)
    test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]
    if target and test:
        with open(target, "a", encoding="utf-8") as f:
            f.write(json.dumps({"test": test, "judged": output.name}) + "\n")


# ----------------------------------------------------------------- scenes (no burned numbers)


def match_frames(
    output: Path, source: Path, region: Region | None = None, inner_px: int = INNER_PX
) -> list[tuple[int, ...]]:
    """For each output frame, the source frames it may show: the best match (luma PSNR inside
    the kept region, at least INSIDE_PSNR) among the source frames after the previous output
    frame's, and any other within TWIN_DB of it (frames that only differ by a little noise,
    such as a blank scene's); the earliest is taken as the one shown. For sources without
    burned-in numbers (the scene videos). The output is also checked to be black outside
    `region` (beyond MARGIN_PX); the picture is compared `inner_px` inside it."""
    _record(output)
    out_info, src_info = probe(output), probe(source)
    w, h = out_info.width, out_info.height
    if (w, h) != (src_info.width, src_info.height):
        raise OracleError(f"size {w}x{h} != source's")
    fmt = out_info.pix_fmt if out_info.pix_fmt in _NATIVE else "yuv444p"
    if region is None:
        keep: Bool2D = np.ones((h, w), dtype=np.bool_)
        inner = keep
    else:
        keep = ref_keep(w, h, region.roi, region.shape, region.corner)  # type: ignore[arg-type]
        inner = ~grow(~keep, inner_px)
    far = ~grow(keep, MARGIN_PX)
    sx, sy = _NATIVE[fmt]
    c_far = _chroma_all(far, sx, sy)
    sample = inner.copy()
    sample[1::2, :] = False
    sample[:, 1::2] = False
    src = np.stack([p.y[sample] for p in decode_video(source, src_info, fmt)]).astype(np.float32)
    shows: list[tuple[int, ...]] = []
    for j, out in enumerate(decode_video(output, out_info, fmt)):
        if far.any():
            y_out, c_dev = int(out.y[far].max()), _chroma_dev(out, c_far)
            if y_out > OUTSIDE_Y_MAX or c_dev > OUTSIDE_C_DEV:
                raise OracleError(f"output frame {j}: outside the region luma {y_out}, dev {c_dev}")
        after = shows[-1][0] + 1 if shows else 0
        if after >= len(src):
            raise OracleError(f"output frame {j}: no source frame left to show")
        mse = np.mean((src[after:] - out.y[sample].astype(np.float32)) ** 2, axis=1)
        best = float(mse.min())
        value = math.inf if best == 0 else 10 * math.log10(255**2 / best)
        if value < INSIDE_PSNR:
            raise OracleError(f"output frame {j}: matches no source frame ({value:.1f} dB)")
        twins = np.flatnonzero(mse <= best * 10 ** (TWIN_DB / 10))
        shows.append(tuple(after + int(i) for i in twins))
    return shows
