#!/usr/bin/env bash
# scripts/checksrc must fail on what it exists to catch: run it on a scratch tree with one
# planted fault at a time, and once on a clean tree.
set -uo pipefail
src_root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

fresh() {
    rm -rf "$tmp/t"
    mkdir -p "$tmp/t/scripts" "$tmp/t/src/util" "$tmp/t/src/protocols/demo" "$tmp/t/src/swarm" \
             "$tmp/t/include" "$tmp/t/apps" "$tmp/t/tests" "$tmp/t/bench"
    cp "$src_root/scripts/checksrc" "$tmp/t/scripts/"
    printf 'int demo_core(int x)\n{\n    return x + 1;\n}\n' > "$tmp/t/src/protocols/demo/demo.c"
    printf '#include <uv.h>\nvoid demo_bind(uv_loop_t *l)\n{\n    uv_run(l, UV_RUN_NOWAIT);\n}\n' \
        > "$tmp/t/src/protocols/demo/demo_uv.c"
    printf '#include "swarm/swarm.h"\n' > "$tmp/t/src/swarm/host_uv.c"
}

expect() { # expect ok|fail WHAT
    local out rc
    out=$("$tmp/t/scripts/checksrc" 2>&1); rc=$?
    if { [ "$1" = ok ] && [ $rc -ne 0 ]; } || { [ "$1" = fail ] && [ $rc -eq 0 ]; }; then
        echo "FAIL: $2: checksrc exited $rc"; echo "$out"; fails=$((fails + 1))
    else
        echo "ok: $2"
    fi
}

fresh
expect ok "clean tree (bindings may call libuv, src/swarm may include its headers)"
fresh
printf 'void demo_tick(void *l)\n{\n    uv_now(l);\n}\n' >> "$tmp/t/src/protocols/demo/demo.c"
expect fail "a core calls uv_now"
fresh
printf '#include <uv.h>\n' >> "$tmp/t/src/protocols/demo/demo.c"
expect fail "a core includes uv.h"
fresh
printf '#include "swarm/swarm.h"\n' >> "$tmp/t/src/protocols/demo/demo_uv.c"
expect fail "a protocol includes the host's private header"
fresh
printf 'long t(void)\n{\n    return (long)time(0);\n}\n' >> "$tmp/t/src/protocols/demo/demo.c"
expect fail "a core reads the clock"
fresh
printf 'void c(char *d, const char *s)\n{\n    strcpy(d, s);\n}\n' >> "$tmp/t/src/util/x.c"
expect fail "a banned function"

echo "$((6 - fails)) passed, $fails failed"
[ $fails -eq 0 ]
