"""H.264 NAL units of a stream, whatever its framing, to compare what an encoder produced with
what a muxer wrote.

libx264 emits Annex B (start codes) and its parameter sets as Annex B extradata; the MP4
muxer rewrites every packet with length prefixes and the parameter sets as an avcC record.
The NAL units themselves are carried over byte for byte, so a digest over them identifies the
stream in either framing.
"""

from __future__ import annotations

import hashlib

__all__ = ["UnitDigest", "annexb_units", "avcc_config", "length_prefixed_units"]

_START = b"\x00\x00\x01"


def annexb_units(data: bytes) -> list[bytes]:
    """The NAL units of Annex B `data` (start codes 00 00 01 or 00 00 00 01)."""
    units: list[bytes] = []
    start = data.find(_START)
    while start >= 0:
        begin = start + 3
        start = data.find(_START, begin)
        # A NAL unit never ends in a zero byte (its last byte holds the stop bit or the 03
        # of a cabac_zero_word), so zeros before the next start code belong to that code.
        unit = data[begin:] if start < 0 else data[begin:start].rstrip(b"\x00")
        if unit:
            units.append(unit)
    return units


def length_prefixed_units(data: bytes, length_size: int) -> list[bytes]:
    """The NAL units of `data` in MP4 framing (each prefixed by its big-endian length).

    Raises ValueError when the lengths do not add up to the packet.
    """
    units: list[bytes] = []
    pos = 0
    while pos < len(data):
        if pos + length_size > len(data):
            raise ValueError("A NAL unit length is cut off.")
        size = int.from_bytes(data[pos : pos + length_size], "big")
        pos += length_size
        if size == 0 or pos + size > len(data):
            raise ValueError("A NAL unit length does not fit the packet.")
        units.append(data[pos : pos + size])
        pos += size
    return units


def avcc_config(extradata: bytes) -> tuple[int, list[bytes]]:
    """The NAL length size and the parameter sets (SPS, then PPS) of an avcC record.

    Raises ValueError when `extradata` is not an avcC record.
    """
    if len(extradata) < 7 or extradata[0] != 1:
        raise ValueError("The extradata is not an avcC record.")
    length_size = (extradata[4] & 0x03) + 1
    units: list[bytes] = []
    pos = 5
    for count_mask in (0x1F, 0xFF):  # number of SPS (5 bits), then of PPS (8 bits)
        if pos >= len(extradata):
            raise ValueError("The avcC record is cut off.")
        count = extradata[pos] & count_mask
        pos += 1
        for _ in range(count):
            size = int.from_bytes(extradata[pos : pos + 2], "big")
            pos += 2
            if size == 0 or pos + size > len(extradata):
                raise ValueError("The avcC record is cut off.")
            units.append(extradata[pos : pos + size])
            pos += size
    return length_size, units


class UnitDigest:
    """A running digest of a sequence of NAL units (each hashed with its length)."""

    def __init__(self) -> None:
        self._hash = hashlib.blake2b(digest_size=16)
        self.units = 0

    def update(self, units: list[bytes]) -> None:
        """Add the next units, in stream order."""
        for unit in units:
            self._hash.update(len(unit).to_bytes(4, "big"))
            self._hash.update(unit)
        self.units += len(units)

    def hexdigest(self) -> str:
        """The digest of all units so far."""
        return self._hash.hexdigest()
