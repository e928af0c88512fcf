# Eval stage: every trained experiment on the config's benchmarks, from caches and frozen
# students. Student and random-init features are computed once per (experiment, dataset) and
# kept under runs/{experiment}/features/; teacher features are the cache's `pooled` array.


wildcard_constraints:
    benchmark="|".join(BENCHMARKS) or "NONE",


rule eval_ucf101:
    input:
        benchmark_results("ucf101"),


rule eval_retrieval:
    input:
        benchmark_results("msrvtt", "msvd"),


rule eval_features:
    input:
        student=student_path("{experiment}"),
        frames=frames_summaries,
    output:
        student=f"{RUNS}/{{experiment}}/features/{{dataset}}/student.npz",
        random=f"{RUNS}/{{experiment}}/features/{{dataset}}/random.npz",
    params:
        config=RESOLVED_CONFIG,
    threads: 2
    log:
        log_path("eval_features", "{experiment}.{dataset}"),
    benchmark:
        benchmark_path("eval_features", "{experiment}.{dataset}")
    conda:
        "../envs/jepa_pipe.yaml"
    shell:
        "OMP_NUM_THREADS={threads} python -m jepa_pipe features --config {params.config}"
        " --experiment {wildcards.experiment} --dataset {wildcards.dataset} > {log} 2>&1"


rule eval_benchmark:
    input:
        eval_inputs,
    output:
        report(
            f"{RESULTS}/{{experiment}}/{{benchmark}}.json",
            caption="../report/eval_result.rst",
            category="Benchmarks",
        ),
    params:
        config=RESOLVED_CONFIG,
    threads: 2
    log:
        log_path("eval", "{experiment}.{benchmark}"),
    benchmark:
        benchmark_path("eval", "{experiment}.{benchmark}")
    conda:
        "../envs/jepa_pipe.yaml"
    shell:
        "OMP_NUM_THREADS={threads} python -m jepa_pipe eval {wildcards.benchmark}"
        " --config {params.config} --experiment {wildcards.experiment} > {log} 2>&1"
