"""Token caches: the contract between the teacher pass and everything after it."""

from jepa_pipe.cache.store import CacheError, open_store  # noqa: F401
