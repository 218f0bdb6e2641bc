#!/usr/bin/env bash
# ls, ls -l, cat, jq, grep -r, find -newer, sha256sum, df.
source "$(dirname "$0")/lib.sh"
make_items "$T/src" 50
start_mount
cp -r "$T/src/." "$MNT/items/"

[ "$(ls "$MNT/items" | wc -l)" = "$(ls "$T/src" | wc -l)" ] || fail "shard count differs"
one=$(first_of "$T/src" "*/*.json")
# ls -l: real size, mode, owner and mtime.
chmod 640 "$MNT/items/$one"
touch -d '2021-03-04 05:06:07' "$MNT/items/$one"
read -r mode links owner group size _ < <(ls -l "$MNT/items/$one")
assert_eq "-rw-r-----" "$mode" "mode"
assert_eq "$(id -un)" "$owner" "owner"
assert_eq "$(stat -c %s "$T/src/$one")" "$size" "size"
assert_eq "2021-03-04 05:06:07" "$(date -d @"$(stat -c %Y "$MNT/items/$one")" '+%F %T')" "mtime"

cmp "$T/src/$one" "$MNT/items/$one" || fail "cat differs"
assert_eq "$(jq -r .title "$T/src/$one")" "$(jq -r .title "$MNT/items/$one")" "jq"
assert_eq "$(grep -rl 'text of item 7"' "$T/src" | sed "s#$T/src/##")" \
  "$(grep -rl 'text of item 7"' "$MNT/items" | sed "s#$MNT/items/##")" "grep -r"
(cd "$T/src" && sha256sum */*.json) >"$T/sums"
(cd "$MNT/items" && sha256sum -c --quiet "$T/sums") || fail "sha256sum -c"
touch -d '2020-01-01' "$T/ref"
touch -d '2019-01-01' "$MNT/items/$one"
newer=$(find "$MNT/items" -name '*.json' -newer "$T/ref" | wc -l)
assert_eq 49 "$newer" "find -newer"
ls -lR "$MNT" >/dev/null || fail "ls -lR"

# df: the store's size as used, the disk's free space as available.
read -r _ size used avail _ < <(df -k "$MNT" | tail -1)
read -r _ _ _ disk_avail _ < <(df -k "$STORE" | tail -1)
[ "$used" -gt 0 ] || fail "df used is 0"
diff=$(( avail > disk_avail ? avail - disk_avail : disk_avail - avail ))
[ "$diff" -lt 102400 ] || fail "df avail $avail vs disk $disk_avail"
