"""Downstream evaluation from caches: features of frozen students, linear probes, retrieval
heads, and the metric definitions they share (``jepa_pipe.eval.metrics``)."""

# The registered benchmarks (jepa_pipe.eval.benchmarks), named here so the CLI can list them
# without importing torch; a test keeps the two equal.
BENCHMARK_NAMES = ("charades", "coco", "msrvtt", "msvd", "ucf101")
