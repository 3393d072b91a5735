"""The same-build reference: the plain work of a benchmark case done with PyAV's own bundled
libavcodec and libx264 (the very libraries the service runs), with the service's encoder
settings and explicit thread counts. It does no analysis, no check, no progress and no job
bookkeeping, so "ours / same-build" is what the service adds, with no library difference in it.

    python bench/same_build.py transcode SRC DST --decode-threads 3 --encode-threads 3 \\
        [--roi X,Y,W,H --shape rect|ellipse] [--remove 10-20,40-49]
    python bench/same_build.py decode SRC --decode-threads 3
    python bench/same_build.py copy SRC DST --remove 10-20,40-49

``transcode`` decodes, blackens what lies outside the ROI (an independent minimal numpy
version of the mask, not the service's code), drops the removed frames (closing the gap in the
timestamps), and encodes with libx264 (the service's preset and CRF, frame threads).
``decode`` only decodes (the analysis case's reference). ``copy`` copies the packets of every
GOP that holds a kept frame and drops the others (closed GOPs; no re-encode, so not frame-exact:
a GOP with a removed frame and a kept one is kept whole).

Prints ``{"seconds": ...}``: the wall time from opening the input to closing the output, so
the interpreter's start and PyAV's import are not counted (that favours the reference).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.packet import Packet
from av.video.frame import PictureType
from av.video.reformatter import ColorRange
from av.video.stream import VideoStream

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jobs.settings import Settings

Ranges = tuple[tuple[int, int], ...]
BLACK = (16, 128, 128)  # limited-range YUV black


def parse_ranges(text: str) -> Ranges:
    """ "10-20,30" as ((10, 20), (30, 30))."""
    ranges = []
    for part in filter(None, text.split(",")):
        a, _, b = part.partition("-")
        ranges.append((int(a), int(b or a)))
    return tuple(ranges)


def removed_set(ranges: Ranges) -> set[int]:
    return {n for a, b in ranges for n in range(a, b + 1)}


def outside_masks(
    width: int, height: int, roi: tuple[int, int, int, int], shape: str
) -> list[np.ndarray]:
    """Per plane of yuv420p, the boolean picture of what lies outside the ROI (or ellipse)."""
    x, y, w, h = roi
    masks = []
    for sub in (1, 2, 2):
        pw, ph = -(-width // sub), -(-height // sub)
        ys, xs = np.mgrid[0:ph, 0:pw]
        cx, cy = (xs + 0.5) * sub, (ys + 0.5) * sub
        if shape == "ellipse":
            inside = ((cx - x - w / 2) / (w / 2)) ** 2 + ((cy - y - h / 2) / (h / 2)) ** 2 <= 1
        else:
            inside = (cx >= x) & (cx < x + w) & (cy >= y) & (cy < y + h)
        masks.append(~inside)
    return masks


def rect_slices(
    width: int, height: int, roi: tuple[int, int, int, int]
) -> list[list[tuple[slice, slice]]]:
    """Per plane, the (at most four) bands outside a rectangle: top, bottom, left, right."""
    x, y, w, h = roi
    planes = []
    for sub in (1, 2, 2):
        x0, y0 = x // sub, y // sub
        x1, y1 = -(-(x + w) // sub), -(-(y + h) // sub)
        planes.append(
            [
                (slice(0, y0), slice(None)),
                (slice(y1, None), slice(None)),
                (slice(y0, y1), slice(0, x0)),
                (slice(y0, y1), slice(x1, None)),
            ]
        )
    return planes


def plane_array(plane: av.video.plane.VideoPlane) -> np.ndarray:
    rows = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)
    return rows[:, : plane.width]


def transcode(
    src: Path,
    dst: Path,
    decode_threads: int,
    encode_threads: int,
    roi: tuple[int, int, int, int] | None,
    shape: str,
    remove: Ranges,
) -> None:
    settings = Settings()
    cut = removed_set(remove)
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4") as out:
        vin = inp.streams.video[0]
        vin.codec_context.thread_type = "AUTO"
        vin.codec_context.thread_count = decode_threads
        width, height = vin.codec_context.width, vin.codec_context.height
        rate = vin.average_rate or Fraction(25)
        vout = out.add_stream("libx264", rate=rate)
        ctx = vout.codec_context
        ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
        ctx.thread_type = "FRAME"
        ctx.thread_count = encode_threads
        ctx.options = {"preset": settings.x264_preset, "crf": str(settings.x264_crf)}
        time_base = vin.time_base or Fraction(1, 90_000)
        ctx.time_base = vout.time_base = time_base
        ctx.color_range = ColorRange.MPEG.value
        step = round(1 / (rate * time_base))
        masks = None
        bands = None
        if roi is not None and shape == "ellipse":
            masks = outside_masks(width, height, roi, shape)
        elif roi is not None:
            bands = rect_slices(width, height, roi)
        kept = 0
        first_pts: int | None = None
        for index, frame in enumerate(inp.decode(vin)):
            if first_pts is None:
                first_pts = frame.pts or 0
            if index not in cut:
                frame.make_writable()
                if masks is not None:
                    for plane, mask, value in zip(frame.planes, masks, BLACK, strict=True):
                        np.copyto(plane_array(plane), value, where=mask)
                elif bands is not None:
                    for plane, plane_bands, value in zip(frame.planes, bands, BLACK, strict=True):
                        view = plane_array(plane)
                        for rows, cols in plane_bands:
                            view[rows, cols] = value
                frame.pts = first_pts + kept * step
                frame.time_base = time_base
                frame.pict_type = PictureType.NONE
                out.mux(vout.encode(frame))
                kept += 1
        out.mux(vout.encode(None))


def decode(src: Path, decode_threads: int) -> None:
    with av.open(str(src)) as inp:
        vin = inp.streams.video[0]
        vin.codec_context.thread_type = "AUTO"
        vin.codec_context.thread_count = decode_threads
        for _ in inp.decode(vin):
            pass


def copy(src: Path, dst: Path, remove: Ranges) -> None:
    """Keep every GOP (keyframe to keyframe, decode order) holding a kept frame, packets as
    they are; timestamps shifted to close the dropped GOPs' gaps."""
    cut = removed_set(remove)
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream_from_template(vin)
        rate = vin.average_rate or Fraction(25)
        step = round(1 / (rate * (vin.time_base or Fraction(1, 90_000))))
        gop: list[Packet[VideoStream]] = []
        shift = 0
        next_dts: int | None = None  # the dts the next kept packet would have had
        start = vin.start_time or 0  # the first frame's pts

        def flush() -> None:
            nonlocal shift, next_dts
            frames = {round((p.pts - start) / step) for p in gop if p.pts is not None}
            if frames - cut:
                first_dts = gop[0].dts
                if next_dts is not None and first_dts is not None:
                    shift += max(0, first_dts - shift - next_dts)
                for packet in gop:
                    if packet.dts is not None:
                        packet.dts -= shift
                    if packet.pts is not None:
                        packet.pts -= shift
                    packet.stream = vout
                    out.mux(packet)
                last = gop[-1]
                if last.dts is not None:
                    next_dts = last.dts + (last.duration or step)
            gop.clear()

        for packet in inp.demux(vin):
            if packet.dts is None and packet.pts is None:
                continue  # the demuxer's flush packet
            if packet.is_keyframe and gop:
                flush()
            gop.append(packet)
        if gop:
            flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("op", choices=("transcode", "decode", "copy"))
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path, nargs="?")
    parser.add_argument("--decode-threads", type=int, default=0)
    parser.add_argument("--encode-threads", type=int, default=0)
    parser.add_argument("--roi", help="X,Y,W,H")
    parser.add_argument("--shape", choices=("rect", "ellipse"), default="rect")
    parser.add_argument("--remove", default="", help="frame ranges, e.g. 10-20,40-49")
    args = parser.parse_args()
    roi = tuple(int(v) for v in args.roi.split(",")) if args.roi else None
    started = time.perf_counter()
    if args.op == "decode":
        decode(args.src, args.decode_threads)
    elif args.dst is None:
        parser.error(f"{args.op} needs DST")
    elif args.op == "copy":
        copy(args.src, args.dst, parse_ranges(args.remove))
    else:
        transcode(
            args.src,
            args.dst,
            args.decode_threads,
            args.encode_threads,
            roi,  # type: ignore[arg-type]
            args.shape,
            parse_ranges(args.remove),
        )
    print(json.dumps({"seconds": time.perf_counter() - started}))


if __name__ == "__main__":
    main()
