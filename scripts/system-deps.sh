#!/bin/sh
# Installs the system programs the tests drive (tmux, Chromium) when they are missing.
# Needs root (or sudo) and Debian's apt; elsewhere it says what to install and goes on,
# and the tests that need the missing program are skipped with that reason.
set -u
missing=""
command -v tmux >/dev/null 2>&1 || missing="$missing tmux"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
[ -z "$missing" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: please install:$missing (tests needing them are skipped)"
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
        echo "system-deps: not root; please install:$missing"; exit 0
    fi
fi
echo "system-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -qq $missing >/dev/null \
    || echo "system-deps: could not install$missing (tests needing them are skipped)"
exit 0
