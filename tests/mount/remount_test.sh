#!/usr/bin/env bash
# unmount (fusermount3 -u and SIGTERM) and remount keep
# bytes, sizes, modes and mtimes.
source "$(dirname "$0")/lib.sh"
make_items "$T/src" 100
chmod 600 "$T/src/$(first_of "$T/src" "*/*.json")"
start_mount
rsync -a "$T/src/" "$MNT/items/"
snapshot() { (cd "$MNT/items" && find . -printf '%p %m %s %T@ %u\n' | sort && cat */*.json | sha256sum); }
snapshot >"$T/before"
remount
snapshot >"$T/after1"
diff "$T/before" "$T/after1" || fail "changed across fusermount3 -u"
kill -TERM "$DAEMON_PID"
for _ in $(seq 1 600); do mountpoint -q "$MNT" || break; sleep 0.05; done
mountpoint -q "$MNT" && fail "SIGTERM did not unmount"
wait "$DAEMON_PID" || fail "daemon exit status after SIGTERM: $?"
DAEMON_PID=
start_mount
snapshot >"$T/after2"
diff "$T/before" "$T/after2" || fail "changed across SIGTERM"
"$ITEMFS" fsck "$STORE" >/dev/null || fail "fsck after remounts"
