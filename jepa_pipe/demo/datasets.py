"""Demo datasets written in each dataset's official on-disk format.

Every file is a pure function of (seed, dataset, item index), so a seed reproduces the same
bytes and datasets can be written in parallel jobs.
"""

from __future__ import annotations

import csv
import io
import json
import pickle
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from jepa_pipe.demo import render
from jepa_pipe.demo.media import write_jpeg, write_video
from jepa_pipe.demo.render import MOTIONS, SPEEDS

H, W, FPS, FRAMES = 64, 80, 8, 32

Writer = Callable[[Path, int, int], dict]
DEMO_WRITERS: dict[str, Writer] = {}


def register_demo(name: str) -> Callable[[Writer], Writer]:
    def deco(fn: Writer) -> Writer:
        DEMO_WRITERS[name] = fn
        return fn

    return deco


def _rng(seed: int, dataset: str, *index: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(dataset.encode()), *index])


def _clip(rng: np.random.Generator, motion: str, speed: str, n: int = FRAMES, w: int = W):
    """A motion clip with 0-2 still distractors."""
    shapes = [render.moving_shape(rng, motion, speed, n, H, w)]
    shapes += [render.still_shape(rng, n, H, w) for _ in range(rng.integers(0, 3))]
    return render.render(shapes, n, H, w, rng)


def _write_text(path: Path, lines: list[str], newline: str = "\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(f"{line}{newline}" for line in lines).encode())


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, sort_keys=False) + "\n")


def _balanced(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """n class indices in [0, k), as balanced as possible, shuffled."""
    return rng.permutation(np.arange(n) % k)


# ---------------------------------------------------------------------------------------- SSv2
SSV2_TEMPLATES = {
    "left": "Pushing [something] from right to left",
    "right": "Pushing [something] from left to right",
    "up": "Moving [something] up",
    "down": "Moving [something] down",
    "clockwise": "Spinning [something] clockwise",
    "counterclockwise": "Spinning [something] counterclockwise",
}
# Labels with no demo clip, as in the real 174-class file; ids are not alphabetical.
SSV2_EXTRA = (
    "Holding something",
    "Putting something on a surface",
    "Approaching something with your camera",
)


@register_demo("ssv2")
def write_ssv2(out: Path, seed: int, scale: int) -> dict:
    rng = _rng(seed, "ssv2")
    names = [t.replace("[", "").replace("]", "") for t in SSV2_TEMPLATES.values()]
    names += list(SSV2_EXTRA)
    order = rng.permutation(len(names))
    _write_json(out / "labels/labels.json", {names[i]: str(j) for j, i in enumerate(order)})
    counts = {"train": 8 * scale * 6, "validation": 3 * scale * 6, "test": 2 * scale * 6}
    ids = rng.choice(np.arange(1, 220848), size=sum(counts.values()), replace=False)
    k = 0
    for split, n in counts.items():
        entries = []
        motions = _balanced(_rng(seed, "ssv2", 1, len(split)), n, len(MOTIONS))
        for m in motions:
            vid = str(ids[k])
            r = _rng(seed, "ssv2", 2, k)
            k += 1
            motion, speed = MOTIONS[m], SPEEDS[r.integers(2)]
            frames = _clip(r, motion, speed, w=int(r.choice([72, 80, 88])))  # widths vary
            write_video(out / "20bn-something-something-v2" / f"{vid}.webm", frames, FPS)
            thing = f"{list(render.COLORS)[r.integers(len(render.COLORS))]} object"
            template = SSV2_TEMPLATES[motion]
            entry = {
                "id": vid,
                "label": template.replace("[something]", thing).lower(),
                "template": template,
                "placeholders": [thing],
            }
            entries.append({"id": vid} if split == "test" else entry)
        _write_json(out / f"labels/{split}.json", entries)
    return {"videos": k}


# ------------------------------------------------------------------------------------- UCF-101
# classInd names; the lists and folders spell the last one "SpinCounterclockwise", as the
# official files disagree in case (HandstandPushups / v_HandStandPushups).
UCF_CLASSES = {
    "left": "MoveLeft",
    "right": "MoveRight",
    "up": "MoveUp",
    "down": "MoveDown",
    "clockwise": "SpinClockwise",
    "counterclockwise": "SpinCounterClockwise",
}
UCF_FOLDER = {**UCF_CLASSES, "counterclockwise": "SpinCounterclockwise"}


@register_demo("ucf101")
def write_ucf101(out: Path, seed: int, scale: int) -> dict:
    lists = out / "ucfTrainTestlist"
    _write_text(
        lists / "classInd.txt", [f"{i + 1} {c}" for i, c in enumerate(UCF_CLASSES.values())], "\r\n"
    )
    # fold 1: groups 1..2·scale test, the rest train; the test split grows with the scale too,
    # so a larger demo resolves smaller probe differences (24 test clips: ~9 points of noise)
    test_groups, clips = 2 * scale, 2
    groups = test_groups + 4 * scale
    train, test, k = [], [], 0
    for ci, motion in enumerate(MOTIONS):
        folder = UCF_FOLDER[motion]
        for g in range(1, groups + 1):
            for c in range(1, clips + 1):
                r = _rng(seed, "ucf101", ci, g, c)
                name = f"v_{folder}_g{g:02d}_c{c:02d}.avi"
                write_video(
                    out / "UCF-101" / folder / name, _clip(r, motion, SPEEDS[r.integers(2)]), FPS
                )
                k += 1
                if g <= test_groups:
                    test.append(f"{folder}/{name}")
                else:
                    train.append(f"{folder}/{name} {ci + 1}")
    _write_text(lists / "trainlist01.txt", train, "\r\n")
    _write_text(lists / "testlist01.txt", test, "\r\n")
    return {"videos": k}


# ------------------------------------------------------------------------------------- MSR-VTT
@register_demo("msrvtt")
def write_msrvtt(out: Path, seed: int, scale: int) -> dict:
    n_train, n_test = 60 * scale, 30 * scale
    n = n_train + n_test
    combos = _balanced(_rng(seed, "msrvtt", 1), n, len(MOTIONS) * len(SPEEDS))
    videos, sentences, jsfusion = [], [], []
    for i, combo in enumerate(combos):
        r = _rng(seed, "msrvtt", 2, i)
        motion, speed = MOTIONS[combo // 2], SPEEDS[combo % 2]
        vid = f"video{i}"
        write_video(out / "videos/all" / f"{vid}.mp4", _clip(r, motion, speed), FPS)
        split = "train" if i < n_train else "test"
        videos.append(
            {
                "category": int(combo // 2),
                "url": f"https://example.invalid/{vid}",
                "video_id": vid,
                "start time": 0.0,
                "end time": FRAMES / FPS,
                "split": split,
                "id": i,
            }
        )
        caps = render.captions(r, motion, speed, 5)
        sentences += [
            {"caption": c, "video_id": vid, "sen_id": len(sentences) + j}
            for j, c in enumerate(caps)
        ]
        if split == "test":
            jsfusion.append([f"ret{len(jsfusion)}", f"msr{i}", vid, caps[0]])
    _write_json(
        out / "MSRVTT_data.json",
        {"info": {"contributor": "jepa_pipe demo"}, "videos": videos, "sentences": sentences},
    )
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(
        [["video_id"]] + [[v["video_id"]] for v in videos if v["split"] == "train"]
    )
    (out / "MSRVTT_train.9k.csv").write_text(buf.getvalue())
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["", "key", "vid_key", "video_id", "sentence"])
    w.writerows([[j, *row] for j, row in enumerate(jsfusion)])
    (out / "MSRVTT_JSFUSION_test.csv").write_text(buf.getvalue())
    return {"videos": n}


# ---------------------------------------------------------------------------------------- MSVD
_YT = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@register_demo("msvd")
def write_msvd(out: Path, seed: int, scale: int) -> dict:
    counts = {"train": 36 * scale, "val": 6 * scale, "test": 18 * scale}
    captions, k = {}, 0
    for split, n in counts.items():
        combos = _balanced(_rng(seed, "msvd", 1, len(split)), n, len(MOTIONS) * len(SPEEDS))
        ids = []
        for combo in combos:
            r = _rng(seed, "msvd", 2, k)
            k += 1
            motion, speed = MOTIONS[combo // 2], SPEEDS[combo % 2]
            start = int(r.integers(0, 200))
            # YouTube ids may start with '-', which a careless CLI would read as a flag
            yt = ("-" if k % 5 == 0 else "") + "".join(r.choice(list(_YT), 11 - (k % 5 == 0)))
            vid = f"{yt}_{start}_{start + FRAMES // FPS}"
            ids.append(vid)
            write_video(out / "YouTubeClips" / f"{vid}.avi", _clip(r, motion, speed), FPS)
            captions[vid] = [c.split() for c in render.captions(r, motion, speed, 6)]
        _write_text(out / f"{split}_list.txt", ids)
    (out / "raw-captions.pkl").write_bytes(pickle.dumps(captions, protocol=4))
    return {"videos": k}


# -------------------------------------------------------------------------------- Charades-STA
CHARADES_SECONDS = 32


@register_demo("charades_sta")
def write_charades_sta(out: Path, seed: int, scale: int) -> dict:
    counts = {"train": 10 * scale, "test": 6 * scale}
    n_frames = CHARADES_SECONDS * FPS
    k = 0
    for split, n in counts.items():
        lines = []
        for _ in range(n):
            r = _rng(seed, "charades_sta", k)
            k += 1
            vid = "".join(r.choice(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"), 5))
            # 3-4 events of 3-8 s with still gaps between them, each by its own shape
            n_events = int(r.integers(3, 5))
            lengths = r.integers(3, 9, size=n_events)
            gaps = r.multinomial(
                CHARADES_SECONDS - int(lengths.sum()) - 1, [1 / (n_events + 1)] * (n_events + 1)
            )
            shapes, t = [render.still_shape(r, n_frames, H, W)], 0
            for e in range(n_events):
                t += int(gaps[e])
                motion, speed = MOTIONS[r.integers(len(MOTIONS))], SPEEDS[r.integers(2)]
                shapes.append(
                    render.moving_shape(
                        r,
                        motion,
                        speed,
                        n_frames,
                        H,
                        W,
                        start=t * FPS,
                        length=int(lengths[e]) * FPS,
                    )
                )
                sentence = render.caption(r, motion, speed)
                lines.append(f"{vid} {t:.1f} {t + int(lengths[e]):.1f}##{sentence}.")
                t += int(lengths[e])
            write_video(
                out / "Charades_v1_480" / f"{vid}.mp4",
                render.render(shapes, n_frames, H, W, r),
                FPS,
            )
        _write_text(out / f"charades_sta_{split}.txt", lines)
    return {"videos": k}


# ---------------------------------------------------------------------------------------- COCO
# Still images: captions describe the spatial relation of two shapes.
COCO_CATEGORIES = {"circle": 1, "square": 3, "triangle": 7}  # COCO ids have gaps
RELATIONS = {"left": "to the left of", "right": "to the right of", "up": "above", "down": "below"}


@register_demo("coco")
def write_coco(out: Path, seed: int, scale: int) -> dict:
    counts = {"train2017": 60 * scale, "val2017": 20 * scale}
    k = 0
    for release, n in counts.items():
        images, caps, objects = [], [], []
        for _ in range(n):
            r = _rng(seed, "coco", k)
            k += 1
            image_id = int(r.integers(1, 600000)) * 10 + k % 10
            a, b = render.still_shape(r, 1, H, W), render.still_shape(r, 1, H, W)
            while b.color == a.color:  # captions must tell the two shapes apart
                b.color = list(render.COLORS)[r.integers(len(render.COLORS))]
            rel = list(RELATIONS)[r.integers(4)]
            # place b relative to a along the relation's axis
            a.x[:], a.y[:] = W / 2, H / 2
            off = {"left": (1, 0), "right": (-1, 0), "up": (0, 1), "down": (0, -1)}[rel]
            b.x[:] = W / 2 + off[0] * r.uniform(0.28, 0.4) * W
            b.y[:] = H / 2 + off[1] * r.uniform(0.28, 0.4) * H
            a.x[:] -= off[0] * 0.1 * W
            a.y[:] -= off[1] * 0.1 * H
            fname = f"{image_id:012d}.jpg"
            write_jpeg(out / release / fname, render.render([a, b], 1, H, W, r)[0])
            images.append({"id": image_id, "file_name": fname, "height": H, "width": W})
            for j in range(5):
                subject = f"a {a.color} {a.kind}"
                other = f"a {b.color} {b.kind}"
                phrase = ["", "there is ", "a picture of ", "an image showing ", ""][j]
                caps.append(
                    {
                        "image_id": image_id,
                        "id": len(caps) + 1000 * k,
                        "caption": f"{phrase}{subject} {RELATIONS[rel]} {other}",
                    }
                )
            for s in (a, b):
                area = float(np.pi * s.radius**2)
                objects.append(
                    {
                        "id": len(objects) + 1,
                        "image_id": image_id,
                        "category_id": COCO_CATEGORIES[s.kind],
                        "area": area,
                        "bbox": [
                            float(s.x[0] - s.radius),
                            float(s.y[0] - s.radius),
                            2 * s.radius,
                            2 * s.radius,
                        ],
                        "iscrowd": 0,
                    }
                )
        _write_json(
            out / f"annotations/captions_{release}.json",
            {"info": {"description": "jepa_pipe demo"}, "images": images, "annotations": caps},
        )
        _write_json(
            out / f"annotations/instances_{release}.json",
            {
                "images": images,
                "annotations": objects,
                "categories": [
                    {"id": i, "name": n, "supercategory": "shape"}
                    for n, i in COCO_CATEGORIES.items()
                ],
            },
        )
    return {"images": k}


def write_demo(
    out: str | Path, seed: int = 0, datasets: list[str] | None = None, scale: int = 1
) -> dict[str, dict]:
    """Write the demo datasets under ``out/<dataset>/``."""
    out = Path(out)
    summary = {}
    for name in datasets or list(DEMO_WRITERS):
        summary[name] = DEMO_WRITERS[name](out / name, seed, scale)
    return summary
