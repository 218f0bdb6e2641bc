#!/usr/bin/env bash
# rsync in (sharded and flat), a no-op second run, rsync out.
source "$(dirname "$0")/lib.sh"
make_items "$T/src" 200
chmod 600 "$T/src/$(first_of "$T/src" "*/*.json")"
touch -d '2015-05-05 05:05:05' "$T/src/$(last_of "$T/src" "*/*.json")"
# The epoch is a real mtime (archives carry it), not "now".
touch -d @0 "$T/src/$(first_of "$T/src" "*/*.json")"
start_mount

rsync -a "$T/src/" "$MNT/items/"
second=$(rsync -ai "$T/src/" "$MNT/items/")
assert_eq "" "$second" "second rsync -ai transferred something"
rsync -a "$MNT/items/" "$T/out/"
diff -r "$T/src" "$T/out" || fail "rsync out differs"
# mtimes (files and dirs) and modes came through both ways.
(cd "$T/src" && find . -printf '%p %m %T@\n' | sort) >"$T/a"
(cd "$T/out" && find . -printf '%p %m %T@\n' | sort) >"$T/b"
diff "$T/a" "$T/b" || fail "metadata differs after the round trip"

# Survives a remount unchanged.
remount
assert_eq "" "$(rsync -ai "$T/src/" "$MNT/items/")" "rsync after remount transferred something"

# A flat directory of <id>.json goes into the shards.
mkdir "$T/flat"
for i in $(seq 1 50); do printf '{"flat":%d}\n' "$i" >"$T/flat/flat$i.json"; done
rsync -a "$T/flat/" "$MNT/items/"
assert_eq "" "$(rsync -ai "$T/flat/" "$MNT/items/" | grep -v '^\.d' || true)" "second flat rsync sent files"
for i in $(seq 1 50); do cmp "$T/flat/flat$i.json" "$MNT/items/fl/flat$i.json" || fail "flat $i"; done
