"""The live-image finder on variations of the realistic corpus: dim recordings, deep vignetting,
a dark lumen, a border above the image's black or noisy, a nearly still image, a dark grey bar
touching the image. Prints ROI IoU per variation and scene, and a summary.

    .venv/bin/python bench/finder_variations.py              # every variation (about 10 min)
    .venv/bin/python bench/finder_variations.py 0 7 18       # some of them

Every scene is drawn with the light scaling the luma above black (16) and a floor of 5% beyond
the rim (testkit.realistic.RealisticScene.vignetting): a rectangular image's corners are then a
few levels above black, an octagon's too. IoU is what tests/test_realistic_corpus.py measures
(pixel masks of the found shape and the true image); the corpus test asks for 0.95. A cell also
shows, in square brackets, how many pixels of the text printed beside the image an output
masked to the suggested ROI would keep (none: nothing shown), in curly brackets how many pixels
of the text printed over the image (centred_octagon's) the inside regions found leave uncovered,
and after a plus how many inside regions were reported where no text was printed over the
image; the corpus test asks for none of these.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jobs.video.analyze import analyze_video
from testkit.realistic import Conditions, RealisticScene, corpus, make_realistic_video, score

SCENES = ("olympus_inspection", "olympus_passage", "centred_octagon", "centred_rect")
#: (name, vignetting strength, conditions, bar level or None)
VARIATIONS: tuple[tuple[str, float, Conditions, float | None], ...] = (
    ("usual light", 0.6, Conditions(), None),
    ("dim (gain 0.5)", 0.6, Conditions(gain=0.5), None),
    ("very dim (gain 0.35)", 0.6, Conditions(gain=0.35), None),
    ("deep vignetting (rim at 15%)", 0.85, Conditions(), None),
    ("deep vignetting, gain 0.6", 0.85, Conditions(gain=0.6), None),
    ("dark lumen (radius 0.25)", 0.6, Conditions(lumen=0.25), None),
    ("dark lumen 0.35, gain 0.6", 0.6, Conditions(lumen=0.35, gain=0.6), None),
    ("noisy border (sigma 4)", 0.6, Conditions(border_noise=4.0), None),
    ("noisy border (sigma 6), gain 0.5", 0.6, Conditions(border_noise=6.0, gain=0.5), None),
    ("noisy border 6, deep vignetting", 0.85, Conditions(border_noise=6.0), None),
    ("border at 20, dark lumen", 0.6, Conditions(border_level=20.0, lumen=0.3), None),
    ("border at 22, dark lumen", 0.6, Conditions(border_level=22.0, lumen=0.3), None),
    ("nearly still", 0.6, Conditions(still=True), None),
    ("dark grey bar at 22 touching", 0.6, Conditions(), 22.0),
    ("dark grey bar at 26 touching", 0.6, Conditions(), 26.0),
    ("grey bar at 30 touching", 0.6, Conditions(), 30.0),
)


def varied(
    scene: RealisticScene, strength: float, conditions: Conditions, bar: float | None
) -> RealisticScene:
    layout = scene.layout
    if bar is not None:  # a 40 px strip right of the image (there is room in every scene)
        image = layout.image
        k = layout.height / 360
        strip = replace(image, x=image.x + image.width, width=round(40 * k))
        layout = replace(layout, bars=(strip,), bar_level=bar)
    return replace(scene, layout=layout, vignetting=(strength, 0.05), conditions=conditions)


def main() -> None:
    chosen = {int(arg) for arg in sys.argv[1:]}
    scenes = {scene.name: scene for scene in corpus(640) if scene.name in SCENES}
    ious: list[float] = []
    leaks: list[int] = []
    over: list[int] = []
    extra: list[int] = []
    print("| variation | " + " | ".join(SCENES) + " |")
    print("|---" * (len(SCENES) + 1) + "|")
    with tempfile.TemporaryDirectory(prefix="finder-variations-") as tmp:
        for number, (name, strength, conditions, bar) in enumerate(VARIATIONS):
            if chosen and number not in chosen:
                continue
            cells = []
            for scene_name in SCENES:
                scene = varied(scenes[scene_name], strength, conditions, bar)
                truth = make_realistic_video(scene, Path(tmp) / f"{scene_name}.mp4")
                result = score(truth, analyze_video(truth.path))
                ious.append(result.roi_iou)
                leaks.append(result.outside_text_kept)
                over.append(result.inside_text_kept)
                extra.append(result.inside_extra)
                kept = f" [{result.outside_text_kept} px]" if result.outside_text_kept else ""
                kept += f" {{{result.inside_text_kept} px over}}" if result.inside_text_kept else ""
                kept += f" +{result.inside_extra}" if result.inside_extra else ""
                cells.append(f"{result.roi_iou:.3f} ({result.confidence:.2f}){kept}")
            print(f"| {number}. {name} | " + " | ".join(cells) + " |", flush=True)
    if ious:
        print(
            f"\n{len(ious)} recordings: IoU >= 0.95 in {sum(v >= 0.95 for v in ious)}, "
            f"< 0.9 in {sum(v < 0.9 for v in ious)}, lowest {min(ious):.3f} "
            "(confidence in brackets); text printed beside the image kept by the ROI in "
            f"{sum(v > 0 for v in leaks)} ([pixels]), text printed over the image kept in "
            f"{sum(v > 0 for v in over)} ({{pixels over}}), regions reported over the image "
            f"where it has no text in {sum(v > 0 for v in extra)} (+regions)"
        )


if __name__ == "__main__":
    main()
