#!/usr/bin/env bash
# invalid JSON fails at close/rename with EINVAL, the old
# version stays, and the log says which file and where.
source "$(dirname "$0")/lib.sh"
start_mount
I=$MNT/items
mkdir "$I/ab"
echo '{"ok":1}' >"$I/ab/abc.json"

# cp reports the failed close.
printf '{\n  "a": tru\n}\n' >"$T/broken.json"
expect_fail cp "$T/broken.json" "$I/ab/abc.json"
grep -q "Invalid argument" "$T/last.err" || fail "cp error was: $(cat "$T/last.err")"
assert_eq '{"ok":1}' "$(cat "$I/ab/abc.json")" "old version kept after cp"
grep -q 'refused items/ab/abc.json: invalid JSON at line 2, column 11' "$MNT/log" || fail "log: $(cat "$MNT/log")"

# A shell redirection: the shell ignores close errors, the store does not change.
echo '{' >"$I/ab/abc.json" || true
assert_eq '{"ok":1}' "$(cat "$I/ab/abc.json")" "old version kept after echo"
# python sees the error from close().
python3 - "$I/ab/abc.json" <<'PY' || fail "python did not see EINVAL"
import errno, sys
f = open(sys.argv[1], "w")
f.write("[1,")
try:
    f.close()
except OSError as e:
    sys.exit(0 if e.errno == errno.EINVAL else 1)
sys.exit(1)
PY
# A new item that never becomes valid does not appear.
expect_fail cp "$T/broken.json" "$I/ab/abnew.json"
[ ! -e "$I/ab/abnew.json" ] || fail "invalid new item exists"
# Rename of an invalid scratch file onto an item name: EINVAL, scratch kept.
cp "$T/broken.json" "$I/ab/.abc.json.tmp"
# (GNU mv words EINVAL from rename(2) as "cannot move ... to a subdirectory of itself".)
python3 - "$I/ab/.abc.json.tmp" "$I/ab/abc.json" <<'PY' || fail "rename did not fail with EINVAL"
import errno, os, sys
try:
    os.rename(sys.argv[1], sys.argv[2])
except OSError as e:
    sys.exit(0 if e.errno == errno.EINVAL else 1)
sys.exit(1)
PY
expect_fail mv "$I/ab/.abc.json.tmp" "$I/ab/abc.json"
assert_eq '{"ok":1}' "$(cat "$I/ab/abc.json")" "old version kept after rename"
[ -e "$I/ab/.abc.json.tmp" ] || fail "scratch file lost"
grep -q 'refused rename of items/ab/.abc.json.tmp onto items/ab/abc.json' "$MNT/log" || fail "rename not logged"
# Empty files and truncation to nothing are refused too.
expect_fail truncate -s 0 "$I/ab/abc.json"
assert_eq '{"ok":1}' "$(cat "$I/ab/abc.json")" "old version kept after truncate"
# Scratch files never reach the store.
assert_eq 1 "$(jq .items "$MNT/stats.json")" "item count"
