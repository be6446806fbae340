#!/usr/bin/env bash
# Installs what the Unity bridge's tests need (Debian/Ubuntu): mono's C# compiler and NUnit 2.6.
# Does nothing when they are present. Needs root (or sudo) for apt-get.
set -euo pipefail
if command -v mcs >/dev/null && command -v mono >/dev/null && ls /usr/lib/cli/nunit.framework-2.6*/nunit.framework.dll >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y --no-install-recommends mono-mcs mono-runtime libnunit-cil-dev >/dev/null 2>&1; then
    $SUDO apt-get update >/dev/null
    $SUDO apt-get install -y --no-install-recommends mono-mcs mono-runtime libnunit-cil-dev >/dev/null
fi
echo "install-mono: $(mcs --version)"
