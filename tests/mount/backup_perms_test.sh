#!/usr/bin/env bash
# Backups are the mount owner's alone: an archive holds every item, private
# ones included. On a mount with allow_other:
#  - backups/, backups/<id>/ are 0500 and status, manifest.json, the archive,
#    its .sha256 and verify.json are 0400 (ctl stays 0600), so another user
#    can neither list backups/ nor read a 0600 item out of an archive;
#  - with -o backup_group=GID, that group may read them too (0550 / 0440,
#    the nodes' group is GID), and a user of another group still may not;
#  - on disk, the backup directory and each backup's directory are 0700 and
#    every file written there is 0600, whatever the umask.
source "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || fail "this test needs root (it mounts with allow_other and switches users)"
command -v setpriv >/dev/null || fail "setpriv is needed"
command -v jq >/dev/null || fail "jq is needed"
# The user must reach the mount point, whatever the modes above $T: mount in /tmp.
MNT=$(mktemp -d /tmp/itemfs-bperms.XXXXXX)
chmod 0755 "$MNT"
CLEANUP_EXTRA='rmdir "$MNT"'
as_user() { setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"; }
as_member() { setpriv --reuid=65534 --regid=65534 --groups=4242 -- "$@"; }
user_denied() {
  if as_user "$@" 2>"$T/last.err" >/dev/null; then fail "the user could: $*"; fi
  grep -q "Permission denied" "$T/last.err" || fail "$*: expected 'Permission denied', got: $(cat "$T/last.err")"
}
mode() { stat -c %a "$1"; }

umask 022
start_mount -o allow_other
mkdir "$MNT/items/se"
printf '{"v":"a private secret"}\n' >"$MNT/items/se/secret.json"
chmod 0600 "$MNT/items/se/secret.json"
echo full >"$MNT/backups/ctl"
echo incremental >"$MNT/backups/ctl"
ID=$(jq -r .last.id "$MNT/backups/status")
echo "verify $ID" >"$MNT/backups/ctl"
B=$MNT/backups

# In the mount.
assert_eq 500 "$(mode "$B")" "mode of backups/"
assert_eq 400 "$(mode "$B/status")" "mode of backups/status"
assert_eq 600 "$(mode "$B/ctl")" "mode of backups/ctl"
assert_eq 500 "$(mode "$B/$ID")" "mode of backups/$ID"
for f in manifest.json "$ID.tar.gz" "$ID.tar.gz.sha256" verify.json; do
  assert_eq 400 "$(mode "$B/$ID/$f")" "mode of backups/$ID/$f"
done
user_denied ls "$B"
user_denied cat "$B/status"
user_denied cat "$B/$ID/$ID.tar.gz"
user_denied cat "$B/$ID/manifest.json"
user_denied sh -c "tar -xzOf '$B/$ID/$ID.tar.gz'"
# The owner still reads and extracts everything.
tar -xzOf "$B/$ID/$ID.tar.gz" >/dev/null || fail "the owner cannot read the archive"

# On disk: 0700 directories, 0600 files.
D=$STORE/backups
assert_eq 700 "$(mode "$D")" "mode of the backup directory on disk"
for id in $(ls "$D"); do
  assert_eq 700 "$(mode "$D/$id")" "mode of $id on disk"
  for f in "$D/$id"/*; do assert_eq 600 "$(mode "$f")" "mode of $f on disk"; done
done
[ ! -e "$D/.lock" ] || assert_eq 600 "$(mode "$D/.lock")" "mode of the lock file"
stop_mount

# backup_group: that group may read, others still may not.
start_mount -o allow_other,backup_group=4242
assert_eq 550 "$(mode "$B")" "mode of backups/ with backup_group"
assert_eq 440 "$(mode "$B/$ID/$ID.tar.gz")" "mode of the archive with backup_group"
assert_eq 4242 "$(stat -c %g "$B/$ID/$ID.tar.gz")" "group of the archive with backup_group"
as_member ls "$B" >/dev/null || fail "a member of backup_group cannot list backups/"
as_member cat "$B/$ID/$ID.tar.gz" >/dev/null || fail "a member of backup_group cannot read an archive"
as_member cat "$B/status" >/dev/null || fail "a member of backup_group cannot read status"
user_denied cat "$B/$ID/$ID.tar.gz"
if as_member sh -c "echo full > '$B/ctl'" 2>/dev/null; then fail "a member of backup_group could run a job"; fi
