#!/usr/bin/env bash
# Damaged content is never handed out: an item whose stored bytes no longer
# match its hash (its blob zeroed, or swapped for other bytes of the same
# size, with the sqlite3 CLI) reads as EIO through the mount, so cat, cp and
# rsync fail instead of copying garbage on; the log names the item,
# stats.json counts the damaged reads, and the items around it read as before.
source "$(dirname "$0")/lib.sh"
mkdir -p "$T/src"
make_items "$T/src" 20
start_mount
cp -r "$T/src/." "$MNT/items/"
stop_mount

# Two items, damaged two ways: one zeroed (zlib cannot decode it), one made
# raw bytes of the right size (decodes fine; only the hash can tell).
zeroed=$(last_of "$T/src" '*/*.json')
swapped=$(first_of "$T/src" '*/*.json')
zid=$(basename "$zeroed" .json)
sid=$(basename "$swapped" .json)
blob_of() { echo "(SELECT blob FROM chunks JOIN items USING(ino) WHERE items.id='$1')"; }
sqlite3 "$STORE/store.db" "UPDATE blobs SET data=zeroblob(length(data)) WHERE id=$(blob_of "$zid")"
sqlite3 "$STORE/store.db" \
  "UPDATE blobs SET codec=0, data=CAST(printf('%.*c', raw_size, 'x') AS BLOB), stored_size=raw_size WHERE id=$(blob_of "$sid")"

start_mount
for f in "$zeroed" "$swapped"; do
  expect_fail cat "$MNT/items/$f"
  grep -q "Input/output error" "$T/last.err" || fail "cat $f: expected EIO, got: $(cat "$T/last.err")"
  expect_fail cp "$MNT/items/$f" "$T/copy.json"
  grep -q "Input/output error" "$T/last.err" || fail "cp $f: expected EIO, got: $(cat "$T/last.err")"
done
# The size is the item's; no byte of the damage reaches a reader.
assert_eq "$(stat -c %s "$T/src/$swapped")" "$(stat -c %s "$MNT/items/$swapped")" "size of the damaged item"
if dd if="$MNT/items/$swapped" bs=4096 count=1 2>/dev/null | grep -q xxxx; then fail "damaged bytes were handed out"; fi

# rsync out fails and says so; every other item arrives intact.
mkdir "$T/out"
if rsync -a "$MNT/items/" "$T/out/" 2>"$T/rsync.err"; then fail "rsync copied a damaged item without an error"; fi
grep -q "Input/output error" "$T/rsync.err" || fail "rsync: no EIO reported: $(cat "$T/rsync.err")"
[ ! -e "$T/out/$zeroed" ] || cmp -s "$T/out/$zeroed" "$T/src/$zeroed" || fail "rsync left garbage at $zeroed"
[ ! -e "$T/out/$swapped" ] || fail "rsync left garbage at $swapped"
for f in $(cd "$T/src" && find . -name '*.json' | sort); do
  case "$f" in "./$zeroed" | "./$swapped") continue ;; esac
  cmp -s "$T/src/$f" "$MNT/items/$f" || fail "$f differs through the mount"
  cmp -s "$T/src/$f" "$T/out/$f" || fail "$f differs after rsync"
done

# The log names both items; stats.json counts the reads.
grep -q "error: reading items/.*$zid.json: item $zid is damaged" "$MNT/log" || fail "no log line for $zid: $(tail -5 "$MNT/log")"
grep -q "error: reading items/.*$sid.json: item $sid is damaged: its bytes do not match its SHA-256" "$MNT/log" ||
  fail "no log line for $sid: $(tail -5 "$MNT/log")"
damaged=$(jq .damaged_reads "$MNT/stats.json")
[ "$damaged" -ge 4 ] || fail "stats.json damaged_reads is $damaged"

# fsck names them too, and exits 1.
stop_mount
if out=$("$ITEMFS" fsck "$STORE" 2>&1); then fail "fsck found nothing: $out"; fi
for id in "$zid" "$sid"; do echo "$out" | grep -q "item $id" || fail "fsck does not name $id: $out"; done

# export leaves damaged items out, names them and exits 1; the rest is written.
if "$ITEMFS" export "$STORE" "$T/exported" 2>"$T/export.err"; then fail "export of a damaged store exited 0"; fi
for id in "$zid" "$sid"; do
  grep -q "skipped $id: item $id is damaged" "$T/export.err" || fail "export does not name $id: $(cat "$T/export.err")"
done
[ ! -e "$T/exported/$zeroed" ] && [ ! -e "$T/exported/$swapped" ] || fail "export wrote a damaged item"
assert_eq 18 "$(find "$T/exported" -name '*.json' | wc -l)" "items exported"

# A damaged item can still be removed, and a new version written over one.
start_mount
rm "$MNT/items/$zeroed" || fail "rm of a damaged item failed"
[ ! -e "$MNT/items/$zeroed" ] || fail "the damaged item is still there"
cp "$T/src/$swapped" "$MNT/items/$swapped" || fail "writing over a damaged item failed"
cmp -s "$T/src/$swapped" "$MNT/items/$swapped" || fail "the item written over the damaged one reads wrong"
