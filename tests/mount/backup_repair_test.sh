#!/usr/bin/env bash
# Damaged stored content (an item's blob zeroed with the sqlite3 CLI) is
# repaired from a backup:
#  - `itemfs backup STORE full` names the damaged item and says how to repair;
#  - `itemfs fsck STORE --repair --from-backup ID` rewrites the damaged items
#    the backup holds in their recorded version, names the ones it could not
#    (not in the backup; another version there, which is the user's choice)
#    and exits 1 while any is left;
#  - `echo "restore ID" > MNT/backups/ctl` repairs a damaged item it would
#    once have skipped as unchanged, and replaces a damaged item by the
#    backup's version; the mount reads them right again;
#  - a damaged item no backup holds can be removed.
source "$(dirname "$0")/lib.sh"
command -v jq >/dev/null || fail "jq is needed"
command -v sqlite3 >/dev/null || fail "sqlite3 is needed"

damage() {  # id...
  local id
  for id in "$@"; do
    sqlite3 "$STORE/store.db" "update blobs set data = zeroblob(length(data)) where id in
      (select blob from chunks where ino = (select ino from items where id = '$id'))"
  done
}

make_items "$T/src" 10
mkdir -p "$T/src/vi" "$T/src/ch"
printf '{"v":"the good version of the victim"}\n' >"$T/src/vi/victim.json"
printf '{"v":"the backed-up version"}\n' >"$T/src/ch/changed.json"
"$ITEMFS" import "$STORE" "$T/src" >/dev/null 2>&1
"$ITEMFS" backup "$STORE" full >"$T/full.json" || fail "first backup"
ID=$(jq -r .id "$T/full.json")
mkdir -p "$T/src2/ch" "$T/src2/fr"
printf '{"v":"a later version"}\n' >"$T/src2/ch/changed.json"
printf '{"v":"made after the backup"}\n' >"$T/src2/fr/fresh.json"
"$ITEMFS" import "$STORE" "$T/src2" >/dev/null 2>&1

damage victim changed fresh
expect_fail "$ITEMFS" backup "$STORE" full
grep -q "victim\|changed\|fresh" "$T/last.err" || fail "backup full does not name the damaged item: $(cat "$T/last.err")"
grep -q "fsck .* --repair --from-backup ID" "$T/last.err" || fail "backup full does not say how to repair: $(cat "$T/last.err")"

rc=0
"$ITEMFS" fsck "$STORE" --repair --from-backup "$ID" >"$T/fsck" 2>&1 || rc=$?
assert_eq 1 "$rc" "fsck --from-backup exit status with items it cannot repair"
grep -q "repaired from backup $ID: victim" "$T/fsck" || fail "victim not repaired: $(cat "$T/fsck")"
grep -q "not repaired: changed: backup $ID holds another version.*your choice" "$T/fsck" ||
  fail "no word on the changed item: $(cat "$T/fsck")"
grep -q "not repaired: fresh: not in backup $ID" "$T/fsck" || fail "no word on the fresh item: $(cat "$T/fsck")"

start_mount
cmp "$T/src/vi/victim.json" "$MNT/items/vi/victim.json" || fail "the repaired item does not read right"
cat "$MNT/items/ch/changed.json" >/dev/null 2>&1 && fail "the damaged later version reads without an error"
stop_mount

# restore repairs what it used to skip as unchanged.
damage victim
start_mount
cat "$MNT/items/vi/victim.json" >/dev/null 2>&1 && fail "the damaged victim reads without an error"
echo "restore $ID" >"$MNT/backups/ctl" || fail "restore: $(jq -r .last.message "$MNT/backups/status")"
jq -r .last.message "$MNT/backups/status" | grep -q "repaired" || fail "restore: $(jq -r .last.message "$MNT/backups/status")"
cmp "$T/src/vi/victim.json" "$MNT/items/vi/victim.json" || fail "the restored item does not read right"
cmp "$T/src/ch/changed.json" "$MNT/items/ch/changed.json" || fail "restore did not bring back the backed-up version"
# Left damaged: only the item no backup holds, which can be removed.
rm "$MNT/items/fr/fresh.json" || fail "a damaged item cannot be removed"
stop_mount
"$ITEMFS" fsck "$STORE" >"$T/fsck" 2>&1 || fail "fsck after the restore: $(cat "$T/fsck")"
