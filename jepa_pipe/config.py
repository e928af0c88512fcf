"""Loading and validating the workflow configuration.

One function, :func:`validate_config`, is called by the Snakefile before any job runs and by
``python -m jepa_pipe check-config``. It reports every problem with the key's dotted path and
what was expected, then fills the schema's defaults.
"""

from __future__ import annotations

import copy
import os
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import yaml

from jepa_pipe import JepaPipeError


class ConfigError(JepaPipeError):
    """The configuration does not match the schema or names something that does not exist."""


def load_schema() -> dict:
    text = resources.files("jepa_pipe").joinpath("schemas/config.schema.yaml").read_text()
    return yaml.safe_load(text)


def load_config(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _dotted(path) -> str:
    parts = []
    for p in path:
        parts.append(f"[{p}]" if isinstance(p, int) else (("." if parts else "") + str(p)))
    return "".join(parts) or "<top level>"


_TYPE_NAMES = {
    dict: "mapping",
    list: "list",
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    type(None): "null",
}


def _describe(error: jsonschema.ValidationError) -> str:
    """One line per problem: `<dotted.key>: <what is wrong>; expected <what>`."""
    where = _dotted(error.absolute_path)
    inst, schema = error.instance, error.schema
    if "propertyNames" in error.relative_schema_path:
        allowed = ", ".join(error.validator_value) if error.validator == "enum" else "?"
        return f"{_dotted([*error.absolute_path, inst])}: unknown key; expected one of: {allowed}"
    if error.validator == "additionalProperties":
        known = sorted(schema.get("properties", {}))
        extra = sorted(k for k in inst if k not in known)
        key = _dotted([*error.absolute_path, extra[0]]) if extra else where
        return f"{key}: unknown key; expected one of: {', '.join(known)}"
    if error.validator == "required":
        missing = [k for k in error.validator_value if k not in inst]
        return f"{_dotted([*error.absolute_path, missing[0]])}: missing required key"
    if error.validator == "type":
        got = _TYPE_NAMES.get(type(inst), type(inst).__name__)
        expected = {"array": "list", "object": "mapping"}.get(
            error.validator_value, error.validator_value
        )
        return f"{where}: expected {expected}, got {got} {inst!r}"
    if error.validator == "enum":
        allowed = ", ".join(map(str, error.validator_value))
        is_teacher_kind = where.startswith("teachers.") and where.endswith(".kind")
        what = "teacher kind" if is_teacher_kind else "value"
        return f"{where}: unknown {what} {inst!r}; expected one of: {allowed}"
    return f"{where}: {error.message}"


def _fill_defaults(instance: Any, schema: dict, root: dict) -> None:
    """Fill `default`s of declared properties (recursing through $ref and maps)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = root["$defs"][name]
    if not isinstance(instance, dict):
        return
    for key, sub in schema.get("properties", {}).items():
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if key in instance:
            _fill_defaults(instance[key], sub, root)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key, value in instance.items():
            if key not in schema.get("properties", {}):
                _fill_defaults(value, extra, root)


def _under(path: str, parent: str) -> bool:
    p, q = PurePosixPath(os.path.normpath(path)), PurePosixPath(os.path.normpath(parent))
    return p == q or q in p.parents


def _semantic_errors(cfg: dict, base: Path, check_paths: bool) -> list[str]:
    from jepa_pipe.datasets import DATASETS

    errors = []
    teachers = cfg.get("teachers", {})
    demo_out = cfg.get("demo", {}).get("out")
    for name, ds in cfg.get("datasets", {}).items():
        spec = DATASETS[name]
        for i, split in enumerate(ds["splits"]):
            if split not in spec.splits:
                errors.append(
                    f"datasets.{name}.splits[{i}]: unknown split {split!r}; "
                    f"expected one of: {', '.join(spec.splits)}"
                )
        for i, t in enumerate(ds.get("teachers", [])):
            if t not in teachers:
                errors.append(
                    f"datasets.{name}.teachers[{i}]: unknown teacher {t!r}; "
                    f"defined teachers: {', '.join(teachers) or 'none'}"
                )
        if "text_teacher" in ds and ds["text_teacher"] not in teachers:
            errors.append(
                f"datasets.{name}.text_teacher: unknown teacher {ds['text_teacher']!r}; "
                f"defined teachers: {', '.join(teachers) or 'none'}"
            )
        generated = demo_out is not None and _under(ds["root"], str(Path(demo_out) / name))
        if check_paths and not generated and not (base / ds["root"]).is_dir():
            errors.append(
                f"datasets.{name}.root: data root {ds['root']!r} does not exist "
                f"(expected the folder holding the {name} release)"
            )
    for name, exp in cfg.get("experiments", {}).items():
        if exp["dataset"] not in cfg.get("datasets", {}):
            errors.append(
                f"experiments.{name}.dataset: unknown dataset {exp['dataset']!r}; "
                f"configured datasets: {', '.join(cfg.get('datasets', {}))}"
            )
        for key in ("teacher", "text_teacher"):
            if key in exp and exp[key] not in teachers:
                errors.append(
                    f"experiments.{name}.{key}: unknown teacher {exp[key]!r}; "
                    f"defined teachers: {', '.join(teachers) or 'none'}"
                )
    return errors


def validate_config(
    config: dict, *, base_dir: str | os.PathLike | None = None, check_paths: bool = True
) -> dict:
    """Validate against the schema and the names it refers to; return a copy with defaults.

    Raises ConfigError listing every problem, one per line, each naming its key.
    """
    schema = load_schema()
    validator = jsonschema.Draft202012Validator(schema)
    problems = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    lines = list(dict.fromkeys(_describe(e) for e in problems))
    if not lines:
        cfg = copy.deepcopy(config)
        _fill_defaults(cfg, schema, schema)
        lines = _semantic_errors(cfg, Path(base_dir or Path.cwd()), check_paths)
        if not lines:
            return cfg
    raise ConfigError("invalid config:\n  " + "\n  ".join(lines))
