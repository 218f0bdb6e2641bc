#!/usr/bin/env bash
# itemfs installs as a Debian tool: scripts/package builds a .deb that
# `apt-get install ./itemfs_*.deb` installs (itemfs on the system PATH, the
# itemfs(1) man page, bash completion, an fstab line and a systemd mount unit
# in /usr/share/doc/itemfs/examples), with which `mount -t fuse.itemfs STORE
# MNT -o ...` and an fstab line with `mount MNT` both mount a store (the
# fstab one in a private mount namespace over a temporary fstab bind-mounted
# on /etc/fstab: the machine's own is never touched); `apt-get remove itemfs`
# removes every file again.
source "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || fail "this test installs a package: it needs root"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export DEBIAN_FRONTEND=noninteractive
# Whatever happens, the package goes and nothing stays mounted.
CLEANUP_EXTRA='umount "$MNT" 2>/dev/null || true; apt-get remove -y -qq itemfs >/dev/null 2>&1 || true'

deb=$("$ROOT/scripts/package") || fail "scripts/package failed"
[ -f "$ROOT/$deb" ] || fail "scripts/package printed no package: $deb"
dpkg-deb -I "$ROOT/$deb" | grep "^ Package: itemfs" >/dev/null || fail "not an itemfs package"
apt-get install -y -qq "$ROOT/$deb" >"$T/apt.log" 2>&1 || fail "apt-get install failed: $(tail -5 "$T/apt.log")"

# What it installed.
assert_eq /usr/bin/itemfs "$(command -v itemfs)" "itemfs on PATH"
assert_eq /usr/share/man/man1/itemfs.1.gz "$(man -w itemfs)" "man -w itemfs"
zcat /usr/share/man/man1/itemfs.1.gz | grep "^\.TH ITEMFS 1" >/dev/null || fail "the man page is not a man page"
if zcat /usr/share/man/man1/itemfs.1.gz | grep "@ITEMFS_VERSION@" >/dev/null; then fail "the man page has no version"; fi
for f in examples/fstab examples/mnt-crawl.mount copyright; do
  [ -s "/usr/share/doc/itemfs/$f" ] || fail "missing /usr/share/doc/itemfs/$f"
done
grep -q "fuse.itemfs" /usr/share/doc/itemfs/examples/fstab || fail "the fstab example has no fuse.itemfs line"
grep -q "^Type=fuse.itemfs" /usr/share/doc/itemfs/examples/mnt-crawl.mount || fail "the unit is not a fuse.itemfs mount"
comp=/usr/share/bash-completion/completions/itemfs
[ -s "$comp" ] || fail "no bash completion"
[ -f /usr/share/bash-completion/bash_completion ] || fail "bash-completion is not installed (scripts/setup installs it)"
{
  # Completing `itemfs ba` offers backup; `itemfs mount S M -o max_` offers max_item_size=.
  got=$(bash -c 'source /usr/share/bash-completion/bash_completion; source '"$comp"'
    COMP_WORDS=(itemfs ba); COMP_CWORD=1; COMP_LINE="itemfs ba"; COMP_POINT=${#COMP_LINE}; _itemfs; echo "${COMPREPLY[*]}"
    COMP_WORDS=(itemfs mount s m -o max_); COMP_CWORD=5; COMP_LINE="itemfs mount s m -o max_"; COMP_POINT=${#COMP_LINE}; _itemfs; echo "${COMPREPLY[*]}"')
  echo "$got" | grep -qx "backup" || fail "completion of 'itemfs ba': $got"
  echo "$got" | grep -qx "max_item_size=" || fail "completion of '-o max_': $got"
}

# mount -t fuse.itemfs, with a store that does not exist yet.
mount -t fuse.itemfs "$STORE" "$MNT" -o backup_keep_last=3 || fail "mount -t fuse.itemfs failed"
grep -q " $MNT fuse.itemfs " /proc/mounts || fail "not mounted: $(grep " $MNT " /proc/mounts)"
echo '{"title":"from the package"}' >"$MNT/items/pkg-item.json"
assert_eq "from the package" "$(jq -r .title "$MNT/items/pk/pkg-item.json")" "an item through the mount"
umount "$MNT" || fail "umount failed"
for _ in $(seq 1 100); do pgrep -f "itemfs $STORE " >/dev/null || break; sleep 0.1; done
pgrep -f "itemfs $STORE " >/dev/null && fail "the daemon did not exit at umount"

# An fstab line and `mount MNT`, in a private mount namespace.
printf '%s %s fuse.itemfs defaults,backup_keep_last=3 0 0\n' "$STORE" "$MNT" >"$T/fstab"
out=$(unshare -m bash -c '
  set -e
  mount --bind "$1" /etc/fstab
  mount "$2"
  trap "umount \"$2\" 2>/dev/null || true" EXIT
  jq -r .title "$2/items/pk/pkg-item.json"
  umount "$2"
  trap - EXIT
' fstab-test "$T/fstab" "$MNT" 2>&1) || fail "mount from fstab: $out"
assert_eq "from the package" "$out" "the item through the fstab mount"
for _ in $(seq 1 100); do pgrep -f "itemfs $STORE " >/dev/null || break; sleep 0.1; done
pgrep -f "itemfs $STORE " >/dev/null && fail "the fstab mount's daemon did not exit at umount"

# apt-get remove takes every file away.
files=$(dpkg -L itemfs | while read -r f; do [ -f "$f" ] && echo "$f"; done)
apt-get remove -y -qq itemfs >"$T/apt.log" 2>&1 || fail "apt-get remove failed: $(tail -5 "$T/apt.log")"
for f in $files; do [ ! -e "$f" ] || fail "$f is still there after apt-get remove"; done
command -v itemfs >/dev/null && fail "itemfs still on PATH after remove"
true
