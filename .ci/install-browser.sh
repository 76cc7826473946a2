#!/usr/bin/env bash
# Headless Chromium and its driver for tests/test_demo_browser.py, from Debian's packages (the test uses
# /usr/bin/chromium and /usr/bin/chromedriver; nothing downloads a browser or a driver of its own).
# Without them that test is skipped with a message; everything else runs.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    echo "chromium and chromedriver already installed"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium chromium-driver
/usr/bin/chromedriver --version
