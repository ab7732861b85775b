#!/usr/bin/env bash
# CTest `metrics_promtool`: the exposition of the representative registry in test_metrics.c
# (its test dump_for_promtool) must pass `promtool check metrics` -- the format check and the
# lints (counter names end in _total, help present, no camelCase, base units) -- with no
# complaint at all. Skips (exit 0, "SKIP") only when promtool is not installed.
# Usage: promtool_check.sh <path to the unit_metrics_metrics binary>
set -euo pipefail
bin=${1:?usage: promtool_check.sh <unit_metrics_metrics binary>}

if ! command -v promtool >/dev/null 2>&1; then
    echo "SKIP: promtool not found (Debian package 'prometheus'; scripts/deps.sh installs it)"
    exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
CP2P_METRICS_DUMP="$tmp/metrics.txt" "$bin" >"$tmp/unit.log" 2>&1 || {
    cat "$tmp/unit.log"
    echo "FAIL: $bin failed"
    exit 1
}
if [ ! -s "$tmp/metrics.txt" ]; then
    echo "FAIL: $bin wrote no exposition to CP2P_METRICS_DUMP"
    exit 1
fi

rc=0
promtool check metrics <"$tmp/metrics.txt" >"$tmp/promtool.log" 2>&1 || rc=$?
if [ "$rc" -ne 0 ] || [ -s "$tmp/promtool.log" ]; then
    echo "FAIL: promtool check metrics (exit $rc):"
    cat "$tmp/promtool.log"
    echo "--- exposition:"
    cat "$tmp/metrics.txt"
    exit 1
fi
echo "promtool check metrics: ok ($(grep -c '^# TYPE' "$tmp/metrics.txt") families," \
     "$(grep -vc '^#' "$tmp/metrics.txt") samples)"
