#!/usr/bin/env bash
# Installs the Debian packages dsq needs, only those that are missing. Safe to run repeatedly.
set -euo pipefail
pkgs=(g++ cmake make pkg-config libopenblas-dev libeigen3-dev libzstd-dev libcli11-dev
      nlohmann-json3-dev libhdf5-dev libomp-dev libgtest-dev libgmock-dev libbenchmark-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
