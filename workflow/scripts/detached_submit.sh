#!/usr/bin/env bash
# A submit command for Snakemake's generic cluster executor that behaves like a scheduler on
# one machine: each job script runs as its own detached process (new session, no terminal),
# and the job id printed is that process's pid. Used by profiles/cluster-generic and by the
# test proving the workflow runs unchanged under a non-local executor.
#   snakemake --profile profiles/cluster-generic cache
set -euo pipefail
jobscript="${@: -1}"
mkdir -p logs/cluster
name=$(basename "$jobscript" .sh)
setsid bash "$jobscript" > "logs/cluster/$name.out" 2>&1 < /dev/null &
echo "$!"
echo "$! $name" >> logs/cluster/submitted.txt
