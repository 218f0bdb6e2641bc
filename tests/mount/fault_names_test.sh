#!/usr/bin/env bash
# names. 255-byte names (a 250-byte id + ".json") work and
# 256-byte ones fail with ENAMETOOLONG; unicode, right-to-left, spaces,
# quotes, newlines, leading dots and dashes round-trip through cp, ls, mv,
# a backup archive, a remount and `itemfs export`; names differing only in
# case or Unicode normalisation are different items; a wrong shard, bad UTF-8
# and an id starting with ".." are refused with EINVAL.
# Shard = the first two code points of the id ("00" for one-code-point ids).
source "$(dirname "$0")/lib.sh"
command -v jq >/dev/null || fail "jq is needed"

# The source tree: one item per awkward id, in its shard. ids.json keeps the
# list (newlines and all) for the python checks.
python3 - "$T/src" "$T/ids.json" <<'PY'
import json, os, sys, unicodedata
src, out = sys.argv[1], sys.argv[2]
def shard(i):
    return i[:2] if len(i) >= 2 else "00"
ids = [
    "a" * 250,                          # "<id>.json" is 255 bytes
    "é" * 125,                          # 250 bytes of two-byte characters
    "日" * 83 + "a",                    # 250 bytes, three-byte characters
    "😀" * 62 + "ab",                   # 250 bytes, four-byte characters
    "שלום עולם",                        # right to left, with a space
    "مرحبا بالعالم",
    "\u202eevil.txt",                   # starts with RIGHT-TO-LEFT OVERRIDE
    "👍🏽 thumbs",                       # the shard is an emoji and its modifier
    "with space", " leading space", "trailing space ",
    'double"quote', "it's", "back\\slash", "new\nline", "tab\there", "star*?[glob]",
    "$(touch pwned)", "%s%n%x", "a:b;c|d&e",
    ".hidden", ".", "-rf", "--help", "-",
    "x", "00x",
    "Abc", "abc", "ABC", "abC",          # case: four items, three shards
    unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café"),
    unicodedata.normalize("NFC", "éte"), unicodedata.normalize("NFD", "éte"),  # NFD moves the shard
    "Å" + "ngström", "\u212bngström",   # LATIN A WITH RING vs ANGSTROM SIGN
]
ids.remove(".")  # "." is no id; kept above to say so
for i in ids:
    assert len(i.encode()) <= 250, i
    d = os.path.join(src, shard(i))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, i + ".json"), "w", encoding="utf-8") as f:
        f.write(json.dumps({"id": i, "title": "name test", "content": "zebracorn " + i}, ensure_ascii=False) + "\n")
assert len(set(ids)) == len(ids)
json.dump(ids, open(out, "w"))
PY
nids=$(jq length "$T/ids.json")

start_mount

# 1. cp -a in, diff -r back out: every name and byte is kept.
cp -a "$T/src/." "$MNT/items/" 2>"$T/cp.err" || fail "cp -a: $(head -5 "$T/cp.err")"
diff -r "$T/src" "$MNT/items" >"$T/diff" 2>&1 || fail "diff -r after cp: $(head -10 "$T/diff")"
assert_eq "$nids" "$(jq .items "$MNT/stats.json")" "items after cp"

# 2. Per-name checks with errno, in python.
python3 - "$MNT" "$T/ids.json" >"$T/problems" 2>&1 <<'PY' || true
import errno, json, os, sys, unicodedata
mnt, ids = sys.argv[1], json.load(open(sys.argv[2]))
items = f"{mnt}/items"
problems = []
def shard(i):
    return i[:2] if len(i) >= 2 else "00"
def err(fn):
    try:
        fn()
        return 0
    except OSError as e:
        return e.errno
def name(e):
    return errno.errorcode.get(e, str(e))
def expect(what, fn, want):
    got = err(fn)
    if got != want:
        problems.append(f"{what}: got {name(got)}, expected {name(want)}")
def write(path, data=b'{"k":1}\n'):
    with open(path, "wb") as f:
        f.write(data)
def read(path):
    with open(path, "rb") as f:
        return f.read()

# Listing: each shard lists exactly its items, byte for byte.
want = {}
for i in ids:
    want.setdefault(shard(i), set()).add(i + ".json")
if set(os.listdir(items)) != set(want):
    problems.append(f"items/ lists {sorted(set(os.listdir(items)) ^ set(want))} wrongly")
for s, names in want.items():
    got = set(os.listdir(f"{items}/{s}"))
    if got != names:
        problems.append(f"shard {s!r}: extra {sorted(got - names)!r}, missing {sorted(names - got)!r}")

for i in ids:
    body = read(f"{items}/{shard(i)}/{i}.json")
    if json.loads(body)["id"] != i:
        problems.append(f"{i!r}: content of another item")
    # The flat alias reaches the same item.
    if read(f"{items}/{i}.json") != body:
        problems.append(f"{i!r}: items/<id>.json differs")
    # rename within the store and back keeps it.
    tmp = f"{items}/zz/zz-{len(i)}.json"
    os.makedirs(f"{items}/zz", exist_ok=True)
    os.rename(f"{items}/{shard(i)}/{i}.json", tmp)
    os.rename(tmp, f"{items}/{shard(i)}/{i}.json")
    if read(f"{items}/{shard(i)}/{i}.json") != body:
        problems.append(f"{i!r}: changed by a rename round trip")

# Case and normalisation variants are different items.
nfc, nfd = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
if read(f"{items}/ca/{nfc}.json") == read(f"{items}/ca/{nfd}.json"):
    problems.append("NFC and NFD café read the same item")
os.unlink(f"{items}/ca/{nfd}.json")
if not os.path.exists(f"{items}/ca/{nfc}.json"):
    problems.append("removing NFD café removed NFC café")
write(f"{items}/ca/{nfd}.json", json.dumps({"id": nfd, "title": "name test", "content": "zebracorn " + nfd}, ensure_ascii=False).encode() + b"\n")
os.unlink(f"{items}/ab/abc.json")
for other in ("Ab/Abc.json", "AB/ABC.json", "ab/abC.json"):
    if not os.path.exists(f"{items}/{other}"):
        problems.append(f"removing abc removed {other}")
write(f"{items}/ab/abc.json", json.dumps({"id": "abc", "title": "name test", "content": "zebracorn abc"}).encode() + b"\n")

# Too long: 251 bytes of id (256-byte names), however the bytes are made.
for long_id in ("a" * 251, "é" * 125 + "a", "😀" * 62 + "abc"):
    s = shard(long_id)
    os.makedirs(f"{items}/{s}", exist_ok=True)
    expect(f"create {len(long_id.encode())}-byte id in its shard", lambda: write(f"{items}/{s}/{long_id}.json"), errno.ENAMETOOLONG)
    expect(f"create {len(long_id.encode())}-byte id flat", lambda: write(f"{items}/{long_id}.json"), errno.ENAMETOOLONG)
    expect(f"rename onto a {len(long_id.encode())}-byte id",
           lambda: os.rename(f"{items}/ab/abc.json", f"{items}/{s}/{long_id}.json"), errno.ENAMETOOLONG)
    if os.path.exists(f"{items}/{s}/{long_id}.json"):
        problems.append(f"a {len(long_id.encode())}-byte id exists")
if not os.path.exists(f"{items}/ab/abc.json"):
    problems.append("abc lost by a refused rename")

# Wrong shard: EINVAL for create, rename and mkdir; ENOENT for lookups.
os.makedirs(f"{items}/cd", exist_ok=True)
expect("create abc.json in cd/", lambda: write(f"{items}/cd/abc.json"), errno.EINVAL)
expect("create a one-character id outside 00/", lambda: write(f"{items}/ab/a.json"), errno.EINVAL)
expect("create NFD éte in the NFC shard", lambda: write(f"{items}/ét/{unicodedata.normalize('NFD', 'éte')}.json"), errno.EINVAL)
expect("rename abc.json into cd/", lambda: os.rename(f"{items}/ab/abc.json", f"{items}/cd/abc.json"), errno.EINVAL)
expect("stat abc.json in cd/", lambda: os.stat(f"{items}/cd/abc.json"), errno.ENOENT)
expect("mkdir of a three-character shard", lambda: os.mkdir(f"{items}/abc"), errno.EINVAL)
expect("mkdir of a one-character shard", lambda: os.mkdir(f"{items}/a"), errno.EINVAL)
expect("mkdir below a shard", lambda: os.mkdir(f"{items}/ab/cd"), errno.EPERM)
# Not UTF-8, or a shard of "..": EINVAL, in a shard and flat.
os.makedirs(f"{items}".encode() + b"/\xc3\xa9x", exist_ok=True)
for bad in (b"\xff\xfe", b"ab\xc3(", b"\xc3\xa9x\xed\xa0\x80", b"\xc0\xafab"):
    expect(f"create {bad!r}.json flat", lambda: write(f"{items}".encode() + b"/" + bad + b".json"), errno.EINVAL)
expect("create ..x.json flat", lambda: write(f"{items}/..x.json"), errno.EINVAL)
expect("create ...json flat", lambda: write(f"{items}/....json"), errno.EINVAL)
# ".json" is no item name (the id would be empty): it is a scratch file.
write(f"{items}/ab/.json", b"not json")
if read(f"{items}/ab/.json") != b"not json":
    problems.append(".json scratch file")
os.unlink(f"{items}/ab/.json")
os.rmdir(f"{items}/cd")
os.rmdir(f"{items}".encode() + b"/\xc3\xa9x")
for d in os.listdir(items):
    if d not in want and d != "zz":
        problems.append(f"left behind: shard {d!r}")
os.rmdir(f"{items}/zz")
print("\n".join(problems))
print(f"done {len(problems)}")
PY
kill -0 "$DAEMON_PID" 2>/dev/null || fail "the daemon died: $(tail -n 5 "$T/problems")"
tail -n 1 "$T/problems" | grep -q '^done 0$' || fail "$(head -n 40 "$T/problems")"
diff -r "$T/src" "$MNT/items" >"$T/diff" 2>&1 || fail "diff -r after the checks: $(head -10 "$T/diff")"
# (An id of 251 bytes makes a name of 256, past NAME_MAX: the kernel's
# lookup of it fails with ENAMETOOLONG before any create reaches itemfs,
# so there is no refusal to log; the errno says why.)
grep -q 'refused to create items/cd/abc.json: an item belongs in the shard of its first two characters (ab)' "$MNT/log" ||
  fail "the log does not name the right shard"

# 3. ls and mv from the shell, names with a newline and a leading dash included.
mv -- "$MNT/items/-r/-rf.json" "$MNT/items/-r/-rf2.json" || fail "mv -rf"
mv -- "$MNT/items/-r/-rf2.json" "$MNT/items/-r/-rf.json" || fail "mv -rf back"
nl=$'new\nline'
[ -f "$MNT/items/ne/$nl.json" ] || fail "a name with a newline"
assert_eq 1 "$(ls -b "$MNT/items/ne" | grep -c 'new\\nline.json')" "ls -b of a name with a newline"

# 4. Search gives the right paths for right-to-left and unicode ids.
assert_eq "items/של/שלום עולם.json" "$(jq -r '.hits[] | select(.id == "שלום עולם") | .path' "$MNT/search/zebracorn limit:1000.json")" "search path of an RTL id"
assert_eq "$nids" "$(jq '.hits | length' "$MNT/search/zebracorn limit:1000.json")" "search hits for every id"

# 5. A backup archive holds every name; plain tar gives the same tree back.
echo full >"$MNT/backups/ctl" || fail "backup: $(cat "$MNT/backups/status")"
archive=$(find "$MNT/backups" -name '*.tar.gz' | head -n 1)
[ -n "$archive" ] || fail "no archive listed"
mkdir "$T/untar"
tar -xzf "$archive" -C "$T/untar" || fail "tar xzf"
diff -r "$T/src" "$T/untar/items" >"$T/diff" 2>&1 || fail "diff -r of the archive: $(head -10 "$T/diff")"

# 6. A remount, `itemfs export` and fsck agree.
remount
diff -r "$T/src" "$MNT/items" >"$T/diff" 2>&1 || fail "diff -r after remount: $(head -10 "$T/diff")"
stop_mount
"$ITEMFS" export "$STORE" "$T/export" >/dev/null 2>&1 || fail "export"
diff -r "$T/src" "$T/export" >"$T/diff" 2>&1 || fail "diff -r of the export: $(head -10 "$T/diff")"
"$ITEMFS" fsck "$STORE" >"$T/fsck" 2>&1 || fail "fsck: $(cat "$T/fsck")"
echo "names: $nids awkward ids kept through cp, mv, search, backup, remount and export"
