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
