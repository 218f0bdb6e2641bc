#!/usr/bin/env bash
# Through the mount: backups/ctl jobs, status, ls and rsync of
# backups/, plain-tar restore of a full backup and of a chain compared with
# `rsync -a MNT/items/`, verify and damaged archives, restore (clear), prune and
# delete, offline `itemfs backup`, encrypted backups, scheduled backups.
source "$(dirname "$0")/lib.sh"
command -v jq >/dev/null || fail "jq is needed"

B=$MNT/backups
ctl() { echo "$1" >"$B/ctl"; }
last() { jq -r ".last.$1" "$B/status"; }
snap() { rsync -a "$MNT/items/" "$1/"; }
# Path, mode, size and mtime (ns) of every file below $1.
meta() { (cd "$1" && find . -type f -printf '%P %m %s %T@\n' | sort); }
same_tree() {  # expected actual what
  diff -r "$1" "$2" >"$T/diff.out" || fail "$3: trees differ: $(head -5 "$T/diff.out")"
  diff <(meta "$1") <(meta "$2") >"$T/diff.out" || fail "$3: metadata differs: $(head -5 "$T/diff.out")"
}
item() { printf '{"title":"%s","content":"%s"}\n' "$2" "$3" >"$MNT/items/${1:0:2}/$1.json"; }
# Restores a backup (and its chain) with tar and jq only, as docs/BACKUP_FORMAT.md says.
plain_restore() {  # backups-dir newest-id dest
  local b id shard
  mkdir -p "$3"
  for b in $(jq -r '.chain[]' "$1/$2/manifest.json"); do
    tar -xzpf "$1/$b/$b.tar.gz" -C "$3"
    jq -r '.deleted[]' "$3/MANIFEST.json" | while IFS= read -r id; do
      shard=${id:0:2}
      [ ${#id} -eq 1 ] && shard=00
      rm -f "$3/items/$shard/$id.json"
    done
  done
}

make_items "$T/src" 40
mkdir -p "$T/src/aa" "$T/src/bb"
for id in aa-1 aa-2 aa-3 bb-1 bb-2 bb-3; do
  printf '{"title":"%s","content":"first version of %s"}\n' "$id" "$id" >"$T/src/${id:0:2}/$id.json"
done
touch -d '2021-01-01 00:00:00.25' "$T/src"/aa/*.json "$T/src"/bb/*.json
start_mount
rsync -a "$T/src/" "$MNT/items/"

# 1, 2. A full backup; the write returns when it is done; status says so.
ctl full && echo ok >"$T/ok" || fail "echo full > ctl failed"
assert_eq ok "$(cat "$T/ok")" "echo full > ctl && echo ok"
jq -e '.state == "idle" and .last.ok == true and .last.job == "full"' "$B/status" >/dev/null ||
  fail "status after full: $(cat "$B/status")"
F1=$(last id)
snap "$T/at_A"
grep -q "backup: full: ok" "$MNT/log" || fail "no log line for the backup"
# 2. The last result keeps the real counts (a "syncing" phase once reset them
# to 0), and the log and status end with a newline like any text file.
n_items=$(find "$T/src" -type f -name '*.json' | wc -l)
n_bytes=$(find "$T/src" -type f -name '*.json' -printf '%s\n' | awk '{ s += $1 } END { print s }')
assert_eq "$n_items $n_bytes" "$(last items_done) $(last bytes_done)" "items_done and bytes_done after the full backup"
assert_eq 0a "$(tail -c 1 "$MNT/log" | od -An -tx1 | tr -d ' ')" "the last byte of the log"
assert_eq 0a "$(tail -c 1 "$B/status" | od -An -tx1 | tr -d ' ')" "the last byte of backups/status"

# Bad commands: EINVAL, and status and the log say why.
out=$(ctl "fullest" 2>&1) && fail "a bad command succeeded"
grep -q "Invalid argument" <<<"$out" || fail "bad command: $out"
jq -e '.last.ok == false and .last.error == "EINVAL"' "$B/status" >/dev/null || fail "status after a bad command"
grep -q "fullest: EINVAL" "$MNT/log" || fail "no log line for the bad command"
out=$(ctl "restore no-such-backup" 2>&1) && fail "restore of an unknown backup succeeded"
ctl "" || fail "an empty line is not ignored"

# Changes for state B: edit, delete, add, chmod, touch.
item aa-1 aa-1 "second version of aa-1, a little longer"
rm "$MNT/items/aa/aa-2.json"
item aa-4 aa-4 "new in B"
chmod 600 "$MNT/items/bb/bb-1.json"
touch -d '2022-02-02 02:02:02.5' "$MNT/items/bb/bb-2.json"
ctl incremental || fail "incremental"
I1=$(last id)
snap "$T/at_B"
jq -e --arg p "$F1" '.kind == "incremental" and .parent == $p and .archived_count == 4 and .deleted == ["aa-2"]' \
  "$B/$I1/manifest.json" >/dev/null || fail "incremental manifest: $(jq -c '{kind,parent,archived_count,deleted}' "$B/$I1/manifest.json")"
assert_eq 4 "$(last items_done)" "items_done after the incremental"

# Changes for state C: remove what B added, bring back what B deleted, edit.
rm "$MNT/items/aa/aa-4.json"
item aa-2 aa-2 "aa-2 is back"
item bb-1 bb-1 "bb-1 edited in C"
ctl incremental || fail "second incremental"
I2=$(last id)
snap "$T/at_C"

# 3. ls and rsync of backups/: read-only files, a second rsync copies nothing.
for id in "$F1" "$I1" "$I2"; do
  assert_eq "$id.tar.gz $id.tar.gz.sha256 manifest.json" "$(ls "$B/$id" | tr '\n' ' ' | sed 's/ $//')" "ls backups/$id"
done
ls "$B" | grep -qx ctl || fail "ctl not listed"
expect_fail touch "$B/$F1/extra"
expect_fail rm "$B/$F1/manifest.json"
rsync -a "$B/" "$T/elsewhere/" || fail "rsync -a of backups/"
assert_eq "" "$(rsync -ai "$B/" "$T/elsewhere/")" "second rsync of backups/ transferred something"
for id in "$F1" "$I1" "$I2"; do
  diff -r "$STORE/backups/$id" "$T/elsewhere/$id" || fail "rsync copy of $id differs"
  (cd "$T/elsewhere/$id" && sha256sum --quiet -c "$id.tar.gz.sha256") || fail "sha256sum -c of $id"
done

# 4. Without itemfs: tar of the full backup = items at A; the chain = items at C.
mkdir "$T/x_full"
tar -xzpf "$T/elsewhere/$F1/$F1.tar.gz" -C "$T/x_full"
(cd "$T/x_full" && sha256sum --quiet -c SHA256SUMS) || fail "sha256sum -c SHA256SUMS"
jq -e '.format_version == 2 and .kind == "full" and .parent == null and (.items | length) == 46' \
  "$T/x_full/MANIFEST.json" >/dev/null || fail "MANIFEST.json of the full backup"
same_tree "$T/at_A" "$T/x_full/items" "tar xzf of the full backup"
plain_restore "$T/elsewhere" "$I1" "$T/x_b"
same_tree "$T/at_B" "$T/x_b/items" "chain $F1 $I1"
plain_restore "$T/elsewhere" "$I2" "$T/x_c"
same_tree "$T/at_C" "$T/x_c/items" "chain $F1 $I1 $I2"

# 5. verify: ok, recorded in verify.json; verify all.
ctl "verify $I2" || fail "verify $I2"
jq -e '.last.ok == true' "$B/status" >/dev/null || fail "status after verify"
jq -e '.ok == true' "$B/$I2/verify.json" >/dev/null || fail "verify.json of $I2"
ctl "verify all" || fail "verify all"

# 6. restore: what cat shows afterwards is the restored content.
cat "$MNT/items/aa/aa-1.json" "$MNT/items/bb/bb-1.json" >/dev/null
stat "$MNT/items/aa/aa-1.json" >/dev/null
item aa-1 aa-1 "edited after C, and this version is much longer than the one in the backup B"
cat "$MNT/items/aa/aa-1.json" >/dev/null
item aa-9 aa-9 "quokkaword added after C"
rm "$MNT/items/bb/bb-2.json"
ctl "restore $I1" || fail "restore $I1: $(cat "$B/status")"
cmp "$T/at_B/aa/aa-1.json" "$MNT/items/aa/aa-1.json" || fail "cat after restore shows $(cat "$MNT/items/aa/aa-1.json")"
cmp "$T/at_B/bb/bb-1.json" "$MNT/items/bb/bb-1.json" || fail "bb-1 after restore"
assert_eq 600 "$(stat -c %a "$MNT/items/bb/bb-1.json")" "mode after restore"
cmp "$T/at_B/bb/bb-2.json" "$MNT/items/bb/bb-2.json" || fail "bb-2 not restored"
[ -e "$MNT/items/aa/aa-9.json" ] || fail "restore without clear removed an item"
[ -e "$MNT/items/aa/aa-2.json" ] || fail "restore without clear removed aa-2"
grep -q "restore: .* items changed" "$MNT/log" || fail "no log line for the restore"
ctl "restore $I1 clear" || fail "restore $I1 clear"
[ ! -e "$MNT/items/aa/aa-9.json" ] || fail "restore clear kept aa-9"
rsync -a "$MNT/items/" "$T/after_clear/"
same_tree "$T/at_B" "$T/after_clear" "items after restore clear"
assert_eq 0 "$(jq .total "$MNT/search/quokkaword.json")" "search index after restore clear"
assert_eq 1 "$(jq .total "$MNT/search/\"a little longer\".json")" "search index after restore"

# 5, 6. A flipped byte and a truncated archive fail verify; restore refuses them.
ctl full || fail "full F2"
F2=$(last id)
A2=$STORE/backups/$F2/$F2.tar.gz
size=$(stat -c %s "$A2")
flip_byte "$A2" $((size / 2))
out=$(ctl "verify $F2" 2>&1) && fail "verify of a damaged archive succeeded"
jq -e '.last.ok == false' "$B/status" >/dev/null || fail "status after a failed verify"
jq -r '.last.message' "$B/status" | grep -qi "sha256\|match\|damaged\|corrupt" || fail "status does not say where: $(cat "$B/status")"
jq -e '.ok == false and (.problems | length) > 0' "$B/$F2/verify.json" >/dev/null || fail "verify.json after failure"
expect_fail ctl "restore $F2"
rsync -a "$MNT/items/" "$T/after_refused/"
same_tree "$T/at_B" "$T/after_refused" "items after a refused restore"
ctl full || fail "full F3"
F3=$(last id)
truncate -s $(($(stat -c %s "$STORE/backups/$F3/$F3.tar.gz") / 2)) "$STORE/backups/$F3/$F3.tar.gz"
expect_fail ctl "verify $F3"
expect_fail ctl "verify all"
ctl "delete $F3" || fail "delete $F3"
ctl "delete $F2" || fail "delete $F2"
[ ! -e "$B/$F3" ] && [ ! -e "$STORE/backups/$F3" ] || fail "deleted backup still there"

# 7. delete and prune never orphan a child.
out=$(ctl "delete $I1" 2>&1) && fail "delete of a parent succeeded"
[ -d "$B/$I1" ] || fail "parent deleted"
expect_fail ctl "delete $F1"
ctl full || fail "full F4"
F4=$(last id)
item aa-5 aa-5 "for the last incremental"
ctl incremental || fail "incremental I3"
I3=$(last id)
ctl "prune keep_last=1" || fail "prune: $(cat "$B/status")"
assert_eq "$(printf '%s\n' "$F4" "$I3" ctl status | sort)" "$(ls "$B" | sort)" "backups after prune keep_last=1"
snap "$T/at_D"

# 11. Offline: the same engine without a mount.
stop_mount
"$ITEMFS" backup "$STORE" list >"$T/list" || fail "itemfs backup list"
assert_eq "$F4 $I3" "$(cut -f1 "$T/list" | tr '\n' ' ' | sed 's/ $//')" "itemfs backup list"
"$ITEMFS" backup "$STORE" incremental >"$T/inc.json" || fail "itemfs backup incremental"
I4=$(jq -r .id "$T/inc.json")
[ -d "$STORE/backups/$I4" ] || fail "offline incremental $I4 not written"
"$ITEMFS" backup "$STORE" verify "$I4" >/dev/null || fail "offline verify"
expect_fail "$ITEMFS" backup "$STORE" frobnicate >/dev/null
expect_fail "$ITEMFS" backup "$STORE" delete "$F4" >/dev/null
"$ITEMFS" backup "$STORE" --dir "$T/otherdisk" full >"$T/other.json" || fail "backup --dir"
O1=$(jq -r .id "$T/other.json")
[ -f "$T/otherdisk/$O1/$O1.tar.gz" ] || fail "--dir did not put the backup there"
assert_eq "$O1" "$("$ITEMFS" backup "$STORE" --dir "$T/otherdisk" list | cut -f1)" "list --dir"
# Restore into an empty store (made by importing nothing: only mount and
# import create a store), then export it: the items at D.
mkdir "$T/nothing"
"$ITEMFS" import "$T/empty" "$T/nothing" 2>/dev/null || fail "import of nothing to make an empty store"
"$ITEMFS" backup "$T/empty" --dir "$STORE/backups" restore "$I4" >/dev/null || fail "restore into an empty store"
"$ITEMFS" export "$T/empty" "$T/exp" 2>/dev/null
diff -r "$T/at_D" "$T/exp" || fail "restore into an empty store differs"
assert_eq "aa-5" "$("$ITEMFS" search "$T/empty" "last incremental" --json | jq -r '.hits[].id')" "index after offline restore"
"$ITEMFS" fsck "$T/empty" >/dev/null || fail "fsck after offline restore"
# Offline restore keeps the index in step too.
"$ITEMFS" backup "$STORE" restore "$F4" clear >/dev/null || fail "offline restore clear"
assert_eq 0 "$("$ITEMFS" search "$STORE" "last incremental" --json | jq .total)" "index after offline restore clear"

# 10. Encrypted backups: -o backup_key=FILE.
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/key"
start_mount -o "backup_key=$T/key"
ctl full || fail "encrypted full: $(cat "$B/status")"
E1=$(last id)
[ -f "$B/$E1/$E1.tar.gz.enc" ] || fail "no .tar.gz.enc: $(ls "$B/$E1")"
expect_fail tar -tzf "$B/$E1/$E1.tar.gz.enc"
ctl "verify $E1" || fail "verify of the encrypted backup"
snap "$T/at_E"
"$ITEMFS" backup "$STORE" decrypt "$B/$E1/$E1.tar.gz.enc" --key "$T/key" >"$T/plain.tar.gz" || fail "decrypt"
mkdir "$T/x_enc" && tar -xzpf "$T/plain.tar.gz" -C "$T/x_enc"
same_tree "$T/at_E" "$T/x_enc/items" "decrypted archive"
item aa-1 aa-1 "changed after the encrypted backup"
ctl "restore $E1" || fail "restore of the encrypted backup"
cmp "$T/at_E/aa/aa-1.json" "$MNT/items/aa/aa-1.json" || fail "content after the encrypted restore"
stop_mount
expect_fail "$ITEMFS" backup "$STORE" restore "$E1" >/dev/null
"$ITEMFS" backup "$STORE" --key "$T/key" verify "$E1" >/dev/null || fail "offline verify with --key"
flip_byte "$STORE/backups/$E1/$E1.tar.gz.enc" 100
expect_fail "$ITEMFS" backup "$STORE" --key "$T/key" verify "$E1" >/dev/null
expect_fail "$ITEMFS" backup "$STORE" decrypt "$STORE/backups/$E1/$E1.tar.gz.enc" --key "$T/key" >/dev/null

# 1, 2. A running job (status, EBUSY for a second one here or in another
# process) is held and looked at in tests/unit/backup_progress_test.cpp.

# 9. Scheduled backups: an incremental each time something changed, a full
# when the chain would get longer than backup_chain.
stop_mount
rm -rf "$STORE/backups"
start_mount -o backup_every=1s,backup_chain=2,backup_keep_last=1
# Pruning to one backup leaves two fulls side by side only for a moment:
# count the jobs in this mount's log instead (full, incremental, full).
scheduled() { grep -c "backup: $1: ok" "$MNT/log" || true; }
for i in $(seq 1 600); do
  [ "$(scheduled full)" -ge 2 ] && [ "$(scheduled incremental)" -ge 1 ] && break
  item sc-1 "tick" "$i"
  sleep 0.1
done
[ "$(scheduled full)" -ge 2 ] && [ "$(scheduled incremental)" -ge 1 ] ||
  fail "scheduled backups in 60 s: $(scheduled full) full, $(scheduled incremental) incremental"
jq -e '.schedule.every_s == 1' "$B/status" >/dev/null || fail "status does not show the schedule"
grep -q "backup: prune keep_last=1: ok" "$MNT/log" || fail "scheduled prune did not run"
# Nothing changes now: a scheduled incremental is skipped, and says so.
for _ in $(seq 1 600); do
  grep -q "backup: incremental: skipped: nothing changed since" "$MNT/log" && break
  sleep 0.1
done
grep -q "backup: incremental: skipped: nothing changed since" "$MNT/log" ||
  fail "no skipped incremental in the log: $(grep backup: "$MNT/log" | tail -3)"
jq -e '.last_backup.skipped == true' "$B/status" >/dev/null || fail "status after a skip: $(cat "$B/status")"
# The schedule keeps taking and pruning backups while mounted: look at what
# it left once it has stopped, or a listed backup may be pruned under jq.
stop_mount
kinds=$(for id in $(ls "$STORE/backups"); do jq -r .kind "$STORE/backups/$id/manifest.json"; done | tr '\n' ' ')
grep -q "full" <<<"$kinds" || fail "no scheduled full backup: $kinds"
