#!/usr/bin/env bash
# Regression tests for identity bugs found in review: a file the kernel moved
# onto an item by rename keeps standing for that item; a body not committed
# yet cannot replace an item; a refused commit leaves times and mode alone; a
# created file's inode is never another item's.
source "$(dirname "$0")/lib.sh"
start_mount
I=$MNT/items
mkdir "$I/ab" "$I/jk" "$I/cd" "$I/ef"

# rsync-style: scratch file renamed onto an item, then renamed again and written.
echo '{"v":1}' >"$I/ab/.abc.json.tmp"
mv "$I/ab/.abc.json.tmp" "$I/ab/abc.json"
mv "$I/ab/abc.json" "$I/ab/abd.json"
echo '{"v":2}' >"$I/ab/abd.json"
[ ! -e "$I/ab/abc.json" ] || fail "the old name came back"
assert_eq '{"v":2}' "$(cat "$I/ab/abd.json")" "write after rename of a renamed scratch file"
# ... and moved aside as vim does with its backup, then back.
echo '{"v":3}' >"$I/ab/.abx.json.tmp"
mv "$I/ab/.abx.json.tmp" "$I/ab/abx.json"
mv "$I/ab/abx.json" "$I/ab/abx.json~"
assert_eq '{"v":3}' "$(cat "$I/ab/abx.json~")" "item moved aside to a scratch name"
[ ! -e "$I/ab/abx.json" ] || fail "item still there after moving it aside"
mv "$I/ab/abx.json~" "$I/ab/abx.json"
assert_eq '{"v":3}' "$(cat "$I/ab/abx.json")" "scratch moved back onto the item"

# A created file that is not valid yet cannot replace an existing item.
echo '{"keep":"me"}' >"$I/jk/jkn.json"
python3 - "$I/jk" <<'PY' || fail "pending rename check failed"
import errno, os, sys
d = sys.argv[1]
fd = os.open(d + "/jko.json", os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd, b'{"half":')
try:
    os.rename(d + "/jko.json", d + "/jkn.json")
    sys.exit("rename of an invalid new file onto an item succeeded")
except OSError as e:
    if e.errno != errno.EINVAL:
        sys.exit("rename failed with %s, not EINVAL" % e)
os.write(fd, b'1}')
os.close(fd)
PY
assert_eq '{"keep":"me"}' "$(cat "$I/jk/jkn.json")" "item replaced by an invalid body"
assert_eq '{"half":1}' "$(cat "$I/jk/jko.json")" "the new file, completed, under its own name"

# A refused commit leaves the stored mtime and mode alone (cp -p order).
touch -d '2020-02-02 02:02:02' "$I/jk/jkn.json"
chmod 644 "$I/jk/jkn.json"
python3 - "$I/jk/jkn.json" <<'PY' || fail "refused commit check failed"
import errno, os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC)
os.write(fd, b'{"broken":')
os.utime(fd, (1000000000, 1000000000))
os.fchmod(fd, 0o600)
try:
    os.close(fd)
    sys.exit("close of an invalid body succeeded")
except OSError as e:
    sys.exit(0 if e.errno == errno.EINVAL else "close failed with %s" % e)
PY
assert_eq "644 $(date -d '2020-02-02 02:02:02' +%s)" "$(stat -c '%a %Y' "$I/jk/jkn.json")" "times/mode after a refused commit"
assert_eq '{"keep":"me"}' "$(cat "$I/jk/jkn.json")" "content after a refused commit"

# A file being created while an import adds items keeps its own inode.
mkdir -p "$T/imp/ef"
echo '{"imported":"ef2"}' >"$T/imp/ef/ef2.json"
python3 - "$I" "$ITEMFS" "$STORE" "$T/imp" <<'PY' || fail "create during import check failed"
import os, subprocess, sys
items, itemfs, store, src = sys.argv[1:]
fd = os.open(items + "/cd/cdf.json", os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd, b'{"pending":')
subprocess.run([itemfs, "import", store, src], check=True, stderr=subprocess.DEVNULL)
import time; time.sleep(1.2)  # the kernel's entry cache of items/ef/ lasts a second
a = os.stat(items + "/cd/cdf.json").st_ino
b = os.stat(items + "/ef/ef2.json").st_ino
if a == b:
    sys.exit("a new file and an imported item share inode %d" % a)
if open(items + "/ef/ef2.json").read() != '{"imported":"ef2"}\n':
    sys.exit("the imported item reads wrong")
os.write(fd, b'true}')
os.close(fd)
PY
assert_eq '{"pending":true}' "$(cat "$I/cd/cdf.json")" "the created file"
assert_eq '{"imported":"ef2"}' "$(cat "$I/ef/ef2.json")" "the imported item"
"$ITEMFS" fsck "$STORE" >/dev/null || fail "fsck"
