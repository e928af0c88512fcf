"""The benchmarks: each reads features (student, random-init student, teacher cache) and the
manifest, runs its protocol for every source, and writes ``results/{experiment}/{name}.json``
with the numbers, the protocol settings and the fingerprints of everything it read.

- ``ucf101``: linear probe, trained on ``train`` (trainlist01), top-1 / top-5 on ``test``.
- ``msrvtt`` (1k-A) and ``msvd``: alignment head on the train split's video features and
  text-teacher embeddings, text-to-video and video-to-text R@1/5/10, MdR, MnR on ``test``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from jepa_pipe import get_logger
from jepa_pipe.cache.store import file_sha256, open_store, store_meta, store_path, write_json_atomic
from jepa_pipe.datasets.manifest import manifest_path, read_manifest
from jepa_pipe.eval.features import SOURCES, EvalError, load_features
from jepa_pipe.eval.metrics import MOMENT_KEYS
from jepa_pipe.eval.probe import DEFAULT_CS, linear_probe
from jepa_pipe.eval.retrieval import HeadConfig, retrieval

log = get_logger("eval")
Benchmark = Callable[[dict, str], dict]
BENCHMARKS: dict[str, tuple[str, Benchmark]] = {}  # name -> (dataset, function)


def register_benchmark(name: str, dataset: str):
    def wrap(fn: Benchmark) -> Benchmark:
        BENCHMARKS[name] = (dataset, fn)
        return fn

    return wrap


def result_path(results: str | os.PathLike, experiment: str, benchmark: str) -> Path:
    return Path(results) / experiment / f"{benchmark}.json"


def _manifest(cfg: dict, dataset: str):
    path = manifest_path(cfg["paths"]["manifests"], dataset)
    return read_manifest(path), {"manifest": str(path), "manifest_sha256": file_sha256(path)}


def _split_rows(table, split: str, dataset: str) -> np.ndarray:
    splits = np.asarray(table.column("split").to_pylist())
    rows = np.asarray(table.column("row").to_pylist())[splits == split]
    if len(rows) == 0:
        raise EvalError(f"{dataset}: the manifest has no {split!r} rows (splits: {set(splits)})")
    return rows


@register_benchmark("ucf101", "ucf101")
def ucf101(cfg: dict, experiment: str) -> dict:
    settings = {"train_split": "train", "test_split": "test", "cs": list(DEFAULT_CS)}
    settings |= cfg.get("eval", {}).get("ucf101", {})
    table, provenance = _manifest(cfg, "ucf101")
    labels = np.asarray(table.column("label_id").to_pylist())
    num_classes = int(labels.max()) + 1
    train = _split_rows(table, settings["train_split"], "ucf101")
    test = _split_rows(table, settings["test_split"], "ucf101")
    out, features = {}, {}
    for source in SOURCES:
        pooled, valid, meta = load_features(cfg, experiment, "ucf101", source)
        tr, te = train[valid[train]], test[valid[test]]
        out[source] = linear_probe(
            pooled[tr], labels[tr], pooled[te], labels[te], num_classes, settings["cs"]
        )
        out[source]["test_clips"], out[source]["invalid_test_clips"] = len(te), len(test) - len(te)
        features[source] = meta
    return {
        "protocol": "linear probe: logistic regression on standardised mean-pooled features, C "
        "by stratified CV on train, top-1/top-5 on test",
        "settings": settings,
        "classes": num_classes,
        "chance": {"top1": 100 / num_classes, "top5": min(100.0, 500 / num_classes)},
        "rows": {"train": len(train), "test": len(test)},
        "sources": out,
        "features": features,
        **provenance,
    }


def _text_store(cfg: dict, dataset: str):
    name = cfg["datasets"][dataset].get("text_teacher")
    if name is None:
        raise EvalError(f"datasets.{dataset} has no text_teacher: retrieval needs text embeddings")
    group = open_store(store_path(cfg["paths"]["cache"], dataset, name))
    meta = store_meta(group)
    text = group["text"][:].astype(np.float32)
    return text, group["text_row"][:], {"store": name, "fingerprint": meta["fingerprint"]}


def _pairs(rows: np.ndarray, valid: np.ndarray, text_row: np.ndarray):
    """The split's valid video rows (items) and the texts that describe them."""
    items = rows[valid[rows]]
    index = {int(r): i for i, r in enumerate(items)}
    texts = np.nonzero(np.isin(text_row, items))[0]
    text_video = np.asarray([index[int(text_row[t])] for t in texts], dtype=np.int64)
    return items, texts, text_video


def _retrieval(cfg: dict, experiment: str, dataset: str) -> dict:
    settings = {"train_split": "train", "test_split": "test"}
    settings |= cfg.get("eval", {}).get("retrieval", {}).get(dataset, {})
    head = HeadConfig.from_dict(cfg.get("eval", {}).get("retrieval_head"))
    table, provenance = _manifest(cfg, dataset)
    train = _split_rows(table, settings["train_split"], dataset)
    test = _split_rows(table, settings["test_split"], dataset)
    text, text_row, text_meta = _text_store(cfg, dataset)
    out, features = {}, {}
    for source in SOURCES:
        pooled, valid, meta = load_features(cfg, experiment, dataset, source)
        tr_items, tr_texts, tr_tv = _pairs(train, valid, text_row)
        te_items, te_texts, te_tv = _pairs(test, valid, text_row)
        out[source] = retrieval(
            (pooled[tr_items], text[tr_texts], tr_tv),
            (pooled[te_items], text[te_texts], te_tv),
            head,
        )
        out[source]["test_videos"], out[source]["test_queries"] = len(te_items), len(te_texts)
        out[source]["invalid_test_videos"] = len(test) - len(te_items)
        features[source] = meta
    n_test = len(test)
    return {
        "protocol": "alignment head (symmetric InfoNCE) on the train split's cached video and "
        "text features; t2v: every test caption a query; v2t: any of the video's captions "
        "counts; ranks 1-based, ties against the query",
        "settings": {**settings, "head": vars(head)},
        "chance": {"R1": 100 / n_test},
        "rows": {"train": len(train), "test": n_test},
        "text": text_meta,
        "sources": out,
        "features": features,
        **provenance,
    }


@register_benchmark("msrvtt", "msrvtt")
def msrvtt(cfg: dict, experiment: str) -> dict:
    return _retrieval(cfg, experiment, "msrvtt")


@register_benchmark("msvd", "msvd")
def msvd(cfg: dict, experiment: str) -> dict:
    return _retrieval(cfg, experiment, "msvd")


VL_BENCHMARKS = {"vljepa_video": ("charades",), "vljepa_image": ("coco",)}


def benchmarks_for(system: str) -> tuple[str, ...]:
    """The benchmarks an experiment of `system` is evaluated on (before dataset checks)."""
    return VL_BENCHMARKS.get(system, ("ucf101", "msrvtt", "msvd"))


def run_benchmark(cfg: dict, experiment: str, benchmark: str, out: Path | None = None) -> dict:
    if benchmark not in BENCHMARKS:
        raise EvalError(f"unknown benchmark {benchmark!r}; expected one of {sorted(BENCHMARKS)}")
    dataset, fn = BENCHMARKS[benchmark]
    if dataset not in cfg["datasets"]:
        raise EvalError(f"benchmark {benchmark!r} needs dataset {dataset!r} in the config")
    result = {"benchmark": benchmark, "experiment": experiment, "dataset": dataset}
    result |= fn(cfg, experiment)
    result["eval_config"] = cfg.get("eval", {})
    out = out or result_path(cfg["paths"]["results"], experiment, benchmark)
    write_json_atomic(out, result)
    log.info("%s %s: %s", experiment, benchmark, headline(result))
    return result


def headline(result: dict) -> dict[str, dict[str, float]]:
    """The numbers a table shows, per source: top-1/top-5, or t2v/v2t R@1/5/10 and MdR."""
    rows = {}
    for source, r in result["sources"].items():
        row = {k: r[k] for k in ("top1", "top5") if k in r}
        row |= {k: r[k] for k in MOMENT_KEYS if k in r}
        row |= {
            f"{d}_{k}": r[d][k]
            for d in ("t2v", "v2t", "t2i", "i2t")
            if d in r
            for k in ("R1", "R5", "R10", "MdR")
        }
        rows[source] = row
    return rows


def headline_records(result: dict) -> list[dict]:
    """One record (experiment, benchmark, source, metric, value) per headline number."""
    return [
        {
            "experiment": result["experiment"],
            "benchmark": result["benchmark"],
            "source": source,
            "metric": k,
            "value": float(v),
        }
        for source, values in headline(result).items()
        for k, v in values.items()
    ]


SUMMARY_SCHEMA = pa.schema(
    [
        ("experiment", pa.string()),
        ("benchmark", pa.string()),
        ("source", pa.string()),
        ("metric", pa.string()),
        ("value", pa.float64()),
    ]
)
# the metrics a table shows: probe top-1, text-to-video / -image R@1, moments R@1 at IoU 0.5
HEADLINE_METRICS = ("top1", "t2v_R1", "t2i_R1", "R1@0.5")
TABLE_HEADER = ["experiment", "benchmark", "metric", "student", "teacher", "random init"]


def summarise(result_files: list[Path], out_md: Path, out_parquet: Path) -> pa.Table:
    """One row per (experiment, benchmark, source, metric), as parquet and a markdown table."""
    import json

    records = [r for p in result_files for r in headline_records(json.loads(Path(p).read_text()))]
    table = pa.Table.from_pylist(records, schema=SUMMARY_SCHEMA)
    out_parquet.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out_parquet)
    out_md.write_text(markdown_table(records))
    return table


def table_rows(records: list[dict]) -> list[list[str]]:
    """Experiments x benchmarks, one column per source (TABLE_HEADER), the headline metric of
    each benchmark (UCF-101 top-1; retrieval text-to-video R@1), formatted."""
    value = {
        (r["experiment"], r["benchmark"], r["source"], r["metric"]): r["value"] for r in records
    }
    shown = sorted({(e, b, m) for e, b, _, m in value if m in HEADLINE_METRICS})
    rows = []
    for exp, bench, metric in shown:
        cells = [value.get((exp, bench, s, metric)) for s in SOURCES]
        rows.append([exp, bench, metric] + ["" if c is None else f"{c:.1f}" for c in cells])
    return rows


def markdown_table(records: list[dict]) -> str:
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|---" * len(TABLE_HEADER) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(records)]
    return "\n".join(lines) + "\n"


# the VL-JEPA benchmarks register themselves (imported last: they use register_benchmark)
from jepa_pipe.eval import charades, coco  # noqa: E402, F401
