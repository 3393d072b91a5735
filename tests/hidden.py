"""Sources whose H.264 stream hides a name in SEI messages, and every form the name can take
in an output file's bytes.

- user_data_source: an unregistered user data SEI (payloadType 5) with the name in every IDR
  access unit, written by ffmpeg's h264_metadata bitstream filter (as a recorder would).
- caption_source: a registered ITU-T T.35 SEI (payloadType 4, ATSC A/53 "GA94" cc_data) in
  every access unit, whose CEA-608 byte pairs (odd parity) spell the name; injected here by
  rewriting each packet's length-prefixed NAL units.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import av
from av.packet import Packet
from av.stream import Stream

NAME = "ERIKA MUSTERMANN"
"""The patient's name hidden in the sources."""

USER_DATA_UUID = "6f1c3a52-9d0e-4b7a-8c21-5e4d3f2a1b09"

_VCL = range(1, 6)  # coded slice NAL unit types


def _parity(byte: int) -> int:
    """`byte` (7 bits) with bit 7 set so the byte has odd parity, as CEA-608 sends it."""
    return byte | (0x80 if bin(byte).count("1") % 2 == 0 else 0)


def cea608_pairs(text: str) -> bytes:
    """`text` as CEA-608 field-1 byte pairs with parity (padded with a NUL to an even count)."""
    data = text.encode("ascii")
    if len(data) % 2:
        data += b"\x00"
    return bytes(_parity(b) for b in data)


def _cc_triplets(pairs: bytes) -> bytes:
    """cc_data constructs: marker bits, cc_valid 1, cc_type 0 (608 field 1), then the pair."""
    return b"".join(b"\xfc" + pairs[i : i + 2] for i in range(0, len(pairs), 2))


def name_forms(name: str = NAME) -> dict[str, re.Pattern[bytes]]:
    """Every byte form in which `name` (or either half of it) would show up in a file: plain,
    lower case, UTF-16, and the CEA-608 parity pairs, side by side or one byte apart (as the
    cc_data triplets of an A/53 SEI carry them, whatever their header bytes)."""
    text = name.encode("ascii")
    pairs = cea608_pairs(name)
    half = len(text) // 2
    halves = {"": text, " first half": text[:half], " second half": text[half:]}
    forms: dict[str, re.Pattern[bytes]] = {}
    for label, part in halves.items():
        forms["ascii" + label] = re.compile(re.escape(part))
        forms["ascii lower" + label] = re.compile(re.escape(part.lower()))
        forms["utf-16-le" + label] = re.compile(re.escape(part.decode().encode("utf-16-le")))
        forms["utf-16-be" + label] = re.compile(re.escape(part.decode().encode("utf-16-be")))
    for label, part in {
        "": pairs,
        " first half": pairs[: len(pairs) // 2 // 2 * 2],
        " second half": pairs[len(pairs) // 2 // 2 * 2 :],
    }.items():
        two = [re.escape(part[i : i + 2]) for i in range(0, len(part), 2)]
        forms["cea-608 pairs" + label] = re.compile(b"".join(two))
        forms["cea-608 cc_data" + label] = re.compile(b".".join(two), re.DOTALL)
    return forms


def found_forms(path: Path, name: str = NAME) -> list[str]:
    """The forms of `name` (name_forms) that occur in the bytes of the file at `path`."""
    data = path.read_bytes()
    return [label for label, form in name_forms(name).items() if form.search(data)]


def user_data_source(src: Path, dst: Path, name: str = NAME) -> Path:
    """`src` (H.264 MP4) copied with an unregistered user data SEI carrying `name` in its
    IDR access units (ffmpeg's h264_metadata filter); audio copied too."""
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-i",
            str(src),
            "-map",
            "0",
            "-c",
            "copy",
            "-bsf:v",
            f"h264_metadata=sei_user_data={USER_DATA_UUID}+{name}",
            str(dst),
        ],
        check=True,
    )
    return dst


def escape_rbsp(rbsp: bytes) -> bytes:
    """`rbsp` with emulation prevention bytes (00 00 0x -> 00 00 03 0x for x <= 3)."""
    out = bytearray()
    zeros = 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def caption_sei(name: str = NAME) -> bytes:
    """An SEI NAL unit (with header, escaped) holding one A/53 cc_data message that spells
    `name` in CEA-608 pairs."""
    triplets = _cc_triplets(cea608_pairs(name))
    count = len(triplets) // 3
    assert count < 32
    payload = (
        b"\xb5\x00\x31"  # itu_t_t35_country_code (USA), provider code (ATSC)
        + b"GA94"  # user_identifier
        + b"\x03"  # user_data_type_code: cc_data
        + bytes([0x40 | count, 0xFF])  # process_cc_data_flag, cc_count; em_data
        + triplets
        + b"\xff"  # marker_bits
    )
    assert len(payload) < 255
    rbsp = bytes([4, len(payload)]) + payload + b"\x80"  # payloadType 4, size, trailing bits
    return b"\x06" + escape_rbsp(rbsp)


def _with_unit_before_slices(data: bytes, unit: bytes, length_size: int) -> bytes:
    units: list[bytes] = []
    pos = 0
    while pos < len(data):
        size = int.from_bytes(data[pos : pos + length_size], "big")
        units.append(data[pos + length_size : pos + length_size + size])
        pos += length_size + size
    first_slice = next(i for i, u in enumerate(units) if u[0] & 0x1F in _VCL)
    units.insert(first_slice, unit)
    return b"".join(len(u).to_bytes(length_size, "big") + u for u in units)


def caption_source(src: Path, dst: Path, name: str = NAME) -> Path:
    """`src` (H.264 MP4) remuxed with closed captions spelling `name` (an A/53 registered user
    data SEI before the slices of every access unit); its first audio stream is copied."""
    return with_unit(src, dst, caption_sei(name))


#: An SEI NAL unit with one recovery point: recovery_frame_cnt 0, exact_match_flag 1.
RECOVERY_POINT_SEI = bytes([6, 6, 1, 0xC4, 0x80])


def with_unit(src: Path, dst: Path, sei: bytes, *, keyframes_only: bool = False) -> Path:
    """`src` (H.264 MP4) remuxed with the NAL unit `sei` before the slices of every access
    unit (or of every keyframe); its first audio stream is copied."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4") as out:
        vin = inp.streams.video[0]
        extradata = bytes(vin.codec_context.extradata or b"")
        length_size = (extradata[4] & 0x03) + 1
        vout = out.add_stream_from_template(vin)
        streams: list[Stream] = [vin]
        aout: Stream | None = None
        if inp.streams.audio:
            streams.append(inp.streams.audio[0])
            aout = out.add_stream_from_template(inp.streams.audio[0])
        for packet in inp.demux(streams):
            if packet.size == 0 or packet.dts is None:
                continue
            if packet.stream.index != vin.index:
                assert aout is not None
                packet.stream = aout
                out.mux(packet)
                continue
            data = bytes(packet)
            if packet.is_keyframe or not keyframes_only:
                data = _with_unit_before_slices(data, sei, length_size)
            new = Packet(data)
            new.pts, new.dts, new.duration = packet.pts, packet.dts, packet.duration
            new.time_base = packet.time_base
            new.is_keyframe = packet.is_keyframe
            new.stream = vout
            out.mux(new)
    return dst
