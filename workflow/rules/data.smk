# Data stage: the embedded demo datasets (official on-disk formats) and the manifests.

wildcard_constraints:
    dataset="|".join(DATASETS) or "NONE",


rule manifests:
    input:
        all_manifests(),


if DEMO is not None:

    rule demo_data:
        output:
            directory(f"{DEMO['out']}/{{dataset}}"),
        params:
            out=lambda wc, output: os.path.dirname(output[0]),
            seed=DEMO["seed"],
            scale=lambda wc: DEMO.get("dataset_scale", {}).get(wc.dataset, DEMO["scale"]),
        log:
            log_path("demo_data", "{dataset}"),
        benchmark:
            benchmark_path("demo_data", "{dataset}")
        conda:
            "../envs/jepa_pipe.yaml"
        shell:
            "python -m jepa_pipe demo-data --out {params.out} --dataset {wildcards.dataset}"
            " --seed {params.seed} --scale {params.scale} > {log} 2>&1"


rule manifest:
    input:
        dataset_root_input,
    output:
        manifest_path("{dataset}"),
    params:
        root=lambda wc: DATASETS[wc.dataset]["root"],
        splits=lambda wc: ",".join(DATASETS[wc.dataset]["splits"]),
    log:
        log_path("manifest", "{dataset}"),
    benchmark:
        benchmark_path("manifest", "{dataset}")
    conda:
        "../envs/jepa_pipe.yaml"
    shell:
        "python -m jepa_pipe manifest --dataset {wildcards.dataset} --root {params.root:q}"
        " --split {params.splits} --out {output} > {log} 2>&1"
