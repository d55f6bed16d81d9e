#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine: msrplib with its test
# extra, and, when apt-get can, Kamailio (the real MSRP relay the relay tests run against)
# and chromium with its driver and CryptoJS (the browser test of the relay's web demo).
set -euo pipefail
cd "$(dirname "$0")/.."
pip install -q -e '.[test]'
missing=()
if ! command -v kamailio >/dev/null && ! [ -x /usr/sbin/kamailio ]; then
  missing+=(kamailio kamailio-tls-modules)
fi
if ! dpkg -s kamailio-websocket-modules >/dev/null 2>&1; then
  missing+=(kamailio-websocket-modules)
fi
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  missing+=(chromium chromium-driver)
fi
if ! [ -f /usr/share/javascript/cryptojs/rollups/md5.js ]; then
  missing+=(libjs-cryptojs)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
  else
    echo "not installed, and apt-get is not usable here: ${missing[*]}; the tests that" \
         "need them will skip" >&2
  fi
fi
