#!/usr/bin/env bash
# A writer outside the mount (`itemfs import` into the mounted store): what
# the kernel caches of items/ (entries, attributes, shard listings, pages)
# is dropped within seconds, although the kernel may otherwise keep it for
# an hour.
source "$(dirname "$0")/lib.sh"
make_items "$T/src" 40
start_mount
rsync -a "$T/src/" "$MNT/items/"

old=$(first_of "$T/src" "*/*.json")
shard=${old%%/*}
# Fill every cache the kernel has: the listing, attributes, entries, pages.
ls -l "$MNT/items/$shard" >/dev/null
stat "$MNT/items/$old" >/dev/null
cmp "$T/src/$old" "$MNT/items/$old" || fail "first read"

# A longer new version of an existing item, and a new item in the same shard.
mkdir -p "$T/imp/$shard"
printf '{"id":"changed","content":"%s"}\n' "$(printf 'x%.0s' $(seq 1 300))" >"$T/imp/$old"
new=$shard/${shard}external.json
printf '{"id":"new"}\n' >"$T/imp/$new"
"$ITEMFS" import "$STORE" "$T/imp" >"$T/import.out" 2>&1 || fail "import while mounted: $(cat "$T/import.out")"

# Only stat and ls until the change shows: a read past the size the kernel
# holds makes it ask for the attributes again by itself.
want=$(stat -c %s "$T/imp/$old")
seen=0
for _ in $(seq 1 100); do
  if [ "$(stat -c %s "$MNT/items/$old")" = "$want" ] && ls "$MNT/items/$shard" | grep -qx "${shard}external.json"; then
    seen=1
    break
  fi
  sleep 0.1
done
[ $seen -eq 1 ] || fail "the mount did not see the import within 10 s (size $(stat -c %s "$MNT/items/$old"), want $want)"
cmp "$T/imp/$old" "$MNT/items/$old" || fail "the imported version reads wrong"
cmp "$T/imp/$new" "$MNT/items/$new" || fail "the new item reads wrong"
jq -e '.id == "changed"' "$MNT/items/$old" >/dev/null || fail "jq reads the old version"

# The mount's own writes still work after the invalidation.
printf '{"id":"own"}\n' >"$MNT/items/$old"
assert_eq '{"id":"own"}' "$(cat "$MNT/items/$old")" "a write through the mount after the import"
"$ITEMFS" fsck "$STORE" >/dev/null || fail "fsck"
