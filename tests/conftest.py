from __future__ import annotations

import os
from pathlib import Path

import av  # noqa: F401  (before decord: decord's bundled FFmpeg breaks PyAV's VP9 encoder)
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]


def write(path: Path, content: str | bytes = b"") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)
    return path


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """The full demo (all six datasets, seed 0), written once per test session."""
    from jepa_pipe.demo.datasets import write_demo

    root = tmp_path_factory.mktemp("demo")
    write_demo(root, seed=0)
    return root
