#!/usr/bin/env bash
# JSON edge cases through the mount. The corpus is
# tests/data/json/{valid,invalid,impl} plus big cases generated here:
#  - valid ones are stored byte-exact (cmp through the mount);
#  - invalid ones fail at close() with EINVAL (python sees the errno), a new
#    item never appears, an existing item keeps its old version, a rename of
#    a scratch file with that body onto an item name fails with EINVAL, and
#    the log says "refused items/...: invalid JSON at line L, column C";
#  - implementation-defined ones do what tests/data/json/impl/DECISIONS says
#    (the decisions and their reasons are written there);
#  - the daemon never crashes nor overflows its stack: it is alive at the end
#    and still serves stats.json and search.
source "$(dirname "$0")/lib.sh"
DATA=$(cd "$(dirname "$0")/../data/json" && pwd)
G=$T/generated
mkdir -p "$G/valid" "$G/invalid"

# Big cases, generated rather than kept in git.
python3 - "$G" <<'PY'
import sys
g = sys.argv[1]
def put(kind, name, data):
    open(f"{g}/{kind}/{name}.json", "wb").write(data)
N = 100_000
put("valid", "deep_array_100k", b"[" * N + b"]" * N)
put("valid", "deep_object_100k", b'{"a":' * N + b"1" + b"}" * N)
put("valid", "deep_mixed_100k", b'[{"k":' * (N // 2) + b"null" + b"}]" * (N // 2))
put("valid", "number_300_digits", b"[" + b"9" * 300 + b", -" + b"1" * 300 + b"]")
put("valid", "number_100k_digits_fraction", b"[1." + b"9" * N + b"]")
put("valid", "number_100k_fraction", b"[0." + b"1" * N + b"e-100000]")
put("valid", "string_1mb", b'{"s":"' + b"x" * (1 << 20) + b'"}')
put("valid", "array_100k_items", b"[" + b",".join([b"1"] * N) + b"]")
# Beyond a double's range: refused, as impl/DECISIONS says for huge_exponent.
put("invalid", "number_100k_digits", b"[" + b"9" * N + b"]")
put("invalid", "deep_unclosed_100k", b"[" * N)
put("invalid", "deep_unbalanced_100k", b"[" * N + b"}" * N)
put("invalid", "deep_trailing_comma_100k", b'{"a":' * N + b"1," + b"}" * N)
put("invalid", "deep_bad_utf8_100k", b"[" * N + b'"\xff"' + b"]" * N)
PY

# impl/ cases go where DECISIONS puts them.
[ -f "$DATA/impl/DECISIONS" ] || fail "no impl/DECISIONS"
while read -r name verdict _; do
  case "$name" in '#'* | '') continue ;; esac
  [ -f "$DATA/impl/$name.json" ] || fail "DECISIONS names a missing case $name"
  case "$verdict" in
    accept) cp "$DATA/impl/$name.json" "$G/valid/impl_$name.json" ;;
    reject) cp "$DATA/impl/$name.json" "$G/invalid/impl_$name.json" ;;
    *) fail "DECISIONS: $name has verdict [$verdict]" ;;
  esac
done <"$DATA/impl/DECISIONS"
for f in "$DATA"/impl/*.json; do
  n=$(basename "$f" .json)
  grep -q "^$n " "$DATA/impl/DECISIONS" || fail "impl case $n has no decision"
done
cp "$DATA"/valid/*.json "$G/valid/"
cp "$DATA"/invalid/*.json "$G/invalid/"
nvalid=$(find "$G/valid" -name '*.json' | wc -l)
ninvalid=$(find "$G/invalid" -name '*.json' | wc -l)
[ "$nvalid" -ge 30 ] && [ "$ninvalid" -ge 50 ] || fail "corpus too small: $nvalid valid, $ninvalid invalid"

start_mount
mkdir "$MNT/items/ok" "$MNT/items/no" "$MNT/items/ol"

# One python run drives every case; it prints one line per problem.
python3 - "$G" "$MNT" >"$T/problems" 2>&1 <<'PY' || true
import errno, os, sys, time
g, mnt = sys.argv[1], sys.argv[2]
items = f"{mnt}/items"
OLD = b'{"old":"kept version"}\n'
problems = []

def write_close(path, data):
    """Writes `data` to `path` in two pieces; returns the errno of close() (0 if none)."""
    f = open(path, "wb")
    try:
        half = len(data) // 2
        f.write(data[:half]); f.flush()
        f.write(data[half:])
    except OSError as e:
        try:
            f.close()
        except OSError:
            pass
        return ("write", e.errno)
    try:
        f.close()
    except OSError as e:
        return ("close", e.errno)
    return ("close", 0)

def read(path):
    with open(path, "rb") as f:
        return f.read()

for name in sorted(os.listdir(f"{g}/valid")):
    data = open(f"{g}/valid/{name}", "rb").read()
    base = name[:-5]
    path = f"{items}/ok/ok_{base}.json"
    where, err = write_close(path, data)
    if err:
        problems.append(f"valid {name}: {where} failed with {errno.errorcode.get(err, err)}")
        continue
    if read(path) != data:
        problems.append(f"valid {name}: read back differs")
    # Overwriting an existing item with it works too.
    over = f"{items}/ol/ol_{base}.json"
    write_close(over, OLD)
    where, err = write_close(over, data)
    if err or read(over) != data:
        problems.append(f"valid {name}: overwrite gave {where} {err}")

for name in sorted(os.listdir(f"{g}/invalid")):
    data = open(f"{g}/invalid/{name}", "rb").read()
    base = name[:-5]
    new = f"{items}/no/no_{base}.json"
    where, err = write_close(new, data)
    if (where, err) != ("close", errno.EINVAL):
        problems.append(f"invalid {name}: new item: {where} gave {errno.errorcode.get(err, err)}, expected close EINVAL")
    # The kernel sends release after close() has returned; until then the
    # refused new file may still be seen under its name.
    for _ in range(200):
        if not os.path.exists(new):
            break
        time.sleep(0.01)
    else:
        problems.append(f"invalid {name}: refused new item still exists 2 s after close")
    old = f"{items}/ol/ol_x{base}.json"
    write_close(old, OLD)
    where, err = write_close(old, data)
    if (where, err) != ("close", errno.EINVAL):
        problems.append(f"invalid {name}: overwrite: {where} gave {errno.errorcode.get(err, err)}")
    try:
        got = read(old)
        if got != OLD:
            problems.append(f"invalid {name}: old version not kept: read {got[:40]!r}, size {os.stat(old).st_size}")
    except OSError as e:
        problems.append(f"invalid {name}: old version unreadable: {e}")
    # A scratch file with that body renamed onto the item: EINVAL, both kept.
    scratch = f"{items}/ol/.ol_x{base}.json.tmp"
    with open(scratch, "wb") as f:
        f.write(data)
    try:
        os.rename(scratch, old)
        problems.append(f"invalid {name}: rename onto an item succeeded")
    except OSError as e:
        if e.errno != errno.EINVAL:
            problems.append(f"invalid {name}: rename gave {errno.errorcode.get(e.errno)}")
    if read(old) != OLD:
        problems.append(f"invalid {name}: old version not kept after rename")
    if not os.path.exists(scratch) or read(scratch) != data:
        problems.append(f"invalid {name}: scratch file lost or changed")
    else:
        os.unlink(scratch)

print("\n".join(problems))
print(f"done {len(problems)}")
PY
kill -0 "$DAEMON_PID" 2>/dev/null || fail "the daemon died: $(tail -n 5 "$T/problems")"
tail -n 1 "$T/problems" | grep -q '^done 0$' || fail "$(head -n 40 "$T/problems")"

# Every refusal is in the log with its position; the refused item's name is
# in the line so a user can tell which file it was.
for f in "$G"/invalid/*.json; do
  base=$(basename "$f" .json)
  grep -qF "refused items/no/no_$base.json: invalid JSON" "$MNT/log" ||
    grep -qF "refused items/no/no_$base.json: " "$MNT/log" ||
    fail "no log line for $base"
done
grep -E 'refused items/no/no_trailing_comma_array.json: invalid JSON at line 1, column 6 ' "$MNT/log" >/dev/null ||
  fail "log line lacks the position: $(grep no_trailing_comma_array "$MNT/log")"
grep -E 'refused items/no/no_raw_newline_in_string.json: invalid JSON at line 1, column 4' "$MNT/log" >/dev/null ||
  fail "log line for a raw newline: $(grep no_raw_newline "$MNT/log")"

# Exactly the valid ones (twice: ok/ and ol/) plus the untouched old
# versions are in the store.
expect=$((nvalid * 2 + ninvalid))
assert_eq "$expect" "$(jq .items "$MNT/stats.json")" "item count"
assert_eq 0 "$(find "$MNT/items/no" -name '*.json' | wc -l)" "refused new items listed"

# The deep documents went through the search index too; the index still works.
# (A search answers after at most 200 ms, from what is indexed by then: wait
# until the index has caught up with the corpus, as a loaded machine may need.)
for _ in $(seq 1 1200); do
  [ "$(jq .pending "$MNT/search/kept.json")" = null ] && break
  sleep 0.05
done
ls "$MNT/search/kept" >/dev/null || fail "search after the corpus"
[ "$(ls "$MNT/search/kept limit:10000" | wc -l)" -ge "$ninvalid" ] || fail "search finds too few: $(ls "$MNT/search/kept limit:10000" | wc -l)"

# And after a remount every valid case is still byte-exact; fsck is clean.
remount
for f in "$G"/valid/*.json; do
  cmp -s "$f" "$MNT/items/ok/ok_$(basename "$f")" || fail "after remount: $(basename "$f") differs"
done
stop_mount
"$ITEMFS" fsck "$STORE" >"$T/fsck" 2>&1 || fail "fsck: $(cat "$T/fsck")"
echo "json: $nvalid valid stored byte-exact, $ninvalid invalid refused"
