#!/usr/bin/env bash
# Builds the eBPF programs bpfkit ships: every bpf/<dir>/*.bpf.c into
# bpf/<dir>/<name>.bpf.o, with clang-19 and a vmlinux.h generated from the
# running kernel's BTF. The objects are committed so that building bpfkit
# needs no clang; `build.sh --check` rebuilds into a temporary directory and
# fails if any committed object differs from its source.
set -euo pipefail
cd "$(dirname "$0")"
CLANG=${CLANG:-clang-19}
BPFTOOL=${BPFTOOL:-bpftool}

check=false
[ "${1:-}" = "--check" ] && check=true

gen=include/generated
mkdir -p "$gen"
if [ ! -s "$gen/vmlinux.h" ]; then
    if [ ! -r /sys/kernel/btf/vmlinux ]; then
        echo "build.sh: /sys/kernel/btf/vmlinux is missing: this kernel has no BTF" >&2
        exit 1
    fi
    "$BPFTOOL" btf dump file /sys/kernel/btf/vmlinux format c > "$gen/vmlinux.h.tmp"
    mv "$gen/vmlinux.h.tmp" "$gen/vmlinux.h"
fi

out_root=.
$check && out_root=$(mktemp -d) && trap 'rm -rf "$out_root"' EXIT

stale=()
for src in */*.bpf.c; do
    dir=$(dirname "$src")
    [ "$dir" = tests ] && continue
    obj="$dir/$(basename "$src" .c).o"
    mkdir -p "$out_root/$dir"
    # -fdebug-prefix-map keeps the checkout's path out of the object, so the
    # same source gives the same bytes wherever it is built.
    "$CLANG" -target bpf -O2 -g -Wall -Werror -D__TARGET_ARCH_x86 \
        -fdebug-prefix-map="$PWD"=. -I include -I "$gen" \
        -c "$src" -o "$out_root/$obj"
    if $check && ! cmp -s "$out_root/$obj" "$obj"; then
        stale+=("$obj")
    fi
done

if $check; then
    if [ ${#stale[@]} -gt 0 ]; then
        echo "build.sh --check: these objects do not match their sources (run bpf/build.sh and commit):" >&2
        printf '  %s\n' "${stale[@]}" >&2
        exit 1
    fi
    echo "build.sh --check: all objects are up to date"
fi
