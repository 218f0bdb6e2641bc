#!/usr/bin/env bash
# permissions, with an unprivileged user (uid/gid 65534 via
# setpriv). default_permissions is always on, so the kernel checks modes:
#  - without allow_other, the user cannot even enter the mount;
#  - with allow_other, the user cannot read a 0600 item of root's, write
#    root's items or shards, nor write backups/ctl (0600) or read log (0400);
#  - chmod/chown follow POSIX for the caller: only the owner may chmod, an
#    unprivileged owner may not give a file away nor pick a group it is not
#    in; root may do both; a new file's owner is its creator.
source "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || fail "this test needs root (it mounts with allow_other and switches users)"
command -v setpriv >/dev/null || fail "setpriv is needed"
# The user must reach the mount point, whatever the modes of the directories
# above $T (a checkout under a 0700 directory is common): mount in /tmp.
MNT=$(mktemp -d /tmp/itemfs-perms.XXXXXX)
chmod 0755 "$MNT"
CLEANUP_EXTRA='rmdir "$MNT"'
as_user() { setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"; }
# Runs a command as the user that must fail with "Permission denied" or
# "Operation not permitted" ($1), with its stderr in $T/last.err.
user_denied() {
  local want=$1
  shift
  if as_user "$@" 2>"$T/last.err"; then fail "the user could: $*"; fi
  grep -q "$want" "$T/last.err" || fail "$*: expected '$want', got: $(cat "$T/last.err")"
}

# 1. Without allow_other the user cannot enter the mount at all.
start_mount
grep -q " $MNT fuse.itemfs .*default_permissions" /proc/mounts || fail "default_permissions is not on: $(grep " $MNT " /proc/mounts)"
printf '{"v":"public"}\n' >"$MNT/items/public.json"
user_denied "Permission denied" ls "$MNT"
user_denied "Permission denied" cat "$MNT/stats.json"
user_denied "Permission denied" cat "$MNT/items/pu/public.json"
stop_mount

# 2. With allow_other: modes decide.
start_mount -o allow_other
grep -q " $MNT fuse.itemfs .*default_permissions" /proc/mounts || fail "default_permissions is off with allow_other"
I=$MNT/items
mkdir "$I/se"
printf '{"v":"secret"}\n' >"$I/se/secret.json"
chmod 0600 "$I/se/secret.json"
as_user cat "$I/pu/public.json" >/dev/null 2>&1 || fail "the user cannot read a 0644 item"
as_user cat "$MNT/stats.json" >/dev/null || fail "the user cannot read stats.json"
as_user ls "$I/se" >/dev/null || fail "the user cannot list a 0755 shard"
user_denied "Permission denied" cat "$I/se/secret.json"
user_denied "Permission denied" cat "$I/secret.json"  # the flat alias too
user_denied "Permission denied" sh -c "echo '{}' > '$I/pu/public.json'"
user_denied "Permission denied" rm -f "$I/pu/public.json"
user_denied "Permission denied" sh -c "echo '{}' > '$I/pu/pu-new.json'"
user_denied "Permission denied" sh -c "echo '{}' > '$I/flat-new.json'"
user_denied "Permission denied" mkdir "$I/nw"
user_denied "Permission denied" sh -c "echo full > '$MNT/backups/ctl'"
user_denied "Permission denied" cat "$MNT/log"
user_denied "Operation not permitted" chmod 0666 "$I/pu/public.json"
user_denied "Operation not permitted" chown 65534 "$I/pu/public.json"
assert_eq '{"v":"secret"}' "$(cat "$I/se/secret.json")" "root still reads its 0600 item"
assert_eq "" "$(ls -A "$MNT/backups" | grep -vx 'ctl\|status' || true)" "backups made by the user"

# A shard the user may write in (as /tmp is: 1777).
mkdir "$I/us" && chmod 1777 "$I/us"
as_user sh -c "echo '{\"v\":\"mine\"}' > '$I/us/user-file.json'" || fail "the user cannot create in a 1777 shard: $(cat "$MNT/log" | tail -2)"
assert_eq "65534:65534" "$(stat -c %u:%g "$I/us/user-file.json")" "owner of the user's new item"
as_user chmod 0600 "$I/us/user-file.json" || fail "the owner cannot chmod"
assert_eq 600 "$(stat -c %a "$I/us/user-file.json")" "mode after the owner's chmod"
user_denied "Operation not permitted" chown 0 "$I/us/user-file.json"
user_denied "Operation not permitted" chgrp 0 "$I/us/user-file.json"
as_user chgrp 65534 "$I/us/user-file.json" || fail "chgrp to the owner's own group"
# Root reads it and gives it away; sticky bit: another user's file in a
# 1777 shard cannot be removed by the user.
assert_eq '{"v":"mine"}' "$(cat "$I/us/user-file.json")" "root reads the user's 0600 item"
printf '{"v":"root"}\n' >"$I/us/us-root.json"
user_denied "Operation not permitted" rm -f "$I/us/us-root.json"
chown 0:0 "$I/us/user-file.json" || fail "root chown"
user_denied "Permission denied" cat "$I/us/user-file.json"
# The user's own writes keep working as the owner after a remount.
remount -o allow_other
assert_eq "0:0 600" "$(stat -c '%u:%g %a' "$I/us/user-file.json")" "owner and mode after remount"
user_denied "Permission denied" cat "$I/se/secret.json"
stop_mount
"$ITEMFS" fsck "$STORE" >"$T/fsck" 2>&1 || fail "fsck: $(cat "$T/fsck")"
