#!/usr/bin/env bash
# `entropy-mcmc sample` with --compile off, on with an empty inductor cache (cold: a first compile), and on again
# with the cache that run filled (warm), alternating, REPEATS times; prints each run's wall and user CPU seconds
# (GNU time), its warmup/sampling times, ESS line and compile line, and the load.
#
#     bash benchmarks/compile_ab.sh [repeats] [sample options ...]
set -euo pipefail
cd "$(dirname "$0")/.."
REPEATS=${1:-3}
shift $(( $# >= 1 ? 1 : 0 ))
ARGS=${*:-"--target german --kernel hmc --chains 256 --warmup 500 --draws 1000 --seed 0"}
CACHES=$(mktemp -d)
trap 'rm -rf "$CACHES"' EXIT
for r in $(seq "$REPEATS"); do
  for v in off cold warm; do
    mode=on; [ $v = off ] && mode=off
    echo -n "$v load $(cut -d' ' -f1 /proc/loadavg) "
    /usr/bin/time -f "wall %e s user %U s" env TORCHINDUCTOR_CACHE_DIR="$CACHES/$r" \
      .venv/bin/entropy-mcmc sample $ARGS --compile $mode --no-progress --no-summary 2>&1 \
      | grep -E "^warmup|min ESS bulk|^compile|wall" | tr '\n' ' '
    echo
  done
done
