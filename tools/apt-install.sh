#!/usr/bin/env bash
# apt-install.sh COMMAND PACKAGE: installs Debian's PACKAGE unless COMMAND is already on PATH
# (Debian/Ubuntu; root or sudo for apt-get), with recommends, updating the package lists only
# when the first try fails. Used by ./npc test for the tools some tests drive.
set -euo pipefail
command_name="$1" package="$2"
if command -v "$command_name" >/dev/null; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y "$package" >/dev/null 2>&1; then
    $SUDO apt-get update >/dev/null
    $SUDO apt-get install -y "$package" >/dev/null
fi
echo "apt-install: $package installed ($(command -v "$command_name"))"
