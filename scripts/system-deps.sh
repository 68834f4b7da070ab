#!/bin/sh
# Installs the system programs the tests drive (tmux, Chromium) when they are missing.
# Needs root (or sudo) and Debian's apt. Elsewhere it says what to install and goes on,
# and the tests that need the missing program are skipped with that reason; under CI
# (CI=true) a failed install is an error, so a green run never hides a skipped test.
set -u
missing=""
command -v tmux >/dev/null 2>&1 || missing="$missing tmux"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
[ -z "$missing" ] && exit 0

fail() {
    echo "system-deps: $1"
    if [ "${CI:-}" = "true" ]; then exit 1; fi
    exit 0
}

command -v apt-get >/dev/null 2>&1 || fail "no apt-get; please install:$missing"
SUDO=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || fail "not root; please install:$missing"
    SUDO="sudo -n"
fi
echo "system-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
lock="-o DPkg::Lock::Timeout=600"
# shellcheck disable=SC2086
$SUDO apt-get $lock update -qq >/dev/null \
    && $SUDO apt-get $lock install -y -qq $missing >/dev/null \
    || fail "could not install$missing"
exit 0
