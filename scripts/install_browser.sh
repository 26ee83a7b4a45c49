#!/usr/bin/env bash
# Install headless Chromium (Debian's `chromium` package) for the trace viewer's browser test
# (tests/test_report_browser.py). Idempotent: does nothing when `chromium` is already on PATH.
# Run as root, or as a user with sudo. The test fails in CI (CI=true) without a browser.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_browser.sh: no apt-get here; install Chromium by hand so that \`chromium\` is on PATH" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "install_browser.sh: need root (or sudo) to apt-get install chromium" >&2
        exit 1
    fi
    SUDO="sudo"
fi
echo "install_browser.sh: installing chromium (about a minute)" >&2
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium
command -v chromium >/dev/null
