#!/usr/bin/env bash
# A file removed while it is open stays usable through the open descriptor,
# as on ext4: fstat succeeds with st_nlink 0 and the file's size and mode,
# and reads keep working until close. Checked for a committed item open for
# reading, one open for writing, one replaced by a rename, and a scratch
# file; a file that is not removed keeps st_nlink 1.
source "$(dirname "$0")/lib.sh"

start_mount
mkdir "$MNT/items/ab" "$MNT/items/cd"
python3 - "$MNT" >"$T/problems" 2>&1 <<'PY' || true
import errno, os, stat, sys
mnt = sys.argv[1]
items = f"{mnt}/items"
problems = []
def write(path, data):
    with open(path, "wb") as f:
        f.write(data)

def check(what, path, data, mode, unlink, replaced=False):
    fd = os.open(path, os.O_RDONLY)
    before = os.fstat(fd)
    if before.st_nlink != 1:
        problems.append(f"{what}: st_nlink {before.st_nlink} before removal")
    unlink()
    try:
        st = os.fstat(fd)
    except OSError as e:
        problems.append(f"{what}: fstat after removal: {errno.errorcode.get(e.errno)}")
        os.close(fd)
        return
    if st.st_nlink != 0:
        problems.append(f"{what}: st_nlink {st.st_nlink} after removal, expected 0")
    if st.st_size != len(data):
        problems.append(f"{what}: st_size {st.st_size}, expected {len(data)}")
    if stat.S_IMODE(st.st_mode) != mode or not stat.S_ISREG(st.st_mode):
        problems.append(f"{what}: mode {oct(st.st_mode)}, expected {oct(mode)}")
    if os.pread(fd, 1 << 20, 0) != data:
        problems.append(f"{what}: read after removal gives other bytes")
    if os.path.exists(path) != replaced:
        problems.append(f"{what}: {'not ' if replaced else ''}there by name after")
    os.close(fd)

data = b'{"id":"abc","title":"removed while open"}\n'
write(f"{items}/ab/abc.json", data)
os.chmod(f"{items}/ab/abc.json", 0o640)
check("item open for reading", f"{items}/ab/abc.json", data, 0o640, lambda: os.unlink(f"{items}/ab/abc.json"))

write(f"{items}/ab/abd.json", data)
check("item by its flat name", f"{items}/abd.json", data, 0o644, lambda: os.unlink(f"{items}/abd.json"))

write(f"{items}/cd/cde.json", data)
write(f"{items}/cd/cdf.json", b'{"id":"cdf"}\n')
check("item replaced by a rename", f"{items}/cd/cde.json", data, 0o644,
      lambda: os.rename(f"{items}/cd/cdf.json", f"{items}/cd/cde.json"), replaced=True)

scratch = b"not json, a scratch file\n"
write(f"{items}/ab/.abc.json.swp", scratch)
os.chmod(f"{items}/ab/.abc.json.swp", 0o600)
check("scratch file", f"{items}/ab/.abc.json.swp", scratch, 0o600, lambda: os.unlink(f"{items}/ab/.abc.json.swp"))

# Open for writing, removed, then fstat and read through the descriptor.
write(f"{items}/ab/abe.json", data)
fd = os.open(f"{items}/ab/abe.json", os.O_RDWR)
os.unlink(f"{items}/ab/abe.json")
try:
    st = os.fstat(fd)
    if st.st_nlink != 0 or st.st_size != len(data):
        problems.append(f"item open for writing: st_nlink {st.st_nlink}, size {st.st_size} after removal")
    if os.pread(fd, 4096, 0) != data:
        problems.append("item open for writing: read after removal")
except OSError as e:
    problems.append(f"item open for writing: fstat after removal: {errno.errorcode.get(e.errno)}")
try:
    os.close(fd)
except OSError:
    pass
if os.path.exists(f"{items}/ab/abe.json"):
    problems.append("item open for writing came back after close")
print("\n".join(problems))
print(f"done {len(problems)}")
PY
kill -0 "$DAEMON_PID" 2>/dev/null || fail "the daemon died"
tail -n 1 "$T/problems" | grep -q '^done 0$' || fail "$(head -n 30 "$T/problems")"
echo "unlinked open files: fstat gives st_nlink 0, reads work until close"
