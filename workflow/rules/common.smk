# Helpers shared by every rules file: the validated config, output paths, and the command
# that rules run. No rules here.
import os
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from jepa_pipe.config import ConfigError, validate_config

try:
    _validated = validate_config(config)
except ConfigError as e:
    raise WorkflowError(str(e)) from None
config.clear()
config.update(_validated)

# Rules run `python -m jepa_pipe` from the environment Snakemake itself runs in, even when
# that environment was not activated (`.venv/bin/snakemake ...`).
shell.prefix(f"set -euo pipefail; export PATH={shlex.quote(str(Path(sys.executable).parent))}:$PATH; ")

PATHS = config["paths"]
DEMO = config.get("demo")
DATASETS = config["datasets"]


def log_path(stage, name):
    return f"{PATHS['logs']}/{stage}/{name}.log"


def benchmark_path(stage, name):
    return f"{PATHS['benchmarks']}/{stage}/{name}.tsv"


def manifest_path(dataset):
    return f"{PATHS['manifests']}/{dataset}.parquet"


def is_demo_dataset(dataset):
    """A dataset whose root is written by the demo_data rule."""
    if DEMO is None:
        return False
    root = os.path.normpath(DATASETS[dataset]["root"])
    return root == os.path.normpath(f"{DEMO['out']}/{dataset}")


def dataset_root_input(wildcards):
    """The demo dataset folder when the demo makes it; real data roots are not DAG outputs."""
    root = DATASETS[wildcards.dataset]["root"]
    return [root] if is_demo_dataset(wildcards.dataset) else []


def all_manifests():
    return [manifest_path(d) for d in DATASETS]


def all_targets():
    # Later stages (cache, train, eval, report) add their outputs here as they are built.
    return all_manifests()
