"""jepa_pipe: cache-first, offline pipeline for JEPA-style video and vision-language learning."""

from __future__ import annotations

import logging

__version__ = "0.1.0"

logger = logging.getLogger("jepa_pipe")


class JepaPipeError(Exception):
    """An error caused by the user's input (config, data, caches): printed without a traceback."""


def get_logger(name: str | None = None) -> logging.Logger:
    """The package's named logger, or a child of it (``jepa_pipe.<name>``)."""
    return logger if name is None else logger.getChild(name)
