"""The analysis on the realistic corpus (testkit.realistic): Olympus CV-1500 and centred layouts,
round, octagonal and rectangular live images with vignetting, fine or smooth texture, specular
highlights; fast passage, slow inspection, nearly still image; dark stretches, an instrument, a
registration screen, out of the body; one scene at 1080p.

Prints the per-scene table (pytest -s) that the README's Detectors section shows.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.video.analyze import ROI_MIN_CONFIDENCE, analyze_video
from testkit.realistic import (
    TABLE_HEAD,
    RealisticScene,
    SceneScore,
    corpus,
    make_realistic_video,
    olympus_1080p,
    score,
)

MIN_IOU = 0.95
MIN_RECALL = 0.95

SCENES: tuple[RealisticScene, ...] = (*corpus(640), olympus_1080p())


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SceneScore]:
    folder: Path = tmp_path_factory.mktemp("realistic")
    results = {}
    for scene in SCENES:
        truth = make_realistic_video(scene, folder / f"{scene.name}.mp4")
        results[scene.name] = score(truth, analyze_video(truth.path))
    print("\n" + TABLE_HEAD)
    for result in results.values():
        print(result.row(), result.found)
    return results


@pytest.mark.parametrize("scene", SCENES, ids=lambda scene: scene.name)
def test_live_image_found(scene: RealisticScene, scored: dict[str, SceneScore]) -> None:
    result = scored[scene.name]
    message = f"{result.row()} found {result.found}, truth {scene.layout.image}"
    assert result.roi_iou >= MIN_IOU, message
    assert result.confidence >= ROI_MIN_CONFIDENCE, message


@pytest.mark.parametrize("scene", SCENES, ids=lambda scene: scene.name)
def test_labels(scene: RealisticScene, scored: dict[str, SceneScore]) -> None:
    """Registration screens and out-of-body stretches are found, with no false positive of
    those labels; dark stretches are blank where the overlay could be learned (a moving
    image). In scenes whose image hardly moves (olympus_still, centred_rect, the 1080p
    inspection) the overlay is not learned before the dark stretch, which is then taken for
    a text screen: the cautious side, a known limit (README, Detectors)."""
    result = scored[scene.name]
    by_label = {s.label: s for s in result.labels}
    message = result.row()
    for label in ("text_screen", "non_endoscopic"):
        assert by_label[label].recall >= MIN_RECALL, message
    assert by_label["non_endoscopic"].false_positives == 0, message
    assert by_label["blank"].false_positives == 0, message
    moving = all(stretch.motion != "still" for stretch in scene.script)
    if moving and scene.layout.width <= 640:
        assert by_label["blank"].recall >= MIN_RECALL, message
        assert by_label["text_screen"].false_positives == 0, message
    else:
        dark = sum(s.frames for s in scene.script if s.kind == "dark")
        # Nothing else than the dark frames (and the frames right around them) is wrong.
        assert by_label["text_screen"].false_positives <= dark + 2, message


@pytest.mark.parametrize("scene", SCENES, ids=lambda scene: scene.name)
def test_device_recognised(scene: RealisticScene, scored: dict[str, SceneScore]) -> None:
    """The Olympus CV-1500 layouts are recognised, at 640x360 and at 1080p; the centred
    layouts match no catalogued device."""
    result = scored[scene.name]
    assert result.device == scene.layout.device, result.row()


@pytest.mark.parametrize("scene", SCENES, ids=lambda scene: scene.name)
def test_text_inside_the_image(scene: RealisticScene, scored: dict[str, SceneScore]) -> None:
    """Text printed over the picture is found (inside_roi), and nothing else is taken for it."""
    result = scored[scene.name]
    assert result.inside_found == result.inside_truth, result.row()
    assert result.inside_extra == 0, result.row()
