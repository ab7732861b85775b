#!/usr/bin/env bash
# Run every libFuzzer target in BUILDDIR for SECONDS each, starting from the committed corpus.
# New inputs go to a scratch directory, so the checked-in corpus only changes by hand.
# Prints one line per target with its exec count; fails on the first crash, leak or UB.
set -euo pipefail
dir=${1:?usage: fuzz.sh BUILDDIR SECONDS}
secs=${2:-5}
root="$(cd "$(dirname "$0")/.." && pwd)"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
shopt -s nullglob
n=0
for bin in "$dir"/fuzz_*; do
    [ -x "$bin" ] || continue
    name=$(basename "$bin"); target=${name#fuzz_}
    corpus="$root/tests/fuzz/corpus/$target"
    mkdir -p "$scratch/$target"
    log="$scratch/$target.log"
    if ! "$bin" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
            "$scratch/$target" "$corpus" >"$log" 2>&1; then
        tail -n 60 "$log"
        echo "fuzz: $target FAILED (log above)"
        exit 1
    fi
    execs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
    cov=$(grep -E '^#[0-9]+.*DONE' "$log" | grep -oE 'cov: [0-9]+' | head -1)
    echo "fuzz: $target ok, ${secs}s, ${execs:-?} execs, ${cov:-cov: ?}"
    n=$((n + 1))
done
echo "fuzz: $n targets, 0 failed"
