"""Command line: ``python -m jepa_pipe <verb> ...``. Every Snakemake rule calls one verb, so
each stage runs, and is tested, without Snakemake."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from jepa_pipe import JepaPipeError, __version__, get_logger
from jepa_pipe.sampling import ClipSampling

log = get_logger("cli")
Handler = Callable[[argparse.Namespace], int]


def _demo_data(args: argparse.Namespace) -> int:
    from jepa_pipe.demo.datasets import DEMO_WRITERS, write_demo

    unknown = [d for d in args.dataset or [] if d not in DEMO_WRITERS]
    if unknown:
        raise JepaPipeError(f"--dataset {unknown[0]!r}: expected one of {sorted(DEMO_WRITERS)}")
    summary = write_demo(args.out, seed=args.seed, datasets=args.dataset, scale=args.scale)
    print(json.dumps({"out": str(args.out), "seed": args.seed, "datasets": summary}))
    return 0


def _manifest(args: argparse.Namespace) -> int:
    from jepa_pipe.datasets import build_manifest
    from jepa_pipe.datasets.manifest import write_manifest

    splits = [s for arg in args.split for s in arg.split(",") if s]
    table, report = build_manifest(args.dataset, args.root, splits)
    write_manifest(table, args.out)
    print(json.dumps({"out": str(args.out), **report.__dict__}))
    return 0


def _check_config(args: argparse.Namespace) -> int:
    from jepa_pipe.config import load_config, validate_config

    cfg = validate_config(load_config(args.config), check_paths=not args.no_paths)
    print(json.dumps(cfg, indent=1) if args.print else f"{args.config}: valid")
    return 0


def _config(args: argparse.Namespace) -> dict:
    from jepa_pipe.config import load_config, validate_config

    return validate_config(load_config(args.config))


def _plan(args: argparse.Namespace):
    from jepa_pipe.cache.build import plan_from_config

    cfg = _config(args)
    if args.dataset not in cfg["datasets"]:
        raise JepaPipeError(f"--dataset {args.dataset!r} is not in {args.config}")
    return plan_from_config(cfg, args.dataset)


def _plan_verb(args: argparse.Namespace) -> int:
    from jepa_pipe.plan import format_plan, plan_config

    cfg = _config(args)
    unknown = [d for d in args.dataset or [] if d not in cfg["datasets"]]
    if unknown:
        raise JepaPipeError(f"--dataset {unknown[0]!r} is not in {args.config}")
    result = plan_config(cfg, tflops=args.tflops, datasets=args.dataset)
    print(json.dumps(result) if args.json else format_plan(result))
    return 0


def _check_cache(args: argparse.Namespace) -> int:
    from jepa_pipe.cache.check import check_store

    result = check_store(args.store, block_rows=args.block_rows, workers=args.workers)
    if not args.per_dim:
        result.pop("per_dim")
    print(json.dumps(result))
    return 0


def _emit(obj: dict, out: Path | None) -> None:
    from jepa_pipe.cache.store import write_json_atomic

    if out is not None:
        write_json_atomic(out, obj)
    print(json.dumps(obj, default=str))


def _tiny_teacher(args: argparse.Namespace) -> int:
    from jepa_pipe.teachers.tiny import write_tiny_teacher

    if args.pretrain_steps:
        from jepa_pipe.demo.pretrain import pretrain_image_teacher, pretrain_video_teacher

        if args.size != "tiny":
            raise SystemExit("tiny-teacher: --pretrain-steps trains tiny checkpoints only")
        if args.kind == "vit":
            record = pretrain_image_teacher(
                args.out, args.pretrain_steps, args.seed, args.image_size
            )
        else:
            record = pretrain_video_teacher(
                args.kind, args.out, args.pretrain_steps, args.seed, args.image_size, args.frames
            )
        summary = {k: v for k, v in record.items() if k != "curve"}
        print(json.dumps(summary | {"out": str(args.out)}))
        return 0
    out = write_tiny_teacher(
        args.kind,
        args.out,
        seed=args.seed,
        image_size=args.image_size,
        frames=args.frames,
        size=args.size,
    )
    print(json.dumps({"kind": args.kind, "size": args.size, "out": str(out), "seed": args.seed}))
    return 0


def _segments(args: argparse.Namespace) -> int:
    from jepa_pipe.cache.segments import build_segments, segment_settings

    plan = _plan(args)
    _emit(build_segments(plan, *segment_settings(_config(args), args.dataset)), args.out)
    return 0


def _cache_init(args: argparse.Namespace) -> int:
    from jepa_pipe.cache.build import init_stores

    _emit({"fingerprints": init_stores(_plan(args))}, args.out)
    return 0


def _cache_part(args: argparse.Namespace) -> int:
    from jepa_pipe.cache.build import build_part

    if not 0 <= args.part < args.parts:
        raise JepaPipeError(f"--part {args.part} must be in [0, {args.parts})")
    _emit(build_part(_plan(args), args.part, args.parts), args.out)
    return 0


def _cache_finalize(args: argparse.Namespace) -> int:
    from jepa_pipe.cache.build import finalize_store

    plan = _plan(args)
    if args.store not in plan.store_names():
        raise JepaPipeError(f"--store {args.store!r}: expected one of {plan.store_names()}")
    _emit(finalize_store(plan.store_path(args.store), plan.rows), None)
    return 0


def _cache_text(args: argparse.Namespace) -> int:
    from jepa_pipe.cache.build import build_text_store

    plan = _plan(args)
    if plan.text_teacher is None:
        raise JepaPipeError(f"datasets.{args.dataset} has no text_teacher in {args.config}")
    _emit(build_text_store(plan), None)
    return 0


def _cache_all(args: argparse.Namespace) -> int:
    from jepa_pipe.cache.build import build_part, build_text_store, finalize_store, init_stores

    plan = _plan(args)
    if plan.segments is not None:
        from jepa_pipe.cache.segments import build_segments, segment_settings

        build_segments(plan, *segment_settings(_config(args), args.dataset))
    init_stores(plan)
    for part in range(plan.parts):
        build_part(plan, part, plan.parts)
    summaries = [finalize_store(plan.store_path(n), plan.rows) for n in plan.store_names()]
    if plan.text_teacher:
        summaries.append(build_text_store(plan))
    print(json.dumps([{k: s[k] for k in ("store", "rows", "valid", "invalid")} for s in summaries]))
    return 0


def _train(args: argparse.Namespace) -> int:
    from jepa_pipe.train.vl import VL_SYSTEMS, train_vl

    cfg = _config(args)
    exp = cfg.get("experiments", {}).get(args.experiment, {})
    if exp.get("system") in VL_SYSTEMS:  # a VL-JEPA predictor (caches only)
        summary = train_vl(
            cfg, args.experiment, progress=not args.no_progress, until_step=args.until_step
        )
        print(json.dumps(summary))
        return 0
    from jepa_pipe.train.loop import train

    summary = train(cfg, args.experiment, until_step=args.until_step, progress=not args.no_progress)
    print(json.dumps(summary))
    return 0


def _features(args: argparse.Namespace) -> int:
    from jepa_pipe.eval.features import extract

    sources = list(dict.fromkeys(args.source or ["student", "random"]))
    out = [str(p) for p in extract(_config(args), args.experiment, args.dataset, sources)]
    print(json.dumps({"out": out}))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from jepa_pipe.eval.benchmarks import headline, run_benchmark

    result = run_benchmark(_config(args), args.experiment, args.benchmark, args.out)
    print(json.dumps({"benchmark": args.benchmark, "experiment": args.experiment,
                      "sources": headline(result)}))  # fmt: skip
    return 0


def _infer(args: argparse.Namespace) -> int:
    from jepa_pipe.eval.charades import infer

    print(json.dumps(infer(_config(args), args.checkpoint, args.video, args.query, args.top_k)))
    return 0


def _ablations(args: argparse.Namespace) -> int:
    from jepa_pipe.eval.coco import run_ablations

    report = run_ablations(_config(args), args.experiment, args.out)
    print(json.dumps({"out": str(args.out), "runs": report["runs"]}))
    return 0


def _summary(args: argparse.Namespace) -> int:
    from jepa_pipe.eval.benchmarks import summarise

    table = summarise(args.results, args.markdown, args.parquet)
    print(json.dumps({"rows": table.num_rows, "markdown": str(args.markdown)}))
    return 0


def _report(args: argparse.Namespace) -> int:
    from jepa_pipe.report import write_report

    out = write_report(_config(args), args.out, args.figures)
    print(json.dumps({"out": str(out)}))
    return 0


def _bench(args: argparse.Namespace) -> int:
    from jepa_pipe import bench

    reads_dataset = args.what not in ("train", "infer", "write") and not (
        (args.what == "decode" and args.videos) or (args.what == "loader" and args.synthetic_rows)
    )
    if reads_dataset and not (args.config and args.dataset):
        how = {"decode": "--videos GLOB, or ", "loader": "--synthetic-rows N, or "}
        how = how.get(args.what, "")
        raise JepaPipeError(f"bench {args.what} needs {how}--config FILE and --dataset NAME")

    if args.what == "decode":
        if args.videos:
            sampling = ClipSampling(
                frames_per_clip=args.frames, frame_step=args.step, size=args.size
            )
            paths = bench.expand(args.videos, args.limit)
        else:
            plan = _plan(args)
            from jepa_pipe.datasets.manifest import read_manifest

            rel = read_manifest(plan.manifest).column("path").to_pylist()[: args.limit]
            paths, sampling = [str(plan.root / p) for p in rel], plan.sampling
        result = bench.bench_decode(paths, sampling, rounds=args.rounds)
    elif args.what == "infer":
        if not (args.config and args.experiment):
            raise JepaPipeError("bench infer needs --config and --experiment")
        result = bench.bench_infer(_config(args), args.experiment, args.videos, args.rounds)
    elif args.what == "train":
        if not (args.config and args.experiment):
            raise JepaPipeError("bench train needs --config and --experiment")
        result = bench.bench_train(_config(args), args.experiment, steps=args.steps)
    elif args.what == "loader":
        from jepa_pipe.cache.loader import Field

        fields, synthetic = None, None
        if args.synthetic_rows:
            length, dim = (int(x) for x in args.tokens.split("x"))
            synthetic = {
                "rows": args.synthetic_rows,
                "frames_shape": (args.frames, args.size, args.size, 3),
                "tokens_shape": (length, dim),
                "shard_size": args.shard_size,
            }
        else:
            plan = _plan(args)
            teacher = args.teacher or next(iter(plan.teachers))
            fields = [
                Field("frames", plan.store_path("frames"), "frames"),
                Field("tokens", plan.store_path(teacher), "tokens"),
            ]
        result = bench.bench_loader(
            fields,
            batch_size=args.batch_size,
            rounds=args.rounds,
            repeat=args.repeat,
            synthetic=synthetic,
        )
    elif args.what == "write":
        length, dim = (int(x) for x in args.tokens.split("x"))
        result = bench.bench_write((length, dim), args.shard_size, rounds=args.rounds)
    else:
        result = bench.bench_cache(
            _config(args), args.dataset, limit=args.limit, isolate=args.isolate
        )
    print(json.dumps(result))
    return 0


def _datasets(args: argparse.Namespace) -> int:
    from jepa_pipe.datasets import DATASETS

    for name, spec in sorted(DATASETS.items()):
        print(f"{name:13s} splits: {', '.join(spec.splits)}\n{'':13s} {spec.doc}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from jepa_pipe.datasets import DATASETS

    parser = argparse.ArgumentParser(prog="python -m jepa_pipe", description=__doc__)
    parser.add_argument("--version", action="version", version=f"jepa_pipe {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    p = sub.add_parser("demo-data", help="write the demo datasets in their official formats")
    p.add_argument("--out", type=Path, required=True, help="folder; one sub-folder per dataset")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dataset", action="append", help="only this dataset (repeatable)")
    p.add_argument("--scale", type=int, default=1, help="multiply the number of clips")
    p.set_defaults(func=_demo_data)

    p = sub.add_parser("manifest", help="read a dataset's annotations into a parquet manifest")
    p.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    p.add_argument("--root", type=Path, required=True, help="the dataset's data root")
    p.add_argument(
        "--split",
        action="append",
        required=True,
        help="split to include (repeatable, or comma-separated)",
    )
    p.add_argument("--out", type=Path, required=True, help="FILE.parquet")
    p.set_defaults(func=_manifest)

    p = sub.add_parser("check-config", help="validate a workflow config against the schema")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--no-paths", action="store_true", help="do not check that data roots exist")
    p.add_argument("--print", action="store_true", help="print the config with defaults filled")
    p.set_defaults(func=_check_config)

    p = sub.add_parser(
        "tiny-teacher",
        help="write a random checkpoint of a real teacher class (tiny, or full size to benchmark)",
    )
    p.add_argument("--kind", required=True, choices=["videomae", "vjepa2", "vit", "bert"])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument(
        "--size",
        choices=["tiny", "full"],
        default="tiny",
        help="tiny: width 64, 2 layers (demo, tests); full: the real checkpoint's architecture "
        "(VideoMAE-H, V-JEPA 2 ViT-L, ViT-B/16, BERT-base), random weights, for GPU benchmarks",
    )
    p.add_argument(
        "--pretrain-steps",
        type=int,
        default=0,
        help="tiny: train this many steps before saving (the demo's shipped teachers; "
        "jepa_pipe.demo.pretrain): videomae / vjepa2 to name the motion of rendered shapes, "
        "vit to say which colours and kinds of shape a rendered still holds",
    )
    p.set_defaults(func=_tiny_teacher)

    def cache_verb(name, help_, func, out=True):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--config", type=Path, required=True, help="workflow config (YAML)")
        p.add_argument("--dataset", required=True)
        if out:
            p.add_argument("--out", type=Path, help="also write the JSON report here")
        p.set_defaults(func=func)
        return p

    cache_verb(
        "segments",
        "list a segmented dataset's fixed-length segments (probes every video's length)",
        _segments,
    )
    cache_verb("cache-init", "create a dataset's frames and teacher stores (once)", _cache_init)
    p = cache_verb("cache-part", "decode and run the teachers for one part's shards", _cache_part)
    p.add_argument("--part", type=int, required=True)
    p.add_argument("--parts", type=int, required=True)
    p = cache_verb(
        "cache-finalize", "verify a store's shards and mark it complete", _cache_finalize, out=False
    )
    p.add_argument(
        "--store", required=True, help="frames or a teacher name (view v > 0: NAME.v<v>)"
    )
    cache_verb(
        "cache-text", "embed the manifest's texts with the text teacher", _cache_text, out=False
    )
    cache_verb(
        "cache", "init, every part, finalize and text, in one process", _cache_all, out=False
    )

    def experiment_verb(name, help_, func, description):
        p = sub.add_parser(name, help=help_, description=description)
        p.add_argument("--config", type=Path, required=True, help="workflow config (YAML)")
        p.add_argument("--experiment", required=True, help="a name under `experiments:`")
        p.set_defaults(func=func)
        return p

    p = experiment_verb(
        "train",
        "train an experiment's student from the caches (resumes from its last checkpoint)",
        _train,
        "Cache-only training: reads the frames and teacher stores, never a teacher. "
        "Run under `torchrun --nproc_per_node N` for DDP.",
    )
    p.add_argument(
        "--until-step",
        type=int,
        help="stop after this step (checkpointed), as a preemptible job; rerun to continue",
    )
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")

    p = experiment_verb(
        "features",
        "mean-pooled features of a trained (or random-init) student over a dataset",
        _features,
        "Runs the frozen students over the dataset's frames store once and keeps "
        "runs/EXPERIMENT/features/DATASET/SOURCE.npz for the benchmarks.",
    )
    p.add_argument("--dataset", required=True)
    p.add_argument(
        "--source",
        action="append",
        choices=["student", "random"],
        help="repeatable; default both (runs/EXPERIMENT/features/DATASET/SOURCE.npz)",
    )

    from jepa_pipe.eval import BENCHMARK_NAMES

    p = experiment_verb(
        "eval",
        "run a benchmark for an experiment: student vs teacher cache vs random init",
        _eval,
        "ucf101: linear probe (top-1/top-5). msrvtt, msvd: alignment head + "
        "text-video retrieval (R@1/5/10, MdR, MnR). charades: moment retrieval with a "
        "VL-JEPA predictor (R1/R5 at IoU 0.3/0.5/0.7, mIoU). coco: probe, image-text "
        "retrieval and masked-patch loss with/without captions. "
        "Writes results/EXPERIMENT/BENCHMARK.json.",
    )
    p.add_argument("benchmark", choices=BENCHMARK_NAMES)
    p.add_argument("--out", type=Path, help="default results/EXPERIMENT/BENCHMARK.json")

    p = sub.add_parser(
        "infer",
        help="top moments of a video for a text query (VL-JEPA moment predictor)",
        description="Caches the video's segment features on first use (decode + video "
        "teacher); later queries on the same video read that cache and run no video encoder.",
    )
    p.add_argument("--config", type=Path, required=True, help="workflow config (YAML)")
    p.add_argument("--checkpoint", type=Path, required=True, help="runs/EXPERIMENT/predictor.pt")
    p.add_argument("--video", type=Path, required=True)
    p.add_argument("--query", required=True)
    p.add_argument("--top-k", type=int, default=5)
    p.set_defaults(func=_infer)

    p = experiment_verb(
        "ablations",
        "train and evaluate a vljepa_image experiment's ablation grid from its caches",
        _ablations,
        "Every combination of the experiment's `ablations:` (mask_ratio, text_conditioning, "
        "loss) is trained and evaluated from the same caches (one teacher pass).",
    )
    p.add_argument("--out", type=Path, required=True, help="FILE.json (a plot goes beside it)")

    p = sub.add_parser("summary", help="one table over benchmark result files")
    p.add_argument("results", type=Path, nargs="+", help="results/*/*.json")
    p.add_argument("--markdown", type=Path, required=True)
    p.add_argument("--parquet", type=Path, required=True)
    p.set_defaults(func=_summary)

    p = sub.add_parser(
        "report", help="a self-contained HTML page: losses, benchmarks, cache statistics"
    )
    p.add_argument("--config", type=Path, required=True, help="workflow config (YAML)")
    p.add_argument("--out", type=Path, required=True, help="FILE.html")
    p.add_argument("--figures", type=Path, help="also write each plot as a PNG in this folder")
    p.set_defaults(func=_report)

    p = sub.add_parser(
        "bench", help="decode / cache / loader / train / infer / write figures as one JSON object"
    )
    p.add_argument("what", choices=["decode", "cache", "loader", "train", "infer", "write"])
    p.add_argument("--config", type=Path, help="workflow config (manifests must exist)")
    p.add_argument("--dataset")
    p.add_argument(
        "--videos", help="decode: a glob of video files instead of a dataset; infer: one video"
    )
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--step", type=int, default=4)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--limit", type=int, default=64, help="clips to use")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--teacher", help="loader: the teacher store (default: the first)")
    p.add_argument("--batch-size", type=int, default=8, help="loader: rows per batch")
    p.add_argument(
        "--synthetic-rows",
        type=int,
        default=0,
        help="loader: seeded random stores of this many rows (--frames, --size, --tokens, "
        "--shard-size) instead of a dataset's",
    )
    p.add_argument(
        "--tokens", default="1568x384", help="loader (synthetic), write: float16 tokens L x D"
    )
    p.add_argument(
        "--shard-size", type=int, default=16, help="loader (synthetic), write: rows per shard"
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="loader: read a scratch copy with every shard written N times (longer epochs)",
    )
    p.add_argument(
        "--experiment",
        help="train: the experiment whose caches and step to time; infer: a vljepa_video one",
    )
    p.add_argument("--steps", type=int, default=20, help="train: steps per measurement")
    p.add_argument(
        "--isolate",
        action="store_true",
        help="cache: also time the pass without its writes, and without writes or decoding "
        "(rows decoded beforehand), to see which stage slows it",
    )
    p.set_defaults(func=_bench)

    p = sub.add_parser(
        "plan",
        help="before anything runs: clips, token grids, disk per cache, teacher FLOPs and "
        "GPU-hours, shards and jobs",
    )
    p.add_argument("--config", type=Path, required=True, help="workflow config (YAML)")
    p.add_argument("--dataset", action="append", help="only this dataset (repeatable)")
    p.add_argument(
        "--tflops",
        type=float,
        default=200.0,
        help="effective teacher throughput for the GPU-hours (default 200: about what "
        "VideoMAE-H reached in bf16 on an H100 here, README Figures)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_plan_verb)

    p = sub.add_parser(
        "check-cache",
        help="out-of-core statistics of a finished teacher or text store (dask): NaN/Inf, "
        "norms, per-dimension mean and variance, dead dimensions",
    )
    p.add_argument("--store", type=Path, required=True, help="a .zarr teacher or text store")
    p.add_argument("--block-rows", type=int, help="rows per block (default: the shard size)")
    p.add_argument("--workers", type=int, default=2, help="dask threads")
    p.add_argument("--per-dim", action="store_true", help="print every dimension's mean/var")
    p.set_defaults(func=_check_cache)

    p = sub.add_parser("datasets", help="list the dataset readers, their splits and layouts")
    p.set_defaults(func=_datasets)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except JepaPipeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
