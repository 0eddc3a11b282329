#!/usr/bin/env bash
# Optional test extras, installed only when missing: headless Chromium and a font (renders the HTML report
# in tests/tools/report_render_test.cpp) and xmllint (validates JUnit XML). Not needed to build
# dsq or to run the main test command; .ci/run calls it so CI always runs those tests.
set -euo pipefail
pkgs=(chromium fonts-dejavu-core libxml2-utils)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing test extras: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
