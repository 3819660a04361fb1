#!/bin/sh
# Installs the Debian (bookworm) packages hapax needs to build and test,
# only those that are missing. Safe to run again: it does nothing when all
# are present.
set -eu

BUILD_PKGS="gcc make meson ninja-build pkg-config libuv1-dev libhttp-parser-dev \
libyaml-dev libjson-c-dev libcurl4-openssl-dev libgnutls28-dev libnghttp2-dev \
libngtcp2-dev libngtcp2-crypto-gnutls-dev libnghttp3-dev libhiredis-dev"
# clang also gives `make analyze` its static analyzer (clang --analyze).
TEST_PKGS="libcmocka-dev python3 curl prometheus clang libclang-rt-14-dev cppcheck gnutls-bin nghttp2-client openssl \
ngtcp2-client chromium redis-server"

case "${1:-build}" in
  build) PKGS="$BUILD_PKGS" ;;
  test)  PKGS="$BUILD_PKGS $TEST_PKGS" ;;
  *) echo "usage: $0 [build|test]" >&2; exit 2 ;;
esac

missing=""
# The SDK end-to-end tests need Node.js >= 18.17 and npm (Debian bookworm's
# nodejs 18.19 or NodeSource's); only install when there is no node at all.
# An older node is left alone: the Makefile then stops and says so.
if [ "${1:-build}" = test ] && ! command -v node >/dev/null 2>&1; then
  PKGS="$PKGS nodejs npm"
fi
for p in $PKGS; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0

echo "installing missing packages:$missing"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "error: not root and no sudo; install these packages:$missing" >&2; exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
