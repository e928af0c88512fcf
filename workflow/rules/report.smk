# Report stage: the results table over every benchmark result, and one self-contained HTML
# page with the plots (training loss, probe bars, retrieval R@K, cache statistics).


rule eval_summary:
    input:
        all_results(),
    output:
        markdown=f"{RESULTS}/summary.md",
        table=f"{RESULTS}/summary.parquet",
    log:
        log_path("report", "summary"),
    benchmark:
        benchmark_path("report", "summary")
    conda:
        "../envs/jepa_pipe.yaml"
    shell:
        "python -m jepa_pipe summary {input} --markdown {output.markdown}"
        " --parquet {output.table} > {log} 2>&1"


rule report:
    input:
        rules.eval_summary.output,
        all_cache_summaries(),
        [f"{RUNS}/{e}/metrics.parquet" for e in trained_experiments() + vl_experiments()],
        ablation_results(),
    output:
        report(f"{RESULTS}/report.html", caption="../report/report.rst", category="Report"),
    params:
        config=RESOLVED_CONFIG,
    log:
        log_path("report", "report"),
    benchmark:
        benchmark_path("report", "report")
    conda:
        "../envs/jepa_pipe.yaml"
    shell:
        "python -m jepa_pipe report --config {params.config} --out {output} > {log} 2>&1"
