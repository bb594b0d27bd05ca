#!/usr/bin/env bash
# Runs bpfkit's whole test suite on a fresh Debian machine: installs the
# packages the tests need, mounts bpffs and tracefs when root, then runs
# cargo's tests. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else return 1
    fi
}

# package -> a file it installs
declare -A needs=(
    [clang-19]=/usr/bin/clang-19
    [llvm-19]=/usr/bin/llvm-objdump-19
    [libbpf-dev]=/usr/include/bpf/bpf_helpers.h
    [iproute2]=/usr/sbin/ip
    [iputils-ping]=/usr/bin/ping
    [systemtap-sdt-dev]=/usr/bin/dtrace
)
missing=()
for pkg in "${!needs[@]}"; do
    [ -e "${needs[$pkg]}" ] || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "test.sh: installing ${missing[*]}"
    if ! { as_root apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null; }; then
        echo "test.sh: could not install ${missing[*]} (run as root or with sudo)" >&2
        exit 1
    fi
fi

# The kernel tests need bpffs and tracefs; mount them when we may.
mount_if_missing() { # type dir
    if ! mountpoint -q "$2" 2>/dev/null; then
        as_root mount -t "$1" "$1" "$2" 2>/dev/null &&
            echo "test.sh: mounted $1 at $2" ||
            echo "test.sh: $1 is not mounted at $2 and could not be mounted (kernel tests will say so)"
    fi
}
if [ "$(id -u)" = 0 ] || command -v sudo >/dev/null 2>&1; then
    mount_if_missing bpf /sys/fs/bpf
    mount_if_missing tracefs /sys/kernel/tracing
fi

# The committed eBPF objects must match their sources.
bpf/build.sh --check

exec cargo test --workspace --locked "$@"

