#!/usr/bin/env bash
# No name longer than NAME_MAX (255 bytes, as statfs says) is made or found
# under items/: create, mknod, mkdir, rename, link and symlink of a
# 256-byte name fail with ENAMETOOLONG, scratch files (names not ending in
# .json) included, and a lookup of such a name does too. 255-byte scratch
# names still work.
source "$(dirname "$0")/lib.sh"

start_mount
mkdir "$MNT/items/ab"
echo '{"id":"abc"}' >"$MNT/items/ab/abc.json"
python3 - "$MNT" >"$T/problems" 2>&1 <<'PY' || true
import errno, os, sys
mnt = sys.argv[1]
items = f"{mnt}/items"
problems = []
def name(e):
    return errno.errorcode.get(e, str(e))
def expect(what, fn, want):
    try:
        fn()
        got = 0
    except OSError as e:
        got = e.errno
    if got != want:
        problems.append(f"{what}: got {name(got)}, expected {name(want)}")
def write(path, data=b"scratch"):
    with open(path, "wb") as f:
        f.write(data)

if os.statvfs(items).f_namemax != 255:
    problems.append(f"statfs says NAME_MAX {os.statvfs(items).f_namemax}")
ok = "s" * 255
for d in (items, f"{items}/ab"):
    write(f"{d}/{ok}")
    if open(f"{d}/{ok}", "rb").read() != b"scratch":
        problems.append(f"255-byte scratch name in {d}")
    for long in ("s" * 256, "é" * 128, "x" * 300 + ".json.tmp", ".x.json." + "A" * 250):
        what = f"{len(long.encode())}-byte name in {os.path.basename(d)}"
        expect(f"create {what}", lambda: write(f"{d}/{long}"), errno.ENAMETOOLONG)
        expect(f"stat {what}", lambda: os.stat(f"{d}/{long}"), errno.ENAMETOOLONG)
        expect(f"mknod {what}", lambda: os.mkfifo(f"{d}/{long}"), errno.ENAMETOOLONG)
        expect(f"rename onto {what}", lambda: os.rename(f"{d}/{ok}", f"{d}/{long}"), errno.ENAMETOOLONG)
        expect(f"link {what}", lambda: os.link(f"{d}/{ok}", f"{d}/{long}"), errno.ENAMETOOLONG)
        expect(f"symlink {what}", lambda: os.symlink("target", f"{d}/{long}"), errno.ENAMETOOLONG)
        if not os.path.lexists(f"{d}/{ok}"):
            problems.append(f"{what}: the 255-byte file went")
            try:
                os.rename(f"{d}/{long}", f"{d}/{ok}")
            except OSError:
                write(f"{d}/{ok}")
        for n in os.listdir(d):
            if len(n.encode()) > 255:
                os.unlink(f"{d}/{n}")
    expect("mkdir of a 256-byte name", lambda: os.mkdir(f"{d}/" + "d" * 256), errno.ENAMETOOLONG)
    os.unlink(f"{d}/{ok}")
# An item name of 256 bytes: ENAMETOOLONG as before.
expect("create a 256-byte item name", lambda: write(f"{items}/ab/ab" + "c" * 249 + ".json", b"{}"), errno.ENAMETOOLONG)
print("\n".join(problems))
print(f"done {len(problems)}")
PY
kill -0 "$DAEMON_PID" 2>/dev/null || fail "the daemon died"
tail -n 1 "$T/problems" | grep -q '^done 0$' || fail "$(head -n 30 "$T/problems")"
echo "names: nothing longer than 255 bytes is made or found"
