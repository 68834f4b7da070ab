#!/bin/sh
# Counts the bytes the miner app writes to its terminal while nobody touches it.
#
#   sh scripts/idle-bytes.sh [SETTLE_SECONDS] [IDLE_SECONDS] [WIDTHxHEIGHT]
#
# Starts .venv/bin/bettensor-miner with the demo frozen (--speed 0) in a tmux
# session of its own (own socket, folders in a temporary directory), waits
# SETTLE_SECONDS (default 15) for start-up notices to pass, then records
# everything the app writes for IDLE_SECONDS (default 60) and prints the byte
# count and the start of what was written, to find what repaints (a timer, a
# blinking cursor, a badge). The product promise is 0 bytes.
set -eu
settle=${1:-15}
idle=${2:-60}
size=${3:-120x40}
width=${size%x*}
height=${size#*x}
root=$(cd "$(dirname "$0")/.." && pwd)
miner="$root/.venv/bin/bettensor-miner"
command -v tmux >/dev/null 2>&1 || { echo "idle-bytes: tmux is not installed"; exit 2; }
[ -x "$miner" ] || { echo "idle-bytes: $miner is missing (make run sets it up)"; exit 2; }

work=$(mktemp -d)
socket="idle-bytes-$$"
trap 'tmux -L "$socket" kill-server 2>/dev/null || true; rm -rf "$work"' EXIT INT TERM

# The pane gets its size before the app starts, and the app asks it directly.
tmux -L "$socket" -f /dev/null new-session -d -s idle -x "$width" -y "$height" "sleep 3600"
tmux -L "$socket" respawn-pane -k -t idle \
    "env -u COLUMNS -u LINES HOME=$work BETTENSOR_CONFIG=$work/miner.toml \
     BETTENSOR_LOG_DIR=$work/logs $miner --data-dir $work/data --speed 0"

sleep "$settle"
tmux -L "$socket" pipe-pane -o -t idle "cat >> $work/out.bin"
sleep "$idle"
tmux -L "$socket" pipe-pane -t idle

bytes=$(wc -c < "$work/out.bin")
echo "idle-bytes: ${bytes} bytes in ${idle} s of idle at ${width}x${height} (after ${settle} s)"
if [ "$bytes" -gt 0 ]; then
    echo "idle-bytes: the first bytes, escaped:"
    head -c 1500 "$work/out.bin" | cat -v
    echo
fi
