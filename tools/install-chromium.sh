#!/usr/bin/env bash
# Installs what the studio's browser test needs (Debian/Ubuntu): Debian's chromium, which
# Playwright (from PyPI, in the [test] extra) drives headless; nothing downloads a browser build.
# Does nothing when chromium is present. Needs root (or sudo) for apt-get. With recommends: the
# fonts and helpers a headless page needs come with them.
set -euo pipefail
if command -v chromium >/dev/null; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y chromium >/dev/null 2>&1; then
    $SUDO apt-get update >/dev/null
    $SUDO apt-get install -y chromium >/dev/null
fi
echo "install-chromium: $(chromium --version 2>/dev/null | head -1)"
