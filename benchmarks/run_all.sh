#!/usr/bin/env bash
# Run every benchmarks/*.py one after another on this machine and keep each one's output in
# benchmarks/results/<name>.txt (committed: the figures in benchmarks/README.md come from these files).
#
#   bash benchmarks/run_all.sh                 # all benchmarks, default sizes
#   bash benchmarks/run_all.sh eval_generation # only the ones named
#
# Sequential on purpose: the benchmarks measure throughput and memory, so two at once would skew each other.
# A failing benchmark is reported and the others still run; the exit status is 1 if any failed.
set -uo pipefail

cd "$(dirname "$0")/.."
# Benchmark this checkout, not whichever hf_medvlm happens to be installed.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PYTHON="${PYTHON:-python}"
RESULTS=benchmarks/results
mkdir -p "$RESULTS"

# Arguments per script: each script's documented example (see its docstring). A script not listed here runs with
# its own defaults, so a new benchmark is picked up without editing this file.
args_for() {
  case "$1" in
    bench_hub_push) echo "--rows 1000000 --rows_per_shard 100000" ;;
    convert_memory) echo "--layers 30 --shards 4" ;;
    eval_generation) echo "--num_questions 64 --batch_size 16 --max_new_tokens 32" ;;
    generate_overhead) echo "--requests 2000 --sleep_ms 50" ;;
    prepare_throughput) echo "--sizes 10000 50000" ;;
    startup) echo "--runs 3" ;;
    train_throughput) echo "--samples 48 --batch_size 4" ;;  # the default 256 samples takes over 20 minutes on 2 cores
    *) echo "" ;;
  esac
}

if [ "$#" -gt 0 ]; then
  names=("$@")
else
  names=()
  for script in benchmarks/*.py; do
    names+=("$(basename "$script" .py)")
  done
fi

failed=()
{
  echo "# benchmarks/run_all.sh on $(hostname) at $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "# commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown); $(nproc) CPU cores"
  "$PYTHON" -c "import platform, torch; print('# python', platform.python_version(), '| torch', torch.__version__)"
} | tee "$RESULTS/_environment.txt"

for name in "${names[@]}"; do
  script="benchmarks/$name.py"
  if [ ! -f "$script" ]; then
    echo "run_all.sh: no such benchmark: $script" >&2
    failed+=("$name")
    continue
  fi
  # shellcheck disable=SC2046  # the argument string is split on purpose
  set -- $(args_for "$name")
  echo "=== $name: $PYTHON $script $*"
  start=$(date +%s)
  {
    echo "\$ python $script $*"
    "$PYTHON" "$script" "$@" 2>&1
  } | tee "$RESULTS/$name.txt"
  status=${PIPESTATUS[0]}
  echo "=== $name: exit $status after $(( $(date +%s) - start )) s"
  [ "$status" -eq 0 ] || failed+=("$name")
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "run_all.sh: failed: ${failed[*]}" >&2
  exit 1
fi
echo "run_all.sh: all ${#names[@]} benchmarks done; outputs in $RESULTS/"
