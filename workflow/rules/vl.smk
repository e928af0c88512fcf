# VL-JEPA stage: segment tables of segmented datasets (Charades-STA), predictors trained from
# the caches only, and their benchmarks: eval_charades (moment retrieval), eval_coco (probe,
# image-text retrieval, masked-patch loss by caption) and ablations (a grid from one pass).


wildcard_constraints:
    vl_experiment="|".join(re.escape(e) for e in vl_experiments()) or "NONE",
    vl_benchmark="charades|coco",


rule segments:
    input:
        manifest=manifest_path("{dataset}"),
        root=dataset_root_input,
    output:
        f"{PATHS['manifests']}/{{dataset}}.segments.parquet",
    params:
        config=RESOLVED_CONFIG,
    threads: config["cache"]["decode_workers"]
    log:
        log_path("segments", "{dataset}"),
    benchmark:
        benchmark_path("segments", "{dataset}")
    conda:
        "../envs/jepa_pipe.yaml"
    shell:
        "python -m jepa_pipe segments --config {params.config} --dataset {wildcards.dataset}"
        " > {log} 2>&1"


rule train_predictor:
    input:
        vl_caches,
    output:
        predictor=f"{RUNS}/{{vl_experiment}}/predictor.pt",
        metrics=report(
            f"{RUNS}/{{vl_experiment}}/metrics.parquet",
            caption="../report/train_metrics.rst",
            category="Training",
        ),
        summary=f"{RUNS}/{{vl_experiment}}/summary.json",
    params:
        config=RESOLVED_CONFIG,
    threads: 2
    log:
        log_path("train", "{vl_experiment}"),
    benchmark:
        benchmark_path("train", "{vl_experiment}")
    conda:
        "../envs/jepa_pipe.yaml"
    shell:
        "OMP_NUM_THREADS={threads} python -m jepa_pipe train --config {params.config}"
        " --experiment {wildcards.vl_experiment} --no-progress > {log} 2>&1"


rule eval_charades:
    input:
        vl_results("charades"),


rule eval_coco:
    input:
        vl_results("coco"),


rule ablations:
    input:
        ablation_results(),


rule eval_vl:
    input:
        vl_caches,
        predictor=f"{RUNS}/{{vl_experiment}}/predictor.pt",
    output:
        report(
            f"{RESULTS}/{{vl_experiment}}/{{vl_benchmark}}.json",
            caption="../report/eval_result.rst",
            category="Benchmarks",
        ),
    params:
        config=RESOLVED_CONFIG,
    threads: 2
    log:
        log_path("eval", "{vl_experiment}.{vl_benchmark}"),
    benchmark:
        benchmark_path("eval", "{vl_experiment}.{vl_benchmark}")
    conda:
        "../envs/jepa_pipe.yaml"
    shell:
        "OMP_NUM_THREADS={threads} python -m jepa_pipe eval {wildcards.vl_benchmark}"
        " --config {params.config} --experiment {wildcards.vl_experiment} > {log} 2>&1"


rule ablation_grid:
    input:
        vl_caches,
    output:
        table=report(
            f"{RESULTS}/ablations/{{vl_experiment}}.json",
            caption="../report/eval_result.rst",
            category="Ablations",
        ),
        plot=f"{RESULTS}/ablations/{{vl_experiment}}.png",
    params:
        config=RESOLVED_CONFIG,
    threads: 2
    log:
        log_path("ablations", "{vl_experiment}"),
    benchmark:
        benchmark_path("ablations", "{vl_experiment}")
    conda:
        "../envs/jepa_pipe.yaml"
    shell:
        "OMP_NUM_THREADS={threads} python -m jepa_pipe ablations --config {params.config}"
        " --experiment {wildcards.vl_experiment} --out {output.table} > {log} 2>&1"
