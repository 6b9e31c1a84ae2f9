#!/usr/bin/env bash
# `entropy-mcmc sample` with the code of an older revision and of the working tree, alternating, REPEATS times;
# prints each run's ESS line, its wall and user CPU seconds and its peak resident memory (GNU time).
#
#     bash benchmarks/ab_versions.sh 657184a [repeats] [sample options ...]
set -euo pipefail
cd "$(dirname "$0")/.."
REV=${1:?usage: ab_versions.sh REVISION [REPEATS] [sample options]}
REPEATS=${2:-3}
shift $(( $# >= 2 ? 2 : 1 ))
ARGS=${*:-"--target german --kernel hmc --chains 256 --warmup 500 --draws 1000 --seed 0"}
OLD=$(mktemp -d)
git worktree add -q --detach "$OLD" "$REV"
trap 'git worktree remove --force "$OLD"' EXIT
for r in $(seq "$REPEATS"); do
  for v in old new; do
    if [ $v = old ]; then P=$OLD; else P=$PWD; fi
    /usr/bin/time -f "$v wall %e s user %U s maxrss %M KiB" env PYTHONPATH="$P" .venv/bin/python -c \
      "import sys; from entropy_mcmc.cli import main; sys.exit(main(sys.argv[1:]))" \
      sample $ARGS --no-progress --no-summary --out "$OLD/ab_$v.nc" 2>&1 | grep -E "min ESS bulk|wall" | tr '\n' ' '
    echo " load $(cut -d' ' -f1 /proc/loadavg)"
  done
done
