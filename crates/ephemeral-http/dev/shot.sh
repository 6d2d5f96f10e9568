#!/bin/sh
# usage: shot.sh URL OUT.png [WxH] [extra chromium flags...]
url=$1; out=$2; size=${3:-1400,1000}; shift 3 2>/dev/null
d=$(mktemp -d)
timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --hide-scrollbars --user-data-dir=$d --window-size=$size "$@" \
  --screenshot=$out "$url" 2>/tmp/chromium.err
rc=$?; rm -rf $d; echo "rc=$rc"
