#!/usr/bin/env bash
# Installs what the studio's browser test needs (Debian/Ubuntu): Debian's chromium, which
# Playwright (from PyPI, in the [test] extra) drives headless; nothing downloads a browser build.
# Does nothing when chromium is present. With recommends: the fonts and helpers a headless page
# needs come with them.
set -euo pipefail
"$(dirname "${BASH_SOURCE[0]}")/apt-install.sh" chromium chromium
