#!/usr/bin/env bash
# The command line explains itself and its documents agree with it:
# `itemfs --version` (and `version`) names this build's version (CMake's
# project version) and its libraries; `itemfs COMMAND --help` prints that
# command's usage and exits 0; every option and mount option --help names is
# described in the man page (docs/itemfs.1) and in docs/USAGE.md; bad usage
# exits 2.
source "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
version=$(sed -n 's/^project(itemfs VERSION \([0-9.]*\).*/\1/p' "$ROOT/CMakeLists.txt")
[ -n "$version" ] || fail "no project version in CMakeLists.txt"
for v in --version version; do
  out=$("$ITEMFS" $v) || fail "itemfs $v failed"
  assert_eq "itemfs $version" "$(echo "$out" | head -n 1)" "itemfs $v"
  echo "$out" | grep -q "SQLite .*zlib .*OpenSSL" || fail "itemfs $v names no libraries: $out"
done
grep -q "^\.TH ITEMFS 1 .*@ITEMFS_VERSION@" "$ROOT/docs/itemfs.1" || fail "the man page does not carry the version"

man=$ROOT/docs/itemfs.1
usage=$ROOT/docs/USAGE.md
for c in mount import export stats search reindex backup fsck; do
  out=$("$ITEMFS" "$c" --help) || fail "itemfs $c --help exited $?"
  echo "$out" | grep -q "itemfs $c" || fail "itemfs $c --help: $out"
  # Every --option of the usage is in the man page (roff writes - as \-).
  for opt in $(echo "$out" | grep -o -- '--[a-z][a-z-]*' | sort -u); do
    grep -q -- "$(echo "$opt" | sed 's/-/\\\\-/g')" "$man" || fail "$c's $opt is not in the man page"
  done
  grep -q "\.B $c\b\|^\.B $c \\\\fI" "$man" || fail "the man page does not describe $c"
done
# Every mount option --help lists is in the man page and in USAGE.md.
for opt in $("$ITEMFS" --help | sed -n '/^mount options/,$p' | awk '/^  [a-z_]+/ {print $1}' | sed 's/=.*//'); do
  grep -q "$opt" "$man" || fail "mount option $opt is not in the man page"
  grep -q "$opt" "$usage" "$ROOT/README.md" || fail "mount option $opt is in neither USAGE.md nor README.md"
done
# Usage errors exit 2.
set +e
"$ITEMFS" frobnicate >/dev/null 2>&1; assert_eq 2 $? "unknown command"
"$ITEMFS" import --no-such-option "$T/s" "$T" >/dev/null 2>&1; assert_eq 2 $? "unknown option"
"$ITEMFS" >/dev/null 2>&1; assert_eq 2 $? "no command"
set -e
