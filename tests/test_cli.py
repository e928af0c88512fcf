from __future__ import annotations

import json
import subprocess
import sys

import pytest

from jepa_pipe.cli import build_parser, main
from jepa_pipe.datasets.manifest import read_manifest

from conftest import REPO

VERBS = sorted(
    next(a for a in build_parser()._actions if a.dest == "verb").choices  # every verb
)


def test_the_verbs_the_rules_call_exist():
    assert {"train", "features", "eval", "summary", "report", "cache-part"} <= set(VERBS)


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_has_help(verb, capsys):
    with pytest.raises(SystemExit) as e:
        main([verb, "--help"])
    assert e.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_module_entry_point_runs():
    out = subprocess.run(
        [sys.executable, "-m", "jepa_pipe", "datasets"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stdout
    for name in ("ssv2", "ucf101", "msrvtt", "msvd", "charades_sta", "coco"):
        assert name in out


def test_manifest_verb_on_demo(demo_root, tmp_path, capsys):
    out = tmp_path / "m" / "ucf101.parquet"
    code = main(
        [
            "manifest",
            "--dataset",
            "ucf101",
            "--root",
            str(demo_root / "ucf101"),
            "--split",
            "train",
            "--split",
            "test",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rows"] == read_manifest(out).num_rows == 72
    assert report["per_split"] == {"train": 48, "test": 24} and report["missing"] == 0


def test_user_errors_exit_2_without_traceback(tmp_path, capsys):
    code = main(
        [
            "manifest",
            "--dataset",
            "ucf101",
            "--root",
            str(tmp_path / "x"),
            "--split",
            "train",
            "--out",
            str(tmp_path / "m.parquet"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ucf101: data root") and "Traceback" not in err
    assert not (tmp_path / "m.parquet").exists()


def test_check_config_verb(tmp_path, capsys):
    assert main(["check-config", "--config", str(REPO / "config/config.yaml")]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets:\n  ucf101: {root: x, splits: [train], rooot: y}\n")
    assert main(["check-config", "--config", str(bad)]) == 2
    assert "datasets.ucf101.rooot: unknown key" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bench", "decode"], "bench decode needs --videos GLOB, or --config FILE and --dataset"),
        (
            ["bench", "loader", "--config", "c.yaml"],
            "bench loader needs --synthetic-rows N, or --config FILE and --dataset",
        ),
    ],
)
def test_bench_without_its_inputs_names_them(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
