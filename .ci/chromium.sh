#!/usr/bin/env bash
# Install Debian's Chromium and its chromedriver for the tests marked `browser`, idempotently.
#
# The browser test finds both on PATH (/usr/bin/chromium, /usr/bin/chromedriver) and
# skips, saying so, when either is missing. Selenium is told to use this chromedriver and
# never to download one. Needs root (or sudo) for apt-get; prints the two versions.
set -euo pipefail

log() { echo "chromium.sh: $*" >&2; }

if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    log "already installed"
else
    as_root=()
    if [ "$(id -u)" != 0 ]; then
        as_root=(sudo)
    fi
    log "installing Debian's chromium and chromium-driver"
    export DEBIAN_FRONTEND=noninteractive
    "${as_root[@]}" apt-get update -qq >&2
    # Recommends would bring a desktop's worth of services (printing, notifications, udev)
    # a headless test never uses; the fonts are what the screenshots need to be readable.
    "${as_root[@]}" apt-get install -y -qq --no-install-recommends \
        chromium chromium-driver fonts-liberation fonts-dejavu-core >&2
fi

chromium --version
chromedriver --version
