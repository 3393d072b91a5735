"""Cutting spans out of a video's audio: the first audio stream re-encoded to AAC without the
samples whose time falls in a removed span, its timestamps shifted like the video's.

The video editor (edit, smart_cut) tells the cutter where each removed span starts and ends
(source time: the pts of the run's first frame, and of the next kept frame) and how far its
video has got. Cut points are rounded to the nearest sample, so the cut is sample-accurate with
respect to the video timestamps (AAC's own transform smears the join over a few ms). The cutter
reads the audio through a second reader of the source and lags the video decoding (it only
handles samples before the latest decoded frame, whose fate is then known), which keeps memory
constant even for badly interleaved files. No crossfade is applied at the joins.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from fractions import Fraction
from typing import cast

import numpy as np
import numpy.typing as npt
from av.audio.frame import AudioFrame
from av.audio.stream import AudioStream
from av.container import InputContainer, OutputContainer
from av.stream import Discard

from jobs.video.codec import add_aac_output, decode_audio, demux, encode_frame, mux


class AudioCutter:
    """Re-encodes the first audio stream to AAC without the samples of the removed spans.

    Reads the audio through its own reader of the source (`inp`, video discarded at the
    demuxer) so that it can lag behind the video as far as needed without buffering.
    """

    def __init__(self, inp: InputContainer, stream_index: int, out: OutputContainer) -> None:
        for stream in inp.streams:
            if stream.index != stream_index:
                stream.discard = Discard.all
        ain = inp.streams[stream_index]
        assert isinstance(ain, AudioStream)
        self._inp = inp
        self._ain = ain
        self._out = out
        self._aout = add_aac_output(out, ain)
        self._rate = self._aout.codec_context.sample_rate
        self._out_time_base = Fraction(1, self._rate)
        self._frames = self._decoded()
        self._pending: AudioFrame | None = None
        self._next_start: int | None = None  # where a frame without pts starts
        # Decoders return whole codec frames: drop the padding after the stream's stated end.
        self._end: int | None = None
        if ain.duration is not None and ain.time_base is not None:
            self._end = round(((ain.start_time or 0) + ain.duration) * ain.time_base * self._rate)
        # Removed spans in samples: [start, end), end None while the run is still open.
        self._starts: list[int] = []
        self._ends: list[int | None] = []
        self._done = 0  # spans entirely before the current audio position...
        self._removed = 0  # ...and their total length in samples

    def start_cut(self, seconds: Fraction) -> None:
        """A removed span starts at `seconds` (source time)."""
        self._starts.append(round(seconds * self._rate))
        self._ends.append(None)

    def end_cut(self, seconds: Fraction) -> None:
        """The open removed span ends at `seconds` (source time)."""
        self._ends[-1] = max(self._starts[-1], round(seconds * self._rate))

    def advance(self, horizon: Fraction | None) -> None:
        """Encode the audio frames that end before `horizon` seconds (None: all the rest);
        the spans to remove before the horizon must be known."""
        limit = None if horizon is None else math.floor(horizon * self._rate)
        while True:
            frame = self._pending if self._pending is not None else next(self._frames, None)
            self._pending = None
            if frame is None:
                return
            start = self._start_of(frame)
            if limit is not None and start + frame.samples > limit:
                self._pending = frame
                return
            self._next_start = start + frame.samples
            self._cut(frame, start)

    def finish(self) -> None:
        """Encode the rest of the audio and flush the encoder."""
        self.advance(None)
        mux(self._out, encode_frame(self._aout, None))

    def _decoded(self) -> Iterator[AudioFrame]:
        for packet in demux(self._inp, (self._ain,)):
            yield from decode_audio(self._ain, packet)

    def _start_of(self, frame: AudioFrame) -> int:
        if frame.pts is not None and frame.time_base is not None:
            return round(frame.pts * frame.time_base * self._rate)
        if self._next_start is not None:
            return self._next_start
        return 0

    def _cut(self, frame: AudioFrame, start: int) -> None:
        end = start + frame.samples
        if self._end is not None:
            end = min(end, self._end)
        while self._done < len(self._starts):
            span_end = self._ends[self._done]
            if span_end is None or span_end > start:
                break
            self._removed += span_end - self._starts[self._done]
            self._done += 1
        removed = self._removed
        pos = start
        span = self._done
        while pos < end:
            if span == len(self._starts) or self._starts[span] >= end:
                self._emit(frame, start, pos, end, removed)
                return
            span_start, span_end = self._starts[span], self._ends[span]
            if span_start > pos:
                self._emit(frame, start, pos, span_start, removed)
            if span_end is None or span_end >= end:
                return
            removed += span_end - span_start
            pos = max(pos, span_end)
            span += 1

    def _emit(self, frame: AudioFrame, start: int, lo: int, hi: int, removed: int) -> None:
        """Encode samples [lo, hi) of `frame` (which starts at sample `start`)."""
        if hi <= lo:
            return
        if lo == start and hi == start + frame.samples:
            part = frame
        else:
            part = _slice_audio(frame, lo - start, hi - start)
        part.pts = lo - removed
        part.time_base = self._out_time_base
        mux(self._out, encode_frame(self._aout, part))


def _slice_audio(frame: AudioFrame, lo: int, hi: int) -> AudioFrame:
    """Samples [lo, hi) of `frame` as a new frame of the same format and layout."""
    data = frame.to_ndarray()
    if frame.format.is_planar:
        part = data[:, lo:hi]
    else:  # packed: one row of interleaved samples
        channels = len(frame.layout.channels)
        part = data[:, lo * channels : hi * channels]
    # PyAV's stub lists the dtypes it accepts; to_ndarray gave one of them.
    samples = cast("npt.NDArray[np.float32]", np.ascontiguousarray(part))
    sliced = AudioFrame.from_ndarray(samples, format=frame.format.name, layout=frame.layout)
    sliced.sample_rate = frame.sample_rate
    return sliced
