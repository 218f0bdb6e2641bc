#!/usr/bin/env bash
# fsync through the mount reaches the disk: fsync() of an item commits it
# and syncs the store, fsync() of items/ or of a shard (the barrier for
# scripts, `sync DIR`) syncs the store, each counted as "syncs" in
# stats.json; fsync of other directories answers 0 and syncs nothing; an
# fsync'd item is in the store at once (another process sees it); with
# -o sync=full, where every commit is synced already, fsync makes no extra
# sync; a refused item's fsync fails with the refusal and syncs nothing.
source "$(dirname "$0")/lib.sh"
command -v jq >/dev/null || fail "jq is needed"
start_mount
syncs() { jq .syncs "$MNT/stats.json"; }

mkdir "$MNT/items/ab"
assert_eq 0 "$(syncs)" "syncs at mount"
python3 - "$MNT/items/ab/abfsync.json" <<'PY' || fail "fsync of a new item"
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd, b'{"fsynced": true}')
os.fsync(fd)
os.close(fd)
PY
assert_eq 1 "$(syncs)" "syncs after an item's fsync"
assert_eq abfsync "$(sqlite3 "$STORE/store.db" "SELECT id FROM items WHERE id='abfsync'")" "the fsync'd item in the store"

sync "$MNT/items" || fail "sync of items/"
assert_eq 2 "$(syncs)" "syncs after sync items/"
sync "$MNT/items/ab" || fail "sync of a shard"
assert_eq 3 "$(syncs)" "syncs after sync of a shard"
sync "$MNT/search" || fail "sync of search/"
sync "$MNT" || fail "sync of the root"
assert_eq 3 "$(syncs)" "syncs after sync of search/ and the root"

# A refused write: its fsync fails with the reason, nothing synced.
python3 - "$MNT/items/ab/abbad.json" <<'PY' || fail "a refused fsync did not fail with EINVAL"
import errno, os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd, b'{"not json')
try:
    os.fsync(fd)
    sys.exit(1)
except OSError as e:
    sys.exit(0 if e.errno == errno.EINVAL else 1)
finally:
    try:
        os.close(fd)
    except OSError:
        pass
PY
assert_eq 3 "$(syncs)" "syncs after a refused fsync"

# sync=full: every commit is synced; fsync adds none.
remount -o sync=full
python3 - "$MNT/items/ab/abfull.json" <<'PY' || fail "fsync under sync=full"
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd, b'[1,2,3]')
os.fsync(fd)
os.close(fd)
PY
sync "$MNT/items" || fail "sync of items/ under sync=full"
assert_eq 0 "$(syncs)" "syncs under sync=full"
assert_eq "[1,2,3]" "$(cat "$MNT/items/ab/abfull.json")" "the item written under sync=full"
exit 0
