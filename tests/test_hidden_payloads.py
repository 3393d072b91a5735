"""A name hidden in the source's H.264 stream (unregistered user data SEI, closed captions in
A/53 registered user data SEI) reaches no output of any operation, byte for byte (issue 15).

Sources: tests.hidden. Every operation that writes a video is fed both kinds: mask, mask with
blackened frames, removal (smart and re-encode), reprocess (analysis and edit in one pass); the
output file's bytes must hold the name in none of the forms of tests.hidden.name_forms. Smart
removal must still copy groups of pictures and decode cleanly.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import av
import pytest
from arq.worker import Worker

from jobs.settings import Settings
from jobs.video.checked import analyze_and_write_checked, remove_checked, write_checked
from jobs.video.edit import EditPlan
from jobs.video.nal import (
    avcc_config,
    canonical_avcc,
    escape_rbsp,
    length_prefixed_units,
    scrub_access_unit,
    scrub_sei,
    sei_messages,
    unescape_rbsp,
)
from jobs.video.planes import Roi
from jobs.video.smart_cut import smart_remove
from jobs.video.verify import Verification
from testkit.media import make_numbered_video
from tests.api import Client, follow_task, upload
from tests.hidden import (
    NAME,
    RECOVERY_POINT_SEI,
    caption_sei,
    caption_source,
    cea608_pairs,
    found_forms,
    user_data_source,
    with_unit,
)

GOPS = "keyint=12:min-keyint=12:scenecut=0:bframes=3:b-pyramid=normal"
FRAMES = 72  # six closed GOPs of 12
ROI = Roi(16, 16, 240, 200)
#: x264's own unregistered user data SEI (its version and options), written by every libx264
#: encode; it is the only user data an output may hold.
X264_UUID = bytes.fromhex("dc45e9bde6d948b7962cd820d923eeef")


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hidden")
    base = make_numbered_video(
        folder / "base.mp4", width=320, height=240, frames=FRAMES, x264_params=GOPS
    )
    made = {
        "user data": user_data_source(base, folder / "user_data.mp4"),
        "captions": caption_source(base, folder / "captions.mp4"),
    }
    # The sources do carry the name, in the form each hides it.
    assert "ascii" in found_forms(made["user data"])
    assert "cea-608 cc_data" in found_forms(made["captions"])
    assert found_forms(base) == []
    return made


def ffmpeg_errors(path: Path) -> str:
    """What `ffmpeg -v error -xerror` says decoding `path` (empty when clean)."""
    run = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-xerror", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=False,
    )
    return (run.stdout + run.stderr).strip() + (
        "" if run.returncode == 0 else f" rc={run.returncode}"
    )


def sei_payload_types(path: Path) -> list[tuple[int, bytes]]:
    """(payloadType, first 16 payload bytes) of every SEI message in the video packets."""
    found: list[tuple[int, bytes]] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        length_size, _ = avcc_config(bytes(stream.codec_context.extradata or b""))
        for packet in container.demux(stream):
            if not packet.size:
                continue
            for unit in length_prefixed_units(bytes(packet), length_size):
                if unit[0] & 0x1F == 6:
                    for kind, payload in sei_messages(unescape_rbsp(unit[1:])):
                        found.append((kind, payload[:16]))
    return found


def _mask(src: Path, dst: Path) -> Verification:
    return write_checked(src, dst, EditPlan(roi=ROI))[1]


def _mask_blacken(src: Path, dst: Path) -> Verification:
    return write_checked(src, dst, EditPlan(roi=ROI, blacken=((10, 19), (50, 50))))[1]


def _remove_reencode(src: Path, dst: Path) -> Verification:
    _, verification, mode = remove_checked(src, dst, ((30, 34),), mode="reencode")
    assert mode.used == "reencode"
    return verification


def _reprocess(src: Path, dst: Path) -> Verification:
    return analyze_and_write_checked(
        src, dst, roi=ROI, shape="ellipse", remove=("blank", "text_screen")
    )[2]


OPERATIONS: dict[str, Callable[[Path, Path], Verification]] = {
    "mask": _mask,
    "mask+blacken": _mask_blacken,
    "remove reencode": _remove_reencode,
    "reprocess": _reprocess,
}


@pytest.mark.parametrize("kind", ["user data", "captions"])
@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_reencoded_outputs_hold_no_hidden_name(
    sources: dict[str, Path], tmp_path: Path, kind: str, operation: str
) -> None:
    dst = tmp_path / "out.mp4"
    verification = OPERATIONS[operation](sources[kind], dst)
    assert verification.passed, verification.problems
    assert found_forms(dst) == []
    # No captions, and no user data but x264's own notice.
    types = sei_payload_types(dst)
    assert all(kind != 4 for kind, _ in types), types
    assert all(payload == X264_UUID for kind, payload in types if kind == 5), types


@pytest.mark.parametrize("kind", ["user data", "captions"])
@pytest.mark.parametrize(
    "remove",
    [((30, 34),), ((0, 2),), ((10, 14), (40, 40), (66, 71))],
    ids=["middle", "start", "three cuts"],
)
def test_smart_removal_copies_without_hidden_name(
    sources: dict[str, Path], tmp_path: Path, kind: str, remove: tuple[tuple[int, int], ...]
) -> None:
    src = sources[kind]
    dst = tmp_path / "smart.mp4"
    _, verification, mode = remove_checked(src, dst, remove, mode="smart")
    assert verification.passed, verification.problems
    assert mode.used == "smart", mode.reason
    assert mode.frames_copied > 0
    assert mode.frames_reencoded > 0
    assert found_forms(dst) == []
    assert ffmpeg_errors(dst) == ""
    types = sei_payload_types(dst)
    assert all(kind != 4 for kind, _ in types), types
    assert all(payload == X264_UUID for kind, payload in types if kind == 5), types


def test_copied_access_units_keep_their_slices_byte_for_byte(
    sources: dict[str, Path], tmp_path: Path
) -> None:
    """Scrubbing drops the SEI, not a single byte of a coded slice or parameter set."""
    src = sources["captions"]
    dst = tmp_path / "smart.mp4"
    _, verification, mode = remove_checked(src, dst, ((66, 71),), mode="smart")
    assert verification.passed, verification.problems
    assert mode.frames_copied == 60  # the first five GOPs; the last one is re-encoded

    def access_units(path: Path) -> list[list[bytes]]:
        """The units other than SEI of every video packet, in decode order."""
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            return [
                [u for u in length_prefixed_units(bytes(packet), 4) if u[0] & 0x1F != 6]
                for packet in container.demux(stream)
                if packet.size
            ]

    copied = access_units(dst)[:60]
    assert copied == access_units(src)[:60]
    assert all(any(u[0] & 0x1F in (1, 5) for u in units) for units in copied)  # slices compared


def test_smart_removal_keeps_the_recovery_points(sources: dict[str, Path], tmp_path: Path) -> None:
    """A recovery point SEI of a copied access unit is kept (written anew), the user data next
    to it is not."""
    src = with_unit(
        sources["user data"], tmp_path / "recovery.mp4", RECOVERY_POINT_SEI, keyframes_only=True
    )
    assert [kind for kind, _ in sei_payload_types(src)].count(6) == FRAMES // 12
    dst = tmp_path / "smart.mp4"
    outcome = smart_remove(src, dst, ((30, 34),))
    assert outcome.verification.passed, outcome.verification.problems
    assert outcome.frames_copied == 60
    assert found_forms(dst) == []
    assert ffmpeg_errors(dst) == ""
    types = sei_payload_types(dst)
    assert [payload for kind, payload in types if kind == 6] == [RECOVERY_POINT_SEI[3:4]] * 5
    assert {kind for kind, _ in types} <= {5, 6}
    assert all(payload == X264_UUID for kind, payload in types if kind == 5), types


# -- the NAL layer


def test_emulation_prevention_round_trip() -> None:
    rbsp = bytes([0, 0, 0, 0, 0, 1, 0, 0, 2, 0, 0, 3, 0, 0, 4, 0xFF, 0, 0])
    escaped = escape_rbsp(rbsp)
    assert b"\x00\x00\x00" not in escaped
    assert b"\x00\x00\x01" not in escaped
    assert unescape_rbsp(escaped) == rbsp


def test_scrub_sei_keeps_only_recovery_points() -> None:
    recovery = bytes([6, 1, 0xC4])  # recovery_frame_cnt 0, exact_match 1, broken_link 0
    user = bytes([5, 16 + len(NAME)]) + X264_UUID + NAME.encode()
    # the user data payload written with 0xFF size bytes (300 bytes) to exercise them
    long_user = bytes([5, 0xFF, 300 - 255]) + X264_UUID + NAME.encode() * 17 + b"x" * 12
    unit = b"\x06" + escape_rbsp(user + recovery + long_user + b"\x80")
    assert scrub_sei(unit) == b"\x06" + recovery + b"\x80"
    assert scrub_sei(caption_sei()) is None  # only captions: nothing left
    assert scrub_sei(b"\x06" + escape_rbsp(user + b"\x80")) is None
    # Unparseable (a size past the end, a recovery point with extra bytes): dropped whole.
    assert scrub_sei(b"\x06" + bytes([6, 9, 0xC4, 0x80])) is None
    assert scrub_sei(b"\x06" + bytes([6, 2, 0xC4, 0x41, 0x80])) is None
    assert scrub_sei(b"\x06\x80") is None


def test_scrub_access_unit_drops_ignored_unit_types() -> None:
    slice_unit = b"\x65\x88\x84\x00\x33"
    units = [
        b"\x09\xf0" + NAME.encode(),  # access unit delimiter: primary_pic_type kept
        caption_sei(),  # dropped
        b"\x0c\xff\xff",  # filler data: dropped
        b"\x18" + NAME.encode(),  # unspecified type 24: dropped
        b"\x0e" + NAME.encode(),  # prefix NAL (SVC): dropped
        b"\x00" + NAME.encode(),  # unspecified type 0: dropped
        slice_unit,
        b"\x0a" + NAME.encode(),  # end of sequence: its header byte alone
    ]
    data = b"".join(len(u).to_bytes(4, "big") + u for u in units)
    scrubbed = scrub_access_unit(data, 4)
    assert length_prefixed_units(scrubbed, 4) == [b"\x09\xf0", slice_unit, b"\x0a"]
    with pytest.raises(ValueError, match="no coded slice"):
        scrub_access_unit(len(units[1]).to_bytes(4, "big") + units[1], 4)


def test_canonical_avcc_leaves_out_what_the_record_does_not_need() -> None:
    sps = b"\x67\x64\x00\x0d\xac\xd9\x41\x41\xfa\x10"
    pps = b"\x68\xef\x82\x3c\xb0"
    record = (
        bytes([1, 0x64, 0, 0x0D, 0xFF, 0xE1])
        + len(sps).to_bytes(2, "big")
        + sps
        + b"\x01"
        + len(pps).to_bytes(2, "big")
        + pps
    )
    high = record + bytes([0xFD, 0xF8, 0xF8, 0])
    assert canonical_avcc(high) == high
    # An SPS extension and trailing bytes (free data) are left out.
    ext = bytes([0xFD, 0xF8, 0xF8, 1, 0, len(NAME) + 1, 0x0D]) + NAME.encode()
    assert canonical_avcc(record + ext + NAME.encode()) == high
    assert NAME.encode() not in canonical_avcc(record + ext)


def test_the_forms_searched_include_the_608_pairs() -> None:
    pairs = cea608_pairs("AB")
    assert pairs == bytes([0xC1, 0xC2])  # 'A' 0x41 and 'B' 0x42 have even parity: bit 7 set
    assert cea608_pairs("C") == bytes([0x43, 0x80])  # odd already; NUL padding with parity


# -- through the service


async def test_no_operation_of_the_service_outputs_the_hidden_name(
    client: Client, worker: Worker, settings: Settings, sources: dict[str, Path]
) -> None:
    roi = ROI.to_dict()
    jobs: list[tuple[str, dict[str, object]]] = [
        ("video-remove-frames", {"frame_ranges": "30-34"}),
        ("video-apply-mask", {"mask_type": "custom", "roi": roi, "blacken_frames": "10-19"}),
        (
            "video-reprocess",
            {"mask_type": "custom", "roi": roi, "remove_labels": ["blank", "text_screen"]},
        ),
    ]
    for kind, src in sources.items():
        video = await upload(client, src, filename=f"{kind}.mp4")
        for path, body in jobs:
            resp = await client.post(f"/api/{path}/{video['id']}/", json=body)
            answer = await resp.json()
            assert resp.status == 202, answer
            final = (await follow_task(client, answer["task_id"]))[-1]
            assert final["state"] == "SUCCESS", final
            result = final["result"]
            assert result["verification"]["passed"] is True
            if path == "video-remove-frames":
                assert result["mode"] == "smart", result
                assert result["frames_copied"] > 0, result
            output = settings.data_dir / result["output_file"]
            assert found_forms(output) == [], (kind, path)
            assert ffmpeg_errors(output) == ""
