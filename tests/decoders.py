"""Module-level decoders for DecodePool tests (workers import them by name)."""

import time

from jepa_pipe.video import decode_clip


def hang_on_marked(path, sampling, backend):
    """Behaves like a decoder that hangs holding the GIL (decord issue 373) on some files."""
    if "hang" in path:
        while True:
            time.sleep(1)
    return decode_clip(path, sampling, backend)


def crash_on_marked(path, sampling, backend):
    if "crash" in path:
        import os

        os._exit(3)
    return decode_clip(path, sampling, backend)
