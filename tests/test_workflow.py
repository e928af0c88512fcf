"""The Snakemake DAG on the demo config, run in a scratch directory (not the checkout)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from jepa_pipe.datasets import build_manifest
from jepa_pipe.datasets.manifest import read_manifest

from conftest import REPO

DATASETS = ("ssv2", "ucf101", "msrvtt", "msvd", "charades_sta", "coco")


def snakemake(workdir: Path, *args: str, configfile: Path | None = None):
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(configfile or REPO / "config/config.yaml"),
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def test_dry_run_resolves_demo_data_and_manifest_rules(tmp_path):
    res = snakemake(tmp_path, "-n", "--quiet", "rules")
    assert res.returncode == 0, res.stderr
    out = res.stdout + res.stderr
    for rule, count in (("demo_data", 6), ("manifest", 6)):
        assert any(line.split()[:2] == [rule, str(count)] for line in out.splitlines()), out


def test_wrong_key_fails_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((REPO / "config/config.yaml").read_text().replace("  seed: 0", "  sede: 0"))
    res = snakemake(tmp_path / "work", "--cores", "1", configfile=bad)
    assert res.returncode != 0
    assert "demo.sede: unknown key; expected one of: out, scale, seed" in res.stdout + res.stderr
    assert not (tmp_path / "work" / "data").exists()


def test_recipe_without_data_names_the_missing_roots(tmp_path):
    res = snakemake(tmp_path, "-n", configfile=REPO / "config/st_jepa.yaml")
    assert res.returncode != 0
    assert "datasets.ssv2.root: data root 'data/ssv2' does not exist" in res.stdout + res.stderr


@pytest.mark.slow
def test_demo_dag_runs_and_matches_direct_cli(tmp_path, demo_root):
    res = snakemake(tmp_path, "--cores", "2")
    assert res.returncode == 0, res.stderr[-3000:]
    for name in DATASETS:
        table = read_manifest(tmp_path / "manifests" / f"{name}.parquet")
        direct, _ = build_manifest(
            name, demo_root / name, table.column("split").unique().to_pylist()
        )
        # same seed, same rows (the demo is deterministic)
        assert table.sort_by("row").to_pylist() == direct.to_pylist()
        for stage in ("demo_data", "manifest"):
            assert (tmp_path / "logs" / stage / f"{name}.log").is_file()
            assert (tmp_path / "benchmarks" / stage / f"{name}.tsv").is_file()
    again = snakemake(tmp_path, "-n")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
