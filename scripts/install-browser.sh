#!/usr/bin/env bash
# Installs headless Chromium and ChromeDriver (Debian's packages) for the
# browser end-to-end tests in tests/browser.rs. Idempotent: does nothing when
# both are already on the machine. CJK fonts so the 切符 brand renders.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }

if have chromium && have chromedriver; then
  echo "install-browser: chromium and chromedriver already installed"
else
  if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
  elif have sudo; then
    SUDO=(sudo)
  else
    echo "install-browser: need root (or sudo) to apt-get install chromium chromium-driver" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" apt-get install -y -qq chromium chromium-driver fonts-noto-cjk
fi

chromium --version
chromedriver --version
