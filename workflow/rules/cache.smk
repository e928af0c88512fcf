# Cache stage: decode once, run each frozen teacher once, write verified float16 zarr stores.
#   tiny_teacher -> cache_init -> cache_part (x parts) -> cache_finalize (per store)
#   cache_text (per dataset with a text teacher)


wildcard_constraints:
    part=r"\d+",
    parts=r"\d+",
    teacher="|".join(TEACHERS) or "NONE",
    store="|".join(sorted({re.escape(s) for d in DATASETS for s in cache_stores(d)})) or "NONE",
    text_store="|".join({text_teacher(d) for d in DATASETS if text_teacher(d)}) or "NONE",


rule cache:
    input:
        all_cache_summaries(),


rule tiny_teacher:
    output:
        directory(tiny_checkpoint(CACHE, "{teacher}")),
    params:
        kind=lambda wc: TEACHERS[wc.teacher]["kind"],
        args=lambda wc: tiny_teacher_args(wc.teacher),
    log:
        log_path("tiny_teacher", "{teacher}"),
    benchmark:
        benchmark_path("tiny_teacher", "{teacher}")
    conda:
        "../envs/jepa_pipe.yaml"
    shell:
        "python -m jepa_pipe tiny-teacher --kind {params.kind} {params.args} --out {output} --seed 0"
        " > {log} 2>&1"


rule cache_init:
    input:
        manifest=manifest_path("{dataset}"),
        segments=lambda wc: segment_tables(wc.dataset),
        teachers=lambda wc: tiny_teacher_dirs(video_teachers(wc.dataset)),
    output:
        f"{CACHE}/{{dataset}}/.init.json",
    params:
        config=RESOLVED_CONFIG,
    log:
        log_path("cache_init", "{dataset}"),
    benchmark:
        benchmark_path("cache_init", "{dataset}")
    conda:
        "../envs/jepa_pipe.yaml"
    shell:
        "python -m jepa_pipe cache-init --config {params.config} --dataset {wildcards.dataset}"
        " --out {output} > {log} 2>&1"


rule cache_part:
    input:
        f"{CACHE}/{{dataset}}/.init.json",
        lambda wc: dataset_root_input(wc),
    output:
        f"{CACHE}/{{dataset}}/.parts/{{part}}-of-{{parts}}.json",
    params:
        config=RESOLVED_CONFIG,
    threads: config["cache"]["decode_workers"] + 1
    resources:
        gpu=lambda wc: 0 if config["cache"]["device"] == "cpu" else 1,
    log:
        log_path("cache_part", "{dataset}.{part}-of-{parts}"),
    benchmark:
        benchmark_path("cache_part", "{dataset}.{part}-of-{parts}")
    conda:
        "../envs/jepa_pipe.yaml"
    shell:
        "python -m jepa_pipe cache-part --config {params.config} --dataset {wildcards.dataset}"
        " --part {wildcards.part} --parts {wildcards.parts} --out {output} > {log} 2>&1"


rule cache_finalize:
    input:
        lambda wc: cache_parts(wc.dataset),
    output:
        report(
            f"{CACHE}/{{dataset}}/{{store}}.summary.json",
            caption="../report/cache_summary.rst",
            category="Caches",
        ),
    params:
        config=RESOLVED_CONFIG,
    log:
        log_path("cache_finalize", "{dataset}.{store}"),
    benchmark:
        benchmark_path("cache_finalize", "{dataset}.{store}")
    conda:
        "../envs/jepa_pipe.yaml"
    shell:
        "python -m jepa_pipe cache-finalize --config {params.config}"
        " --dataset {wildcards.dataset} --store {wildcards.store} > {log} 2>&1"


rule cache_text:
    input:
        manifest=manifest_path("{dataset}"),
        teachers=lambda wc: tiny_teacher_dirs([text_teacher(wc.dataset)]),
    output:
        f"{CACHE}/{{dataset}}/{{text_store}}.summary.json",
    params:
        config=RESOLVED_CONFIG,
    resources:
        gpu=lambda wc: 0 if config["cache"]["device"] == "cpu" else 1,
    log:
        log_path("cache_text", "{dataset}.{text_store}"),
    benchmark:
        benchmark_path("cache_text", "{dataset}.{text_store}")
    conda:
        "../envs/jepa_pipe.yaml"
    shell:
        "python -m jepa_pipe cache-text --config {params.config} --dataset {wildcards.dataset}"
        " > {log} 2>&1"
