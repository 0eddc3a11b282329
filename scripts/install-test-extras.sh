#!/usr/bin/env bash
# Optional test extras, installed only when missing: headless Chromium and a font (renders the HTML
# report in tests/tools/report_render_test.cpp), xmllint (validates JUnit XML), and numpy, PyYAML
# and sentencepiece (its vocab module imports it) for llama.cpp's gguf-py, the outside oracle of
# the GGUF writer's tests (../shared/oracles). Not needed to build dsq or to run the main job;
# .ci/run calls it so CI always runs those tests.
set -euo pipefail
exec bash "$(dirname "$0")/apt-install-missing.sh" chromium fonts-dejavu-core libxml2-utils \
  python3-numpy python3-yaml python3-sentencepiece
