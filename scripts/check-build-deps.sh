#!/bin/sh
# Proves that hapax configures and builds with only the build packages:
#  1. every pkg-config dependency meson.build asks for is shipped by a
#     package in install-deps.sh's BUILD list (when dpkg can tell);
#  2. `meson setup` + `ninja hapax` succeed with a pkg-config search path
#     that holds every .pc file except cmocka.pc (the test-only package).
# Cheap on purpose (unoptimised, only the hapax target): `make test` runs it.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/hapax-deps.XXXXXX")
trap 'rm -rf "$TMP"' EXIT INT TERM

BUILD_PKGS=$(sed -n '/^BUILD_PKGS="/,/"$/p' "$ROOT/scripts/install-deps.sh" |
             tr -d '\\"' | sed 's/^BUILD_PKGS=//')

# 1. dependency('name') in meson.build -> NAME.pc -> the package owning it.
missing=""
if command -v dpkg >/dev/null 2>&1; then
  for dep in $(sed -n "s/.*dependency('\([^']*\)'.*/\1/p" "$ROOT/meson.build"); do
    case "$dep" in threads|cmocka) continue ;; esac
    pc=$(pkg-config --variable=pcfiledir "$dep" 2>/dev/null)/$dep.pc || true
    pkg=$(dpkg -S "$pc" 2>/dev/null | head -n1 | cut -d: -f1) || true
    [ -n "$pkg" ] || continue # not from a Debian package: nothing to check
    case " $(echo $BUILD_PKGS) " in
      *" $pkg "*) ;;
      *) missing="$missing $dep($pkg)" ;;
    esac
  done
  # cc.find_library('name'): the package that ships libname.so.
  for lib in $(sed -n "s/.*find_library('\([^']*\)'.*/\1/p" "$ROOT/meson.build"); do
    [ "$lib" = m ] && continue # libc6-dev, always there with gcc
    pkg=$(dpkg -S "*/lib$lib.so" 2>/dev/null | head -n1 | cut -d: -f1) || true
    [ -n "$pkg" ] || { missing="$missing lib$lib(no package)"; continue; }
    case " $(echo $BUILD_PKGS) " in
      *" $pkg "*) ;;
      *) missing="$missing lib$lib($pkg)" ;;
    esac
  done
fi
if [ -n "$missing" ]; then
  echo "check-build-deps: install-deps.sh BUILD list lacks:$missing" >&2
  exit 1
fi

# 2. A pkg-config path without cmocka.pc.
mkdir "$TMP/pc"
dirs=$(pkg-config --variable pc_path pkg-config 2>/dev/null || true)
IFS=:
for d in $dirs; do
  [ -d "$d" ] || continue
  for f in "$d"/*.pc; do
    [ -e "$f" ] || continue
    case "$(basename "$f")" in cmocka.pc) continue ;; esac
    [ -e "$TMP/pc/$(basename "$f")" ] || ln -s "$f" "$TMP/pc/"
  done
done
unset IFS
if PKG_CONFIG_LIBDIR="$TMP/pc" pkg-config --exists cmocka; then
  echo "check-build-deps: cmocka is still visible" >&2
  exit 1
fi

cd "$ROOT"
if ! PKG_CONFIG_LIBDIR="$TMP/pc" meson setup "$TMP/build" --buildtype=plain >"$TMP/setup.log" 2>&1; then
  cat "$TMP/setup.log" >&2
  echo "check-build-deps: meson setup failed without cmocka" >&2
  exit 1
fi
if ! ninja -C "$TMP/build" hapax >"$TMP/ninja.log" 2>&1; then
  tail -n 40 "$TMP/ninja.log" >&2
  echo "check-build-deps: the build failed without cmocka" >&2
  exit 1
fi
grep -q "unit tests are not built" "$TMP/setup.log" || {
  echo "check-build-deps: meson did not report the skipped unit tests" >&2
  exit 1
}
echo "check-build-deps: ok (builds without cmocka; BUILD packages cover meson.build)"
