# jepa_pipe: cache-first JEPA distillation. Stages live in workflow/rules/, one file each;
# this file only wires them together. See README.md.
#   snakemake --cores N            the whole DAG of the config (default: the embedded demo)
#   snakemake --cores N manifests  demo data (if configured) and one manifest per dataset
#   snakemake --cores N cache      frames, teacher and text caches
#   snakemake --cores N train      every experiment's student, from the caches only
#   snakemake --cores N eval_ucf101 eval_retrieval   benchmarks: student vs teacher vs random
#   snakemake --cores N eval_charades eval_coco ablations   VL-JEPA predictors, from caches
#   snakemake --cores N report     results/report.html (plots) and results/summary.md

# The demo config is the default; `--configfile RECIPE` replaces it instead of merging into it.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/cache.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/eval.smk"
include: "workflow/rules/vl.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_targets(),
