#!/usr/bin/env bash
# Builds the eBPF programs bpfkit ships: every bpf/<dir>/*.bpf.c into
# bpf/<dir>/<name>.bpf.o, with clang-19 and the committed include/vmlinux.h.
# The objects are committed so that building bpfkit needs no clang;
# `build.sh --check` rebuilds into a temporary directory and fails if any
# committed object differs from its source.
#
# vmlinux.h is committed too: bpftool versions order and place the types
# differently, which changes the objects' BTF and debug info, so generating
# it on each machine would make the same source give different bytes.
# `build.sh --regen-vmlinux` writes it afresh from the running kernel's BTF
# (then rebuild and commit the objects with it).
set -euo pipefail
cd "$(dirname "$0")"
CLANG=${CLANG:-clang-19}
BPFTOOL=${BPFTOOL:-bpftool}

check=false
case "${1:-}" in
--check) check=true ;;
--regen-vmlinux)
    if [ ! -r /sys/kernel/btf/vmlinux ]; then
        echo "build.sh: /sys/kernel/btf/vmlinux is missing: this kernel has no BTF" >&2
        exit 1
    fi
    "$BPFTOOL" btf dump file /sys/kernel/btf/vmlinux format c > include/vmlinux.h.tmp
    mv include/vmlinux.h.tmp include/vmlinux.h
    echo "build.sh: wrote include/vmlinux.h; now run build.sh and commit the objects"
    exit 0
    ;;
"") ;;
*)
    echo "usage: build.sh [--check | --regen-vmlinux]" >&2
    exit 2
    ;;
esac

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
        -fdebug-prefix-map="$PWD"=. -I include \
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
