#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine: msrplib with its test
# extra, and Kamailio (the real MSRP relay the relay tests run against) when apt-get can.
set -euo pipefail
cd "$(dirname "$0")/.."
pip install -q -e '.[test]'
if ! command -v kamailio >/dev/null && ! [ -x /usr/sbin/kamailio ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q kamailio kamailio-tls-modules >/dev/null
  else
    echo "kamailio is not installed and apt-get is not usable here: the relay tests will skip" >&2
  fi
fi
