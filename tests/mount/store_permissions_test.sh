#!/usr/bin/env bash
# A store is its owner's alone: whatever the umask, a new store's directory
# is 0700 and store.db, its -wal and -shm, and staging/ are 0600/0700, so no
# other local user can read a private item's text from the database. A store
# that is more open mounts, with a warning on stderr and in the log that says
# how to close it.
source "$(dirname "$0")/lib.sh"
umask 022
start_mount
echo '{"secret":"words of a private item"}' >"$MNT/items/private.json"
chmod 0600 "$MNT/items/pr/private.json"
sync -f "$MNT/items" 2>/dev/null || true
assert_eq 700 "$(stat -c %a "$STORE")" "mode of the store directory"
for f in store.db store.db-wal store.db-shm; do
  [ -e "$STORE/$f" ] || continue
  assert_eq 600 "$(stat -c %a "$STORE/$f")" "mode of $f"
done
assert_eq 700 "$(stat -c %a "$STORE/staging")" "mode of staging/"
# Nothing in the store directory is open to others.
open=$(find "$STORE" -perm /077 -printf '%p %m\n')
[ -z "$open" ] || fail "open to other users: $open"
if grep -q "warning: .*open to other users" "$T/daemon.log"; then fail "warned about a private store"; fi
# import creates stores the same way.
mkdir "$T/src"
echo '{"a":1}' >"$T/src/one.json"
"$ITEMFS" import "$T/imported" "$T/src" >/dev/null 2>&1 || fail "import failed"
assert_eq 700 "$(stat -c %a "$T/imported")" "mode of an imported store"
assert_eq 600 "$(stat -c %a "$T/imported/store.db")" "mode of an imported store.db"
stop_mount

chmod 0755 "$STORE"
chmod 0644 "$STORE/store.db"
start_mount
grep -q "itemfs: warning: $STORE is open to other users (mode 0755).*store.db is open to other users (mode 0644).*chmod 700" \
  "$T/daemon.log" || fail "no warning on stderr: $(cat "$T/daemon.log")"
grep -q "warning: .*open to other users" "$MNT/log" || fail "no warning in the log"
# It mounts and works as before.
assert_eq "words of a private item" "$(jq -r .secret "$MNT/items/pr/private.json")" "the item"
