#!/usr/bin/env bash
# cp, cp -r dir/*, mv, rm, touch -d, chmod; flat names.
source "$(dirname "$0")/lib.sh"
make_items "$T/src" 30
start_mount
I=$MNT/items

echo '{"a":1}' >"$T/x.json"
mkdir "$I/ab"
cp "$T/x.json" "$I/ab/abc.json"
cmp "$T/x.json" "$I/ab/abc.json" || fail "cp into shard"
cp -r "$T/src"/* "$I/"
diff -r "$T/src" "$I" >/dev/null 2>&1 || diff -r "$T/src" "$I" | grep -v '^Only in '"$I" && true
for f in $(cd "$T/src" && ls */*.json); do cmp "$T/src/$f" "$I/$f" || fail "cp -r $f"; done

# Flat name: stored in its shard, readable by either name.
echo '{"flat":true}' >"$T/flat.json"
cp "$T/flat.json" "$I/zzflat.json"
cmp "$T/flat.json" "$I/zz/zzflat.json" || fail "flat cp not in shard"
cmp "$T/flat.json" "$I/zzflat.json" || fail "flat cat"
[ "$(ls "$I" | grep -c json)" = 0 ] || fail "flat name listed in items/"

# mv within a shard, across shards, flat to flat.
mv "$I/ab/abc.json" "$I/ab/abd.json"
[ ! -e "$I/ab/abc.json" ] || fail "mv left source"
cmp "$T/x.json" "$I/ab/abd.json" || fail "mv content"
mv "$I/ab/abd.json" "$I/cd/cdx.json" 2>/dev/null || { mkdir "$I/cd"; mv "$I/ab/abd.json" "$I/cd/cdx.json"; }
cmp "$T/x.json" "$I/cd/cdx.json" || fail "mv across shards"
mv "$I/zzflat.json" "$I/yyflat.json"
cmp "$T/flat.json" "$I/yy/yyflat.json" || fail "mv flat"
# mv onto an existing item replaces it.
mv "$I/yy/yyflat.json" "$I/cd/cdx.json"
cmp "$T/flat.json" "$I/cd/cdx.json" || fail "mv replace"
[ ! -e "$I/yy/yyflat.json" ] || fail "mv replace left source"
# A name in the wrong shard is refused with EINVAL.
expect_fail cp "$T/x.json" "$I/cd/abc.json"
grep -q "Invalid argument" "$T/last.err" || fail "wrong shard error: $(cat "$T/last.err")"
expect_fail mv "$I/cd/cdx.json" "$I/ab/zz.json"
cmp "$T/flat.json" "$I/cd/cdx.json" || fail "failed mv changed the item"

# touch -d and chmod persist.
touch -d '2001-02-03 04:05:06' "$I/cd/cdx.json"
chmod 600 "$I/cd/cdx.json"
assert_eq "600 $(date -d '2001-02-03 04:05:06' +%s)" "$(stat -c '%a %Y' "$I/cd/cdx.json")" "touch/chmod"
remount
assert_eq "600 $(date -d '2001-02-03 04:05:06' +%s)" "$(stat -c '%a %Y' "$I/cd/cdx.json")" "touch/chmod after remount"

# rm, rm -r of a shard, rmdir of a non-empty shard fails.
rm "$I/cd/cdx.json"
[ ! -e "$I/cd/cdx.json" ] || fail "rm"
expect_fail rmdir "$I/$(first_of "$I" "??")"
first=$(first_of "$I" "*")
rm -r "${I:?}/$first"
[ ! -e "$I/$first" ] || fail "rm -r shard"
# Directories that are not shards are refused.
expect_fail mkdir "$I/notashard"
expect_fail mkdir "$I/ab/sub"

# Two programs rewriting one item at once: the later open(O_TRUNC) starts a
# new version; the earlier writer's next write and its close fail with
# ESTALE, and the item is the later writer's version whole, never a mix.
python3 - "$I/two.json" <<'PY' || fail "two writers of one item"
import errno, json, sys
p = sys.argv[1]
a_body = json.dumps({"w": "a", "t": "x" * 300000}).encode()
b_body = json.dumps({"w": "b", "t": "y" * 200000}).encode()
a = open(p, "wb", buffering=0)
a.write(a_body[:100000])
b = open(p, "wb", buffering=0)
b.write(b_body[:50000])
try:
    a.write(a_body[100000:])
    sys.exit("the superseded writer could still write")
except OSError as e:
    assert e.errno == errno.ESTALE, e
b.write(b_body[50000:])
try:
    a.close()
    sys.exit("the superseded writer's close succeeded")
except OSError as e:
    assert e.errno == errno.ESTALE, e
b.close()
got = open(p, "rb").read()
assert got == b_body, (len(got), got[:20])
PY
