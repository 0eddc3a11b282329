#!/usr/bin/env bash
# Installs the Debian packages dsq needs to build and test, only those that are missing.
set -euo pipefail
exec bash "$(dirname "$0")/apt-install-missing.sh" g++ cmake make pkg-config libopenblas-dev \
  libeigen3-dev libzstd-dev libcli11-dev nlohmann-json3-dev libhdf5-dev libomp-dev libgtest-dev \
  libgmock-dev libbenchmark-dev libopenmpi-dev openmpi-bin
