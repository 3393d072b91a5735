"""NAL unit spans and the unit digest: the same digest whether the units are copied out or
hashed where they lie, in Annex B or in MP4 framing (what LiveVerifier compares)."""

from __future__ import annotations

import pytest

from jobs.video.nal import (
    UnitDigest,
    annexb_spans,
    annexb_units,
    length_prefixed_spans,
    length_prefixed_units,
)

UNITS = [b"\x67\x64\x00\x28\xac", b"\x68\xee\x3c\x80", b"\x65\x88\x84\x00\x03\x01", b"\x41\x9a"]


def annexb(units: list[bytes]) -> bytes:
    # 4-byte start code first, then 3-byte ones, and a trailing zero before one of them
    # (zeros before a start code belong to it).
    out = b"\x00\x00\x00\x01" + units[0]
    for unit in units[1:]:
        out += b"\x00\x00\x01" + unit if unit[0] != 0x65 else b"\x00\x00\x00\x00\x01" + unit
    return out


def length_prefixed(units: list[bytes], size: int) -> bytes:
    return b"".join(len(u).to_bytes(size, "big") + u for u in units)


def test_annexb_spans_locate_the_units() -> None:
    data = annexb(UNITS)
    assert [data[a:b] for a, b in annexb_spans(data)] == UNITS
    assert annexb_units(data) == UNITS


@pytest.mark.parametrize("size", [1, 2, 4])
def test_length_prefixed_spans_locate_the_units(size: int) -> None:
    data = length_prefixed(UNITS, size)
    assert [data[a:b] for a, b in length_prefixed_spans(data, size)] == UNITS
    assert [data[a:b] for a, b in length_prefixed_spans(memoryview(data), size)] == UNITS
    assert length_prefixed_units(data, size) == UNITS


@pytest.mark.parametrize(
    "data", [b"\x00\x00\x00\x05\x65\x88", b"\x00\x00\x00", b"\x00\x00\x00\x00\x65"]
)
def test_length_prefixed_spans_refuse_lengths_that_do_not_fit(data: bytes) -> None:
    with pytest.raises(ValueError, match="NAL unit length"):
        length_prefixed_spans(data, 4)


def test_the_digest_is_the_same_over_spans_and_units_in_either_framing() -> None:
    by_units = UnitDigest()
    by_units.update(UNITS[:2])
    by_units.update(UNITS[2:])
    first, second = annexb(UNITS[:2]), length_prefixed(UNITS[2:], 4)
    by_spans = UnitDigest()
    by_spans.update_spans(first, annexb_spans(first))
    by_spans.update_spans(memoryview(second), length_prefixed_spans(second, 4))
    assert by_spans.hexdigest() == by_units.hexdigest()
    assert by_spans.units == by_units.units == len(UNITS)
    other = UnitDigest()
    other.update([*UNITS[:3], UNITS[3] + b"\x00"])  # one byte more in the last unit
    assert other.hexdigest() != by_units.hexdigest()
