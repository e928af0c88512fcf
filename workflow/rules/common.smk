# Helpers shared by every rules file: the validated config, output paths, and the command
# that rules run. No rules here.
import os
import re
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from jepa_pipe.cache.build import (
    RANDOM_WEIGHTS,
    plan_from_config,
    teacher_weights,
    tiny_checkpoint,
)
from jepa_pipe.config import ConfigError, validate_config
from jepa_pipe.datasets.manifest import manifest_path as dataset_manifest
from jepa_pipe.eval.benchmarks import BENCHMARKS, benchmarks_for
from jepa_pipe.eval.features import reference_teacher
from jepa_pipe.train.recipe import VIDEO_SYSTEMS, resolve_experiment
from jepa_pipe.train.vl import VL_SYSTEMS

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
TEACHERS = config.get("teachers", {})
CACHE = PATHS["cache"]


def _resolved_config():
    """The validated config with defaults, as a file the rules' commands read (rewritten only
    when it changes, so its mtime means something)."""
    import yaml

    path = Path(PATHS["logs"]) / "config.resolved.yaml"
    text = yaml.safe_dump(config, sort_keys=False)
    if not path.is_file() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(path)


RESOLVED_CONFIG = _resolved_config()


def log_path(stage, name):
    return f"{PATHS['logs']}/{stage}/{name}.log"


def benchmark_path(stage, name):
    return f"{PATHS['benchmarks']}/{stage}/{name}.tsv"


def manifest_path(dataset):
    return str(dataset_manifest(PATHS["manifests"], dataset))


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


def video_teachers(dataset):
    return DATASETS[dataset].get("teachers", [])


def text_teacher(dataset):
    return DATASETS[dataset].get("text_teacher")


def tiny_teacher_dirs(names):
    """Checkpoints the tiny_teacher rule writes, where the cache stage will load them."""
    return [teacher_weights(config, t) for t in names if TEACHERS[t]["weights"] in RANDOM_WEIGHTS]


def tiny_teacher_args(teacher):
    """tiny-teacher options: the size its weights value names, and the clip shape of the
    first dataset it caches (VideoMAE's fixed positions must match the clips)."""
    decode = next(
        (d.get("decode", {}) for d in DATASETS.values() if teacher in d.get("teachers", [])), {}
    )
    return (
        f"--size {RANDOM_WEIGHTS[TEACHERS[teacher]['weights']]}"
        f" --image-size {decode.get('size', 64)} --frames {decode.get('frames_per_clip', 16)}"
    )


def cache_parts(dataset):
    n = config["cache"]["parts"]
    return [f"{CACHE}/{dataset}/.parts/{j}-of-{n}.json" for j in range(n)]


def cache_stores(dataset):
    """frames and every video teacher, per view (view v > 0 is `<store>.v<v>`)."""
    return plan_from_config(config, dataset).store_names() if video_teachers(dataset) else []


def all_cache_summaries():
    out = []
    for d in DATASETS:
        out += [f"{CACHE}/{d}/{s}.summary.json" for s in cache_stores(d)]
        if text_teacher(d):
            out.append(f"{CACHE}/{d}/{text_teacher(d)}.summary.json")
    return out


EXPERIMENTS = config.get("experiments", {})
RUNS = PATHS["runs"]


def trained_experiments():
    """The video JEPA experiments (a student each; evaluated on ucf101 / msrvtt / msvd)."""
    return [e for e, x in EXPERIMENTS.items() if x["system"] in VIDEO_SYSTEMS]


def vl_experiments(system=None):
    """The VL-JEPA experiments (a predictor each), optionally of one system."""
    return [
        e
        for e, x in EXPERIMENTS.items()
        if x["system"] in VL_SYSTEMS and system in (None, x["system"])
    ]


def predictor_path(experiment):
    return f"{RUNS}/{experiment}/predictor.pt"


def all_predictors():
    return [predictor_path(e) for e in vl_experiments()]


def segment_tables(dataset):
    """A segmented dataset's segment table (its row stores are built over it), else []."""
    plan = plan_from_config(config, dataset)
    return [str(plan.segments)] if plan.segments else []


def vl_caches(wildcards):
    """The finalized teacher and text stores a VL-JEPA experiment reads."""
    x = EXPERIMENTS[wildcards.vl_experiment]
    d = x["dataset"]
    text = x.get("text_teacher") or text_teacher(d)
    return [f"{CACHE}/{d}/{x['teacher']}.summary.json", f"{CACHE}/{d}/{text}.summary.json"]


def vl_results(benchmark):
    """results/{experiment}/{benchmark}.json of every VL experiment the benchmark is for."""
    return [
        f"{RESULTS}/{e}/{benchmark}.json"
        for e in vl_experiments()
        if benchmark in benchmarks_for(EXPERIMENTS[e]["system"])
    ]


def ablation_results():
    return [f"{RESULTS}/ablations/{e}.json" for e in vl_experiments("vljepa_image")]


def train_device(experiment):
    """`auto` trains where the config's teacher pass ran (cache.device)."""
    device = EXPERIMENTS[experiment].get("device", "auto")
    return config["cache"]["device"] if device == "auto" else device


def student_path(experiment):
    return f"{RUNS}/{experiment}/student.pt"


def all_students():
    return [student_path(e) for e in trained_experiments()]


def experiment_caches(wildcards):
    """The finalized stores an experiment trains from (their summaries mark them verified)."""
    x = EXPERIMENTS[wildcards.experiment]
    d = x["dataset"]
    return [f"{CACHE}/{d}/frames.summary.json", f"{CACHE}/{d}/{x['teacher']}.summary.json"]


RESULTS = PATHS["results"]


def benchmark_results(*benchmarks):
    """results/{experiment}/{benchmark}.json for the named benchmarks whose dataset the
    config has (retrieval also needs its text teacher), for every trained experiment."""
    wanted = []
    for b in benchmarks:
        dataset = BENCHMARKS[b][0]
        if b not in benchmarks_for("video"):
            continue
        if dataset in DATASETS and (b == "ucf101" or text_teacher(dataset)):
            wanted.append(b)
    return [f"{RESULTS}/{e}/{b}.json" for e in trained_experiments() for b in wanted]


def all_results():
    """Every benchmark result the config asks for: video students and VL predictors."""
    return benchmark_results(*BENCHMARKS) + vl_results("charades") + vl_results("coco")


def view_summaries(dataset, store):
    """The verified summaries of every view of one store (`frames`, `frames.v1`, ...)."""
    names = [s for s in cache_stores(dataset) if s.split(".")[0] == store]
    return [f"{CACHE}/{dataset}/{s}.summary.json" for s in names]


def frames_summaries(wildcards):
    return view_summaries(wildcards.dataset, "frames")


def eval_inputs(wildcards):
    """A benchmark's features, its reference teacher cache, text store and manifest."""
    dataset = BENCHMARKS[wildcards.benchmark][0]
    teacher = reference_teacher(config, wildcards.experiment, dataset)
    out = [
        f"{RUNS}/{wildcards.experiment}/features/{dataset}/{s}.npz" for s in ("student", "random")
    ]
    out += view_summaries(dataset, teacher)
    if text_teacher(dataset):
        out.append(f"{CACHE}/{dataset}/{text_teacher(dataset)}.summary.json")
    return out + [manifest_path(dataset)]


def all_targets():
    return (
        all_manifests()
        + all_cache_summaries()
        + all_students()
        + all_predictors()
        + all_results()
        + ablation_results()
        + ([f"{RESULTS}/report.html"] if all_students() or all_predictors() else [])
    )
