# Train stage: every experiment's student and predictor from its dataset's frames store and
# teacher cache; no teacher runs. An interrupted job resumes from runs/{experiment}/checkpoints
# (not a declared output, so Snakemake keeps it when a job fails).


wildcard_constraints:
    experiment="|".join(re.escape(e) for e in trained_experiments()) or "NONE",


rule train:
    input:
        all_students(),
        all_predictors(),


rule train_experiment:
    input:
        experiment_caches,
        manifest=lambda wc: manifest_path(EXPERIMENTS[wc.experiment]["dataset"]),
    output:
        student=student_path("{experiment}"),
        metrics=report(
            f"{RUNS}/{{experiment}}/metrics.parquet",
            caption="../report/train_metrics.rst",
            category="Training",
        ),
        summary=f"{RUNS}/{{experiment}}/summary.json",
    params:
        config=RESOLVED_CONFIG,
    # training is compute-bound: torch gets the job's threads (Snakemake caps them at
    # --cores), so two jobs never oversubscribe the same cores
    threads: lambda wc: 4 + resolve_experiment(config, wc.experiment)["loader_workers"]
    resources:
        gpu=lambda wc: int(train_device(wc.experiment) != "cpu"),
    log:
        log_path("train", "{experiment}"),
    benchmark:
        benchmark_path("train", "{experiment}")
    conda:
        "../envs/jepa_pipe.yaml"
    shell:
        "OMP_NUM_THREADS={threads} python -m jepa_pipe train --config {params.config}"
        " --experiment {wildcards.experiment} --no-progress > {log} 2>&1"
