"""Still frames: one decoded frame of a video as a JPEG, for previews and drawing an ROI."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av

from jobs.video.codec import decode_video, demux
from jobs.video.errors import InvalidVideo
from jobs.video.probe import open_input, select_video_stream

#: JPEG quality scale of libavcodec's mjpeg encoder (2 is best, 31 worst).
JPEG_QSCALE = 3


def still_frame(path: Path, index: int, *, fps: float) -> bytes:
    """Frame ``index`` (0-based, presentation order) of the video at ``path`` as a JPEG of its
    full size. Seeks to the keyframe before the frame's time, then decodes up to it; for a
    variable frame rate the frame is the one shown at ``index / fps`` seconds. Raises
    :class:`InvalidVideo` when no frame can be decoded there."""
    with open_input(path) as container:
        stream = select_video_stream(container)
        stream.codec_context.thread_type = "AUTO"
        target = index / fps if fps > 0 else 0.0
        start = (
            float(stream.start_time * stream.time_base)
            if (stream.start_time is not None and stream.time_base is not None)
            else 0.0
        )
        if stream.time_base is not None and target > 0:
            container.seek(int((start + target) / stream.time_base), stream=stream, backward=True)
        half = 0.5 / fps if fps > 0 else 0.0
        chosen = None
        for packet in demux(container, (stream,)):
            for frame in decode_video(stream, packet):
                chosen = frame
                if frame.time is not None and frame.time - start >= target - half:
                    return _jpeg(chosen)
        if chosen is None:
            raise InvalidVideo("No frame could be decoded at that position.")
        return _jpeg(chosen)  # past the end: the last frame


def _jpeg(frame: av.VideoFrame) -> bytes:
    encoder = av.CodecContext.create("mjpeg", "w")
    assert isinstance(encoder, av.video.codeccontext.VideoCodecContext)
    encoder.width, encoder.height = frame.width, frame.height
    encoder.pix_fmt = "yuvj420p"
    encoder.time_base = Fraction(1, 25)
    encoder.options = {"qscale": str(JPEG_QSCALE)}
    encoder.qmin = encoder.qmax = JPEG_QSCALE
    picture = frame.reformat(format="yuvj420p")
    picture.pts = 0
    packets = encoder.encode(picture) + encoder.encode(None)
    return b"".join(bytes(packet) for packet in packets)
