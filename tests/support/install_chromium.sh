#!/bin/sh
# Debian's chromium for the viewer's browser tests (tests/browser), run by `make test` before
# pytest. CI runs as root on Debian; where chromium cannot be installed (no root, no apt-get,
# no package mirror) this says so and the browser tests skip with a message. Never fails.
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium not installed and no root apt-get to install it: the browser tests will skip"
  exit 0
fi
log=$(mktemp)
echo "installing Debian's chromium for the browser tests (apt-get)"
if DEBIAN_FRONTEND=noninteractive timeout 900 sh -c \
  'apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium' >"$log" 2>&1; then
  echo "installed $(chromium --version 2>/dev/null)"
else
  tail -n 5 "$log"
  echo "could not install chromium: the browser tests will skip"
fi
rm -f "$log"
exit 0
