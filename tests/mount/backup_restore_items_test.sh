#!/usr/bin/env bash
# Restore of chosen items: `itemfs backup STORE restore ID PATH|GLOB...` and
# `restore ID PATH|GLOB...` written to backups/ctl restore only the items
# whose archive path (or a directory of it) matches; the others stay as they
# are; a pattern that matches nothing in the backup fails and names it.
source "$(dirname "$0")/lib.sh"
command -v jq >/dev/null || fail "jq is needed"

mkdir -p "$T/v1/aa" "$T/v1/bb" "$T/v2/aa" "$T/v2/bb"
for id in aa-1 aa-2 bb-1 bb-2; do
  printf '{"v":"first %s"}\n' "$id" >"$T/v1/${id:0:2}/$id.json"
  printf '{"v":"second %s"}\n' "$id" >"$T/v2/${id:0:2}/$id.json"
done
"$ITEMFS" import "$STORE" "$T/v1" >/dev/null 2>&1
"$ITEMFS" backup "$STORE" full >"$T/full.json" || fail "full backup"
ID=$(jq -r .id "$T/full.json")
"$ITEMFS" import "$STORE" "$T/v2" >/dev/null 2>&1

# Offline: one path and one glob.
"$ITEMFS" backup "$STORE" restore "$ID" items/aa/aa-1.json 'items/bb/*-2.json' >"$T/r.json" ||
  fail "restore of chosen items"
jq -e '.ok == true' "$T/r.json" >/dev/null || fail "restore result: $(cat "$T/r.json")"
"$ITEMFS" export "$STORE" "$T/out" 2>/dev/null
cmp "$T/v1/aa/aa-1.json" "$T/out/aa/aa-1.json" || fail "aa-1 not restored"
cmp "$T/v1/bb/bb-2.json" "$T/out/bb/bb-2.json" || fail "bb-2 not restored"
cmp "$T/v2/aa/aa-2.json" "$T/out/aa/aa-2.json" || fail "aa-2 was restored too"
cmp "$T/v2/bb/bb-1.json" "$T/out/bb/bb-1.json" || fail "bb-1 was restored too"

# A pattern matching nothing: exit 1, named, nothing restored.
expect_fail "$ITEMFS" backup "$STORE" restore "$ID" items/aa/aa-2.json 'items/zz/*'
grep -q "items/zz/\* matches nothing in backup $ID" "$T/last.err" || fail "no-match message: $(cat "$T/last.err")"
"$ITEMFS" export "$STORE" "$T/out2" 2>/dev/null
cmp "$T/v2/aa/aa-2.json" "$T/out2/aa/aa-2.json" || fail "a failed restore changed aa-2"
# Not an item path at all: a usage error of the command.
expect_fail "$ITEMFS" backup "$STORE" restore "$ID" aa/aa-2.json
grep -q "not an item path or glob" "$T/last.err" || fail "bad pattern message: $(cat "$T/last.err")"

# Through the mount: a directory chooses everything under it.
start_mount
echo "restore $ID items/aa" >"$MNT/backups/ctl" || fail "ctl restore of a directory"
cmp "$T/v1/aa/aa-2.json" "$MNT/items/aa/aa-2.json" || fail "aa-2 not restored through ctl"
cmp "$T/v2/bb/bb-1.json" "$MNT/items/bb/bb-1.json" || fail "bb-1 changed by a restore of items/aa"
jq -e '.last.message | test("the 2 items chosen by 1 pattern")' "$MNT/backups/status" >/dev/null ||
  fail "status after ctl restore: $(cat "$MNT/backups/status")"
if echo "restore $ID items/cc/*" >"$MNT/backups/ctl" 2>/dev/null; then fail "ctl restore of nothing succeeded"; fi
jq -e '.last.ok == false and (.last.message | test("matches nothing"))' "$MNT/backups/status" >/dev/null ||
  fail "status after a restore of nothing: $(cat "$MNT/backups/status")"
exit 0
