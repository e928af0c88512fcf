#!/usr/bin/env bash
# The GPU rows of the README's Figures: teacher throughput, end-to-end cache throughput and
# training step time / memory at the recipes' real model sizes (config/gpu_bench.yaml).
# Run from the repository root on a CUDA machine with jepa_pipe's dependencies installed:
#   bash scripts/gpu_bench.sh [OUT_DIR]
# Everything is written under data/gpu/ (clips, manifests, random full-size checkpoints,
# caches); each figure is one JSON line on stdout and one file in OUT_DIR (default
# data/gpu/figures). Each stage has a time limit (LIMIT_S, default 240 s) so one slow stage
# cannot hide the others' figures. STAGES (default "cache train") picks the benchmarks:
# cache = bench cache per dataset; train = full cache builds then bench train per recipe.
set -uo pipefail
STAGES=${STAGES:-cache train}
CFG=config/gpu_bench.yaml
FIG=${1:-data/gpu/figures}
LIMIT_S=${LIMIT_S:-240}
W=data/gpu
mkdir -p "$FIG" "$W/manifests"
run() {
    echo "[$(date +%T)] $*" >&2
    timeout "$LIMIT_S" python -m jepa_pipe "$@" || echo "[$(date +%T)] exit $?: $*" >&2
}

[ -d $W/ssv2 ] || run demo-data --out $W --dataset ssv2 --dataset ucf101 --scale 4 --seed 0
run manifest --dataset ssv2 --root $W/ssv2 --split train --split validation \
    --out $W/manifests/ssv2.parquet > /dev/null
run manifest --dataset ucf101 --root $W/ucf101 --split train --split test \
    --out $W/manifests/ucf101.parquet > /dev/null
# random checkpoints of the real architectures (two configs share VideoMAE-H's)
T=$W/cache/teachers
[ -d $T/videomae_h ] || run tiny-teacher --kind videomae --size full --image-size 224 --out $T/videomae_h
[ -e $T/videomae_h_pca ] || ln -s videomae_h $T/videomae_h_pca
[ -d $T/vjepa2_l ] || run tiny-teacher --kind vjepa2 --size full --image-size 256 --out $T/vjepa2_l
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$FIG/gpu.txt"

if [[ " $STAGES " == *" cache "* ]]; then
    # --isolate: the pass also without writes, and without writes or decoding, so a lease
    # where end to end falls short says which stage costs what
    run bench cache --config $CFG --dataset ucf101 --limit 200 --isolate | tee "$FIG/cache_ucf101.json"
    run bench cache --config $CFG --dataset ssv2 --limit 256 --isolate | tee "$FIG/cache_ssv2.json"
    PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} timeout "$LIMIT_S" python scripts/gpu_graph_check.py | tee "$FIG/cuda_graphs.txt"
fi
[[ " $STAGES " == *" train "* ]] || exit 0
run cache --config $CFG --dataset ssv2 > "$FIG/build_ssv2.json"
for exp in st_jepa vjepa; do
    run bench train --config $CFG --experiment $exp --steps 12 | tee "$FIG/train_$exp.json"
done
run cache --config $CFG --dataset ucf101 > "$FIG/build_ucf101.json"
run bench train --config $CFG --experiment vjepa2 --steps 12 | tee "$FIG/train_vjepa2.json"
echo "[$(date +%T)] done" >&2
