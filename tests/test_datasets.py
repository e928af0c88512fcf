"""Each official layout with its quirks, and a bad-input case per kind per format.

Media files are empty placeholders: a manifest checks that a file exists, never decodes it.
"""

from __future__ import annotations

import csv
import json
import logging
import pickle
from pathlib import Path

import pytest

from jepa_pipe.datasets import build_manifest
from jepa_pipe.datasets.manifest import ManifestError

from conftest import write


def rows(dataset, root, splits):
    table, report = build_manifest(dataset, root, splits)
    return {r["clip_id"]: r for r in table.to_pylist()}, report


# ----------------------------------------------------------------------------------- layouts
def make_ssv2(root: Path, long_names: bool = False) -> Path:
    name = (lambda s: f"something-something-v2-{s}.json") if long_names else (lambda s: f"{s}.json")
    # ids deliberately not alphabetical, as in the official file
    write(
        root / "labels" / name("labels"),
        json.dumps(
            {
                "Putting something on a surface": "2",
                "Moving something up": "0",
                "Pushing something from left to right": "1",
            }
        ),
    )
    write(
        root / "labels" / name("train"),
        json.dumps(
            [
                {
                    "id": "20",
                    "label": "moving pen up",
                    "template": "Moving [something] up",
                    "placeholders": ["pen"],
                },
                {
                    "id": "3",
                    "label": "pushing cup from left to right",
                    "template": "Pushing [something] from left to right",
                    "placeholders": ["cup"],
                },
            ]
        ),
    )
    write(
        root / "labels" / name("validation"),
        json.dumps(
            [
                {
                    "id": "7",
                    "label": "putting a box on a surface",
                    "template": "Putting [something] on a surface",
                    "placeholders": ["a box"],
                }
            ]
        ),
    )
    write(root / "labels" / name("test"), json.dumps([{"id": "99"}]))
    for vid in ("20", "3", "7", "99"):
        write(root / "20bn-something-something-v2" / f"{vid}.webm")
    return root


def make_ucf101(root: Path) -> Path:
    lists = root / "ucfTrainTestlist"
    write(lists / "classInd.txt", "1 ApplyEyeMakeup\r\n2 HandstandPushups\r\n")
    write(
        lists / "trainlist01.txt",
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\r\n"
        "HandStandPushups/v_HandStandPushups_g08_c01.avi 2\r\n",
    )
    write(
        lists / "testlist01.txt",
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\r\n"
        "HandstandPushups/v_HandStandPushups_g01_c01.avi\r\n",
    )
    for rel in (
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi",
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
        # on disk the folder is spelled as in classInd, not as in the train list
        "HandstandPushups/v_HandStandPushups_g08_c01.avi",
        "HandstandPushups/v_HandStandPushups_g01_c01.avi",
    ):
        write(root / "UCF-101" / rel)
    return root


def make_msrvtt(root: Path, video_dir: str = "videos/all") -> Path:
    data = {
        "videos": [{"video_id": f"video{i}", "split": "train", "id": i} for i in range(3)],
        "sentences": [
            {"video_id": "video0", "caption": "second", "sen_id": 5},
            {"video_id": "video0", "caption": "first", "sen_id": 1},
            {"video_id": "video1", "caption": "a dog runs", "sen_id": 2},
        ],
    }
    write(root / "MSRVTT_data.json", json.dumps(data))
    write(root / "MSRVTT_train.9k.csv", "video_id\nvideo0\nvideo1\n")
    write(
        root / "MSRVTT_JSFUSION_test.csv",
        ",key,vid_key,video_id,sentence\n0,ret0,msr2,video2,a man is singing\n",
    )
    for i in range(3):
        write(root / video_dir / f"video{i}.mp4")
    return root


def make_msvd(root: Path, captions=None) -> Path:
    captions = captions or {
        "-4wsuPCjDBc_5_15": [["a", "man", "sings"], "a person sings"],
        "abc_1_4": [["a", "cat", "sleeps"]],
    }
    write(root / "raw-captions.pkl", pickle.dumps(captions))
    write(root / "train_list.txt", "abc_1_4\n")
    write(root / "test_list.txt", "-4wsuPCjDBc_5_15\n")
    write(root / "val_list.txt", "")
    for vid in captions:
        write(root / "YouTubeClips" / f"{vid}.avi")
    return root


def make_charades(root: Path) -> Path:
    write(
        root / "charades_sta_train.txt",
        "3MSZA 24.3 30.4##person turn a light on.\n3MSZA 0 5.5##person opens a door.\n"
        "AB12C 1 2##a person sits.\n",
    )
    write(root / "charades_sta_test.txt", "ZZ9ZZ 3.0 8.0##person laughs.\n")
    for vid in ("3MSZA", "AB12C", "ZZ9ZZ"):
        write(root / "Charades_v1_480" / f"{vid}.mp4")
    return root


def make_coco(root: Path) -> Path:
    images = [
        {"id": 42, "file_name": "000000000042.jpg"},
        {"id": 7, "file_name": "000000000007.jpg"},
    ]
    write(
        root / "annotations/captions_val2017.json",
        json.dumps(
            {
                "images": images,
                "annotations": [
                    {"image_id": 42, "id": 9, "caption": "b dog"},
                    {"image_id": 42, "id": 3, "caption": "a dog"},
                    {"image_id": 7, "id": 4, "caption": "a cat "},
                ],
            }
        ),
    )
    write(
        root / "annotations/instances_val2017.json",
        json.dumps(
            {
                "categories": [{"id": 18, "name": "dog"}, {"id": 17, "name": "cat"}],
                "annotations": [
                    {"image_id": 42, "category_id": 17, "area": 10.0},
                    {"image_id": 42, "category_id": 18, "area": 99.0},
                    {"image_id": 7, "category_id": 17, "area": 5.0},
                ],
            }
        ),
    )
    for im in images:
        write(root / "val2017" / im["file_name"])
    return root


# ------------------------------------------------------------------------------------ quirks
def test_ssv2_template_brackets_removed_and_looked_up(tmp_path):
    got, _ = rows("ssv2", make_ssv2(tmp_path), ["train", "validation", "test"])
    assert got["20"]["label"] == "Moving something up" and got["20"]["label_id"] == 0
    assert got["3"]["label_id"] == 1 and got["7"]["label_id"] == 2
    assert got["20"]["text"] == ["moving pen up"]
    # test json has ids only
    assert got["99"]["label"] is None and got["99"]["label_id"] == -1
    assert got["99"]["path"] == "20bn-something-something-v2/99.webm"
    assert [r["split"] for r in got.values()] == ["train", "train", "validation", "test"]


def test_ssv2_long_official_file_names(tmp_path):
    got, _ = rows("ssv2", make_ssv2(tmp_path, long_names=True), ["train"])
    assert set(got) == {"20", "3"}


def test_ucf101_crlf_and_case_insensitive_classes(tmp_path):
    table, _ = build_manifest("ucf101", make_ucf101(tmp_path), ["train", "test"])
    got = {r["clip_id"]: r for r in table.to_pylist()}
    tr = got["v_HandStandPushups_g08_c01"]
    assert tr["label"] == "HandstandPushups" and tr["label_id"] == 1
    assert tr["path"] == "UCF-101/HandstandPushups/v_HandStandPushups_g08_c01.avi"
    assert got["v_ApplyEyeMakeup_g01_c01"]["split"] == "test"
    assert got["v_ApplyEyeMakeup_g01_c01"]["label_id"] == 0
    from jepa_pipe.datasets.manifest import manifest_metadata

    assert manifest_metadata(table)["classes"] == ["ApplyEyeMakeup", "HandstandPushups"]


def test_msrvtt_9k_captions_and_jsfusion_queries(tmp_path):
    got, _ = rows("msrvtt", make_msrvtt(tmp_path, "MSRVTT_Videos"), ["train", "test"])
    assert got["video0"]["text"] == ["first", "second"]  # sen_id order
    assert got["video0"]["path"] == "MSRVTT_Videos/video0.mp4"
    assert got["video2"]["split"] == "test" and got["video2"]["text"] == ["a man is singing"]


def test_msvd_pickle_tokens_and_dash_ids(tmp_path):
    got, _ = rows("msvd", make_msvd(tmp_path), ["train", "val", "test"])
    assert got["-4wsuPCjDBc_5_15"]["text"] == ["a man sings", "a person sings"]
    assert got["-4wsuPCjDBc_5_15"]["split"] == "test"
    assert got["abc_1_4"]["path"] == "YouTubeClips/abc_1_4.avi"


def test_charades_queries_grouped_per_video_with_moments(tmp_path):
    got, _ = rows("charades_sta", make_charades(tmp_path), ["train", "test"])
    v = got["3MSZA"]
    assert v["text"] == ["person turn a light on.", "person opens a door."]
    assert v["text_start_s"] == [24.3, 0.0] and v["text_end_s"] == [30.4, 5.5]
    assert got["ZZ9ZZ"]["split"] == "test"


def test_coco_captions_and_largest_object_label(tmp_path):
    table, _ = build_manifest("coco", make_coco(tmp_path), ["val"])
    got = {r["clip_id"]: r for r in table.to_pylist()}
    assert got["000000000042"]["text"] == ["a dog", "b dog"]  # annotation id order
    assert got["000000000042"]["label"] == "dog"  # largest area wins
    assert got["000000000042"]["label_id"] == 1  # categories ordered by COCO id: cat(17), dog(18)
    assert got["000000000007"]["path"] == "val2017/000000000007.jpg"


MAKERS = {
    "ssv2": (make_ssv2, ["train"]),
    "ucf101": (make_ucf101, ["train"]),
    "msrvtt": (make_msrvtt, ["train"]),
    "msvd": (make_msvd, ["train"]),
    "charades_sta": (make_charades, ["train"]),
    "coco": (make_coco, ["val"]),
}
MEDIA = {
    "ssv2": "20bn-something-something-v2/20.webm",
    "ucf101": "UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi",
    "msrvtt": "videos/all/video0.mp4",
    "msvd": "YouTubeClips/abc_1_4.avi",
    "charades_sta": "Charades_v1_480/AB12C.mp4",
    "coco": "val2017/000000000042.jpg",
}


@pytest.mark.parametrize("dataset", sorted(MAKERS))
def test_missing_media_is_reported_and_left_out(tmp_path, dataset, caplog):
    make, splits = MAKERS[dataset]
    root = make(tmp_path)
    (root / MEDIA[dataset]).unlink()
    full, _ = build_manifest(dataset, make(tmp_path / "full"), splits)
    with caplog.at_level(logging.WARNING, logger="jepa_pipe"):
        table, report = build_manifest(dataset, root, splits)
    assert report.missing == 1 and table.num_rows == full.num_rows - 1
    assert report.missing_first[0] in caplog.text and "1 annotated clip(s)" in caplog.text


# -------------------------------------------------------------------------------- bad inputs
def _replace(path: Path, old: str, new: str):
    text = path.read_bytes().decode()  # bytes: keep CRLF as the official files have it
    assert old in text, (path, old)
    path.write_bytes(text.replace(old, new, 1).encode())


BAD = {
    # dataset: {kind: (mutation, expected message regex)}
    "ssv2": {
        "missing_file": (
            lambda r: (r / "labels/labels.json").unlink(),
            r"SSv2 labels json not found; looked for: .*labels\.json",
        ),
        "malformed": (
            lambda r: _replace(
                r / "labels/train.json", '"template": "Moving [something] up", ', ""
            ),
            r"train\.json entry 0 \(id 20\): no 'template'",
        ),
        "unknown_label": (
            lambda r: _replace(
                r / "labels/train.json", "Moving [something] up", "Flying [something]"
            ),
            r"entry 0 \(id 20\): unknown label 'Flying something'",
        ),
        "escape": (
            lambda r: _replace(r / "labels/train.json", '"id": "20"', '"id": "../../20"'),
            r"path '../../20.webm' leaves the data root",
        ),
    },
    "ucf101": {
        "missing_file": (
            lambda r: (r / "ucfTrainTestlist/classInd.txt").unlink(),
            r"UCF-101 classInd\.txt not found",
        ),
        "malformed": (
            lambda r: _replace(r / "ucfTrainTestlist/trainlist01.txt", " 1\r\n", " 1 extra\r\n"),
            r"trainlist01\.txt:1: expected '<Class>/<file>\.avi <index>'",
        ),
        "unknown_label": (
            lambda r: _replace(
                r / "ucfTrainTestlist/trainlist01.txt", "ApplyEyeMakeup/", "Juggling/"
            ),
            r"trainlist01\.txt:1: unknown class 'Juggling'",
        ),
        "escape": (
            lambda r: _replace(r / "ucfTrainTestlist/trainlist01.txt", "ApplyEyeMakeup/", "../../"),
            r"trainlist01\.txt:1: path '../../v_ApplyEyeMakeup_g08_c01.avi' leaves the data root",
        ),
    },
    "msrvtt": {
        "missing_file": (
            lambda r: (r / "MSRVTT_train.9k.csv").unlink(),
            r"MSR-VTT MSRVTT_train\.9k\.csv not found",
        ),
        "malformed": (
            lambda r: _replace(r / "MSRVTT_train.9k.csv", "video_id\n", "vid\n"),
            r"MSRVTT_train\.9k\.csv: missing column\(s\) \['video_id'\]",
        ),
        "unknown_label": (
            lambda r: _replace(r / "MSRVTT_train.9k.csv", "video1\n", "video77\n"),
            r"MSRVTT_train\.9k\.csv:3: unknown video 'video77'",
        ),
        "escape": (
            lambda r: (
                _replace(r / "MSRVTT_train.9k.csv", "video1\n", "../video1\n"),
                _replace(
                    r / "MSRVTT_data.json",
                    '"video_id": "video1", "split"',
                    '"video_id": "../video1", "split"',
                ),
                _replace(
                    r / "MSRVTT_data.json",
                    '"video_id": "video1", "caption"',
                    '"video_id": "../video1", "caption"',
                ),
            ),
            r"path '../video1.mp4' leaves the data root",
        ),
    },
    "msvd": {
        "missing_file": (
            lambda r: (r / "raw-captions.pkl").unlink(),
            r"MSVD raw-captions not found",
        ),
        "malformed": (
            lambda r: _replace(r / "train_list.txt", "abc_1_4", "abc_1_4 def_2_3"),
            r"train_list\.txt:1: expected one video id per line",
        ),
        "unknown_label": (
            lambda r: _replace(r / "train_list.txt", "abc_1_4", "zzz_1_4"),
            r"train_list\.txt:1: unknown video 'zzz_1_4' \(no captions",
        ),
        "escape": (
            lambda r: (
                make_msvd(r, {"../../x_1_2": ["a"], "abc_1_4": ["b"]}),
                _replace(r / "train_list.txt", "abc_1_4", "../../x_1_2"),
            ),
            r"path '../../x_1_2.avi' leaves the data root",
        ),
    },
    "charades_sta": {
        "missing_file": (
            lambda r: (r / "charades_sta_train.txt").unlink(),
            r"Charades-STA train not found",
        ),
        "malformed": (
            lambda r: _replace(r / "charades_sta_train.txt", "0 5.5##", "0 5.5 "),
            r"charades_sta_train\.txt:2: expected '<video> <start> <end>##<sentence>'",
        ),
        "unknown_label": (
            lambda r: _replace(r / "charades_sta_train.txt", "0 5.5##", "9 5.5##"),
            r"charades_sta_train\.txt:2: moment \[9\.0, 5\.5\] is not 0 <= start < end",
        ),
        "escape": (
            lambda r: _replace(r / "charades_sta_train.txt", "AB12C", "../AB12C"),
            r"path '../AB12C.mp4' leaves the data root",
        ),
    },
    "coco": {
        "missing_file": (
            lambda r: (r / "annotations/captions_val2017.json").unlink(),
            r"COCO captions_val2017\.json not found",
        ),
        "malformed": (
            lambda r: _replace(
                r / "annotations/captions_val2017.json", '"caption": "b dog"', '"text": "b dog"'
            ),
            r"captions_val2017\.json: annotations\[0\] needs 'image_id' and 'caption'",
        ),
        "unknown_label": (
            lambda r: _replace(
                r / "annotations/instances_val2017.json", '"category_id": 18', '"category_id": 99'
            ),
            r"instances_val2017\.json: annotations\[1\] has unknown category_id 99",
        ),
        "escape": (
            lambda r: _replace(
                r / "annotations/captions_val2017.json",
                '"000000000007.jpg"',
                '"../../000000000007.jpg"',
            ),
            r"path '../../000000000007.jpg' leaves the data root",
        ),
    },
}


@pytest.mark.parametrize("dataset,kind", [(d, k) for d in sorted(BAD) for k in BAD[d]])
def test_bad_input_gives_clear_message(tmp_path, dataset, kind):
    make, splits = MAKERS[dataset]
    root = make(tmp_path)
    mutate, pattern = BAD[dataset][kind]
    mutate(root)
    with pytest.raises(ManifestError, match=pattern):
        build_manifest(dataset, root, splits)


def test_malformed_json_names_line_and_column(tmp_path):
    root = make_ssv2(tmp_path)
    write(root / "labels/train.json", '[{"id": "20",\n "template" "x"}]')
    with pytest.raises(ManifestError, match=r"train\.json: malformed JSON at line 2 column"):
        build_manifest("ssv2", root, ["train"])


def test_unknown_dataset_split_and_root(tmp_path):
    with pytest.raises(ManifestError, match="unknown split 'tain'"):
        build_manifest("ssv2", make_ssv2(tmp_path), ["tain"])
    with pytest.raises(ManifestError, match="is not a directory"):
        build_manifest("ssv2", tmp_path / "nope", ["train"])
    with pytest.raises(ManifestError, match="unknown dataset 'kinetics'"):
        build_manifest("kinetics", tmp_path, ["train"])


def test_clip_in_two_splits_is_refused(tmp_path):
    root = make_ucf101(tmp_path)
    with pytest.raises(ManifestError, match="appears twice"):
        build_manifest("ucf101", root, ["train", "train1"])


def test_msrvtt_csv_written_by_csv_module_is_read(tmp_path):
    root = make_msrvtt(tmp_path)
    with open(root / "MSRVTT_JSFUSION_test.csv", "w", newline="") as f:
        csv.writer(f).writerows(
            [
                ["", "key", "vid_key", "video_id", "sentence"],
                [0, "ret0", "msr2", "video2", 'a "quoted", sentence'],
            ]
        )
    got, _ = rows("msrvtt", root, ["test"])
    assert got["video2"]["text"] == ['a "quoted", sentence']
