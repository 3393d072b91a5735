"""Request bodies of the four operations, built from the command line's options.

The options mirror the API's fields one to one; the server checks the values against the video
(ROI inside the frame, frames within the video) and its message says what to change.
"""

from __future__ import annotations

import argparse
from typing import Any

from client.api import JsonDict

#: Analysis labels, as the API names them.
LABELS = ("blank", "text_screen", "non_endoscopic")
#: The operations that write a video, and so take ``audio``.
EDITS = ("mask", "remove", "reprocess")


def box(text: str) -> dict[str, int]:
    """``X,Y,W,H`` in pixels, as the API's ``roi`` object (an argparse type)."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) != 4 or not all(part.isdigit() for part in parts):
        raise argparse.ArgumentTypeError(
            f"expected X,Y,WIDTH,HEIGHT in whole pixels, such as 550,0,1350,1080; got {text!r}"
        )
    x, y, width, height = (int(part) for part in parts)
    return {"x": x, "y": y, "width": width, "height": height}


def frame_numbers(text: str) -> list[int]:
    """``3,4,90``: frame numbers, 0-based (an argparse type)."""
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isdigit() for part in parts):
        raise argparse.ArgumentTypeError(
            f"expected frame numbers separated by commas, such as 3,4,90; got {text!r}"
        )
    return [int(part) for part in parts]


def labels(text: str) -> list[str]:
    """``blank,text_screen``: analysis labels (an argparse type)."""
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [label for label in chosen if label not in LABELS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"expected labels from {', '.join(LABELS)} separated by commas; got {text!r}"
        )
    return chosen


def add_mask_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    """``--device NAME [--shape]``, ``--rect X,Y,W,H``, ``--ellipse X,Y,W,H`` or
    ``--octagon X,Y,W,H --corner C``."""
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument(
        "--device",
        metavar="NAME",
        help="keep a known device's endoscope image (see `vidcorrect devices`)",
    )
    group.add_argument(
        "--rect", type=box, metavar="X,Y,W,H", help="keep this rectangle (pixels of the video)"
    )
    group.add_argument(
        "--ellipse",
        type=box,
        metavar="X,Y,W,H",
        help="keep the ellipse inscribed in this rectangle (the API's shape ellipse)",
    )
    group.add_argument(
        "--octagon",
        type=box,
        metavar="X,Y,W,H",
        help="keep this rectangle with its corners cut off at 45 degrees, --corner pixels "
        "along each edge (the API's shape octagon)",
    )
    parser.add_argument(
        "--shape",
        choices=("rect", "ellipse", "octagon"),
        help="shape of a --device mask's image area (default: rect)",
    )
    parser.add_argument(
        "--corner",
        type=int,
        metavar="C",
        help="pixels cut off each corner of an octagon (with --octagon or --shape octagon)",
    )


def add_audio_option(parser: argparse.ArgumentParser) -> None:
    """``--audio keep|drop``, sent only when given (the server's default applies otherwise)."""
    parser.add_argument(
        "--audio",
        choices=("keep", "drop"),
        help="keep the sound (cut with the frames) or write no audio at all "
        "(default: the server's, drop unless VIDCORRECT_AUDIO says keep)",
    )


def _mask_fields(args: argparse.Namespace) -> JsonDict:
    if args.shape is not None and args.device is None:
        raise ValueError(
            "--shape goes with --device; --rect, --ellipse and --octagon name their shape"
        )
    fields: JsonDict = {}
    if args.device is not None:
        fields = {"mask_type": "device", "device_name": args.device}
        if args.shape is not None:
            fields["shape"] = args.shape
    elif args.rect is not None:
        fields = {"mask_type": "custom", "roi": args.rect, "shape": "rect"}
    elif args.ellipse is not None:
        fields = {"mask_type": "custom", "roi": args.ellipse, "shape": "ellipse"}
    elif args.octagon is not None:
        fields = {"mask_type": "custom", "roi": args.octagon, "shape": "octagon"}
    octagon = fields.get("shape") == "octagon"
    if octagon != (args.corner is not None):
        raise ValueError(
            "--corner goes with --octagon or --shape octagon, and they need it"
            if octagon or fields
            else "--corner goes with --octagon or --device NAME --shape octagon"
        )
    if args.corner is not None:
        fields["corner"] = args.corner
    return fields


def build(operation: str, args: argparse.Namespace) -> JsonDict:
    """The JSON body of ``operation`` (mask, remove, analyze, reprocess) from its options.

    Raises ``ValueError`` for options that do not go together."""
    body: dict[str, Any]
    if operation == "mask":
        body = _mask_fields(args)
        if args.blacken is not None:
            body["blacken_frames"] = args.blacken
    elif operation == "remove":
        if args.frames is not None:
            body = {"frame_list": args.frames}
        elif args.ranges is not None:
            body = {"frame_ranges": args.ranges}
        else:
            body = {"detection_method": "automatic"}
    elif operation == "analyze":
        body = {} if args.sample_every is None else {"sample_every": args.sample_every}
    else:
        body = _mask_fields(args)
        if args.remove_labels is not None:
            body["remove_labels"] = args.remove_labels
        if args.sample_every is not None:
            body["sample_every"] = args.sample_every
    if operation in EDITS and args.audio is not None:
        body["audio"] = args.audio
    return body
