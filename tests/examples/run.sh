#!/usr/bin/env bash
# CTest `examples_hello` (label examples): the out-of-tree example is built against an installed
# cp2p only, the proof that a user can write a protocol as the built-in ones are written.
#   1. examples/hello/*.c include nothing but <...> headers (cp2p's public ones, the system's);
#   2. `cmake --install BUILD_DIR --prefix TMP`; the installed packages must not point back
#      into the source or build tree;
#   3. a copy of examples/hello, outside the tree, is built four ways: `cc ... $(pkg-config
#      --cflags --libs cp2p)` (shared library), its Makefile's hello-static (libcp2p.a), and
#      CMake find_package(cp2p) with cp2p::cp2p and cp2p::cp2p_static; `pkg-config --static
#      --libs cp2p` must list the libraries of every module cp2p requires;
#   4. two pairs of them run on 127.0.0.1 with --count 1: each must receive the other's greeting
#      and exit 0 within HELLO_TIMEOUT seconds (60) or both are killed and the test fails; a
#      node without --count must exit 0 on SIGTERM.
# Usage: run.sh BUILD_DIR. Environment: CC and CMAKE (CTest passes the build's), HELLO_TIMEOUT.
set -euo pipefail
build=$(cd "${1:?usage: run.sh BUILD_DIR}" && pwd)
src=$(cd "$(dirname "$0")/../.." && pwd)
CC=${CC:-cc}
CMAKE=${CMAKE:-cmake}
LIMIT=${HELLO_TIMEOUT:-60}
tmp=$(mktemp -d)
pids=()

cleanup() {
    for p in "${pids[@]}"; do
        kill -9 "$p" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

# Print why and the programs' output (to stderr: fail may run inside $(...)), then exit 1.
fail() {
    {
        echo "FAIL: $*"
        for f in "$tmp"/run/*; do
            if [ -f "$f" ]; then
                echo "--- ${f##*/}"
                cat "$f"
            fi
        done
    } >&2
    exit 1
}

step() { echo "== $*"; }

# 1. Only installed headers: every #include is <...> and none names a source path.
step "includes of examples/hello"
bad=$(grep -nE '^[[:space:]]*#[[:space:]]*include' "$src"/examples/hello/*.c |
      grep -vE '#[[:space:]]*include[[:space:]]*<[A-Za-z0-9_./-]+>' || true)
bad+=${bad:+$'\n'}$(grep -nE '^[[:space:]]*#[[:space:]]*include.*(src/|\.\./)' "$src"/examples/hello/*.c || true)
[ -z "$bad" ] || fail "examples/hello includes more than public headers:"$'\n'"$bad"

# 2. Install.
step "cmake --install $build --prefix (temporary)"
prefix=$tmp/prefix
"$CMAKE" --install "$build" --prefix "$prefix" >"$tmp/install.log" || {
    cat "$tmp/install.log"
    fail "cmake --install"
}
pc=$(find "$prefix" -name cp2p.pc)
[ -n "$pc" ] || fail "no cp2p.pc installed"
pcdir=$(dirname "$pc")
libdir=$(dirname "$pcdir")
[ -f "$libdir/cmake/cp2p/cp2pConfig.cmake" ] || fail "no cp2pConfig.cmake in $libdir/cmake/cp2p"
if grep -rlF -e "$src" -e "$build" "$pcdir" "$libdir/cmake"; then
    fail "an installed package file points into the source or build tree"
fi
[ "$(ls "$prefix/include")" = cp2p ] || fail "more than include/cp2p installed"

# 3. Build a copy of the example, outside the tree.
cp -r "$src/examples/hello" "$tmp/hello"
export PKG_CONFIG_PATH=$pcdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
step "pkg-config: $(pkg-config --cflags --libs cp2p)"
"$CC" -Wall -Wextra -Werror -o "$tmp/hello-pc" "$tmp/hello/hello.c" \
    $(pkg-config --cflags --libs cp2p) || fail "cc with pkg-config cp2p"
# --static lists what libcp2p.a needs: every library of every required module.
static_libs=" $(pkg-config --static --libs cp2p) " || fail "pkg-config --static --libs cp2p"
for m in $(pkg-config --print-requires --print-requires-private cp2p); do
    for l in $(pkg-config --libs-only-l "$m"); do
        [[ $static_libs == *" $l "* ]] || fail "pkg-config --static --libs cp2p lacks $l ($m)"
    done
done
step "libcp2p.a: make hello-static"
make -s -C "$tmp/hello" hello-static CC="$CC" CFLAGS="-O2 -Wall -Wextra -Werror" ||
    fail "make hello-static"
if readelf -d "$tmp/hello/hello-static" | grep -q 'libcp2p'; then
    fail "hello-static depends on the shared libcp2p"
fi
for variant in shared static; do
    step "CMake find_package(cp2p): $variant"
    flag=OFF
    [ "$variant" = static ] && flag=ON
    "$CMAKE" -S "$tmp/hello" -B "$tmp/cmake-$variant" -DCMAKE_PREFIX_PATH="$prefix" \
        -DCMAKE_C_COMPILER="$CC" -DCMAKE_C_FLAGS=-Werror -DHELLO_STATIC=$flag \
        >"$tmp/cmake-$variant.log" 2>&1 &&
        "$CMAKE" --build "$tmp/cmake-$variant" >>"$tmp/cmake-$variant.log" 2>&1 || {
        cat "$tmp/cmake-$variant.log"
        fail "CMake build ($variant)"
    }
done

# 4. Run them. The pkg-config build finds the shared library through LD_LIBRARY_PATH, the
# CMake one through its RUNPATH.
mkdir "$tmp/run"
pc_shared=(env "LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$tmp/hello-pc")
deadline=0

# Start `name binary args...` in the background, output in run/name.out and run/name.err.
start() {
    local name=$1
    shift
    "$@" >"$tmp/run/$name.out" 2>"$tmp/run/$name.err" &
    pids+=($!)
    eval "pid_$name=$!"
}

# The first line of run/$1.out (its address) once written; fails after the deadline.
address() {
    local f=$tmp/run/$1.out
    while ! head -1 "$f" 2>/dev/null | grep -q '/p2p/'; do
        [ "$SECONDS" -lt "$deadline" ] || fail "$1 printed no address"
        sleep 0.1
    done
    head -1 "$f"
}

# Wait for process $1 to exit and check its status is 0; fails (killing it) after the deadline.
finished() {
    local name=$1 pid rc=0
    eval "pid=\$pid_$name"
    while kill -0 "$pid" 2>/dev/null; do
        [ "$SECONDS" -lt "$deadline" ] || fail "$name still running after ${LIMIT}s"
        sleep 0.1
    done
    wait "$pid" || rc=$?
    [ "$rc" -eq 0 ] || fail "$name exited with status $rc"
}

# Pair: A (named $1, command in the array named $2) listens, B ($3, $4) dials it; each must
# print the other's greeting and exit 0.
pair() {
    local a=$1 b=$3 addr_a addr_b
    local -n cmd_a=$2 cmd_b=$4
    step "run: $a <- $b"
    deadline=$((SECONDS + LIMIT))
    start "$a" "${cmd_a[@]}" --listen /ip4/127.0.0.1/tcp/0 --count 1
    addr_a=$(address "$a")
    start "$b" "${cmd_b[@]}" --listen /ip4/127.0.0.1/tcp/0 --peer "$addr_a" --count 1
    addr_b=$(address "$b")
    finished "$a"
    finished "$b"
    local id_a=${addr_a##*/p2p/} id_b=${addr_b##*/p2p/}
    grep -qxF "greeting 1 from $id_b: hello from $id_b" "$tmp/run/$a.out" ||
        fail "$a did not report $b's greeting"
    grep -qxF "greeting 1 from $id_a: hello from $id_a" "$tmp/run/$b.out" ||
        fail "$b did not report $a's greeting"
    grep -qxF "greeted $id_b" "$tmp/run/$a.out" || fail "$a did not greet $b"
    grep -qxF "greeted $id_a" "$tmp/run/$b.out" || fail "$b did not greet $a"
}

cmake_shared=("$tmp/cmake-shared/hello")
cmake_static=("$tmp/cmake-static/hello")
pc_static=("$tmp/hello/hello-static")
pair pc_shared pc_shared cmake_shared cmake_shared
pair cmake_static cmake_static pc_static pc_static

step "run: SIGTERM closes a node"
deadline=$((SECONDS + LIMIT))
start alone "${pc_shared[@]}" --listen /ip4/127.0.0.1/tcp/0
address alone >/dev/null
kill -TERM "$pid_alone"
finished alone
grep -qx closing "$tmp/run/alone.out" || fail "alone did not close on SIGTERM"

echo "PASS: examples/hello built against the installed cp2p (pkg-config, static, CMake) and run"
