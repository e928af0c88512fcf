"""Downstream evaluation from caches: features of frozen students, linear probes, retrieval
heads, and the metric definitions they share (``jepa_pipe.eval.metrics``)."""
