#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs every Debian 12 package exfilmon needs to build, run and test.
# Idempotent: installs only what is missing. Run as root.
set -euo pipefail

# scdoc: the man pages (docs/man).
BUILD_PKGS=(build-essential cmake pkg-config clang llvm libclang-rt-14-dev libbpf-dev bpftool libpcap-dev
            libboost-dev libtomlplusplus-dev catch2 libspdlog-dev libcli11-dev
            nlohmann-json3-dev libssl-dev libcpp-httplib-dev scdoc)
# file and dpkg-dev: CPack's .deb (dpkg-shlibdeps) in the package test.
# python3: bench/results_table.py --check, the unit test of the results table;
# scripts/api-calls.py, the clients of the distributed scenario (e2e, demo).
# clang-tidy: scripts/tidy.sh, run by .ci/run.
# clickhouse-server, clickhouse-client: the fleet tests start a ClickHouse of their own.
# man-db: the man page test; bash-completion: the completion test; lintian
# and logrotate: the package test (lintian on the .deb, its logrotate rule).
# libnginx-mod-http-echo (nginx-light brings it too): nginx's /v1/stream of the
# tests and of the demo's distributed scenario (streamed answers).
TEST_PKGS=(clang-tidy clickhouse-server clickhouse-client file dpkg-dev man-db bash-completion lintian logrotate python3 iproute2 tcpdump openssl curl ethtool procps nginx-light libnginx-mod-http-echo rsyslog rsyslog-gnutls ngtcp2-client ngtcp2-server)
PKGS=("${BUILD_PKGS[@]}")
if [[ "${1:-}" != "--build-only" ]]; then
    PKGS+=("${TEST_PKGS[@]}")
fi

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "install-deps: missing packages (${missing[*]}); run this script as root" >&2
        exit 1
    fi
    echo "install-deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# bpffs, for pinned maps and bpftool.
if ! mountpoint -q /sys/fs/bpf 2>/dev/null; then
    mount -t bpf bpf /sys/fs/bpf 2>/dev/null || true
fi
