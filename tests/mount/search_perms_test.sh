#!/usr/bin/env bash
# Search answers each caller with the items that caller may read: on a mount
# with allow_other, a user (uid/gid 65534 via setpriv) finds neither the id,
# nor a snippet, nor a count, facet value or suggested word of an item it may
# not read, in search/<q>/, <q>.json, <q>.facets.json or <q>.suggest.json.
# Root finds everything; a chmod that opens an item shows it to the user; the
# group bits count for the item's group (primary or supplementary); an item
# in a shard the user may not enter is hidden; and two users asking the
# same query in turn never see each other's answer.
source "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || fail "this test needs root (it mounts with allow_other and switches users)"
command -v setpriv >/dev/null || fail "setpriv is needed"
command -v jq >/dev/null || fail "jq is needed"
# The user must reach the mount point whatever the modes above $T: mount in /tmp.
MNT=$(mktemp -d /tmp/itemfs-search-perms.XXXXXX)
chmod 0755 "$MNT"
CLEANUP_EXTRA='rmdir "$MNT"'
as_user() { setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"; }
as_user_in() { local g=$1; shift; setpriv --reuid=65534 --regid=65534 --groups="$g" -- "$@"; }
ids() { jq -r '[.hits[].id] | sort | join(" ")'; }

start_mount -o allow_other
I=$MNT/items
S=$MNT/search
mkdir "$I/pu" "$I/pr" "$I/gr"
printf '{"title":"Public quokka","content":"A quokka smiles in the open.","url":"https://open.example.com/a","author":"Alice Open","tags":["visible"]}\n' >"$I/pu/pub.json"
printf '{"title":"Private quokka","content":"The quokka xylophage confession stays hidden.","url":"https://secret.example.org/b","author":"Mallory Hidden","tags":["covert"]}\n' >"$I/pr/priv.json"
chmod 0600 "$I/pr/priv.json"
# Group cases: 0640 with the user's own gid; 0640 with a group the user has
# only as a supplementary group; 0044 owned by the user (the owner bits
# decide for the owner, so the owner may not read it).
printf '{"title":"Group quokka","content":"quokka for the group"}\n' >"$I/gr/grp-own.json"
chown 0:65534 "$I/gr/grp-own.json" && chmod 0640 "$I/gr/grp-own.json"
printf '{"title":"Team quokka","content":"quokka for the team"}\n' >"$I/gr/grp-team.json"
chown 0:4242 "$I/gr/grp-team.json" && chmod 0640 "$I/gr/grp-team.json"
printf '{"title":"Owner quokka","content":"quokka the owner may not read"}\n' >"$I/gr/grp-owner.json"
chown 65534:0 "$I/gr/grp-owner.json" && chmod 0044 "$I/gr/grp-owner.json"
# The items are committed: fsync of items/ is the barrier.
python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd)' "$I"

# The entries of a query directory without their rank, sorted.
entry_ids() { sed 's/^[0-9]*-//; s/\.json$//' | sort | tr '\n' ' ' | sed 's/ $//'; }

check_user_view() {  # what uid/gid 65534 without other groups must see; $1 = when
  local when=$1 out
  out=$(as_user ls "$S/quokka") || fail "$when: the user cannot list search/quokka"
  assert_eq "grp-own pub" "$(entry_ids <<<"$out")" "$when: ls search/quokka/ as the user"
  for e in $out; do
    as_user cat "$S/quokka/$e" >/dev/null || fail "$when: the user cannot read through its entry $e"
  done
  out=$(as_user cat "$S/quokka.json") || fail "$when: the user cannot read search/quokka.json"
  assert_eq "grp-own pub" "$(ids <<<"$out")" "$when: ids in quokka.json as the user"
  assert_eq 2 "$(jq -r .total <<<"$out")" "$when: total in quokka.json as the user"
  for secret in priv xylophage confession hidden Hidden Mallory covert secret.example grp-team grp-owner team owner; do
    if grep -q -- "$secret" <<<"$out"; then fail "$when: quokka.json shows the user '$secret': $out"; fi
  done
  out=$(as_user cat "$S/xylophage.json")
  assert_eq 0 "$(jq -r .total <<<"$out")" "$when: a word only the private item has"
  assert_eq "" "$(as_user ls "$S/xylophage")" "$when: ls of a word only the private item has"
  out=$(as_user cat "$S/quokka.facets.json")
  assert_eq 2 "$(jq -r .total <<<"$out")" "$when: facets total as the user"
  assert_eq "open.example.com" "$(jq -r '[.facets.host[].value] | join(" ")' <<<"$out")" "$when: host facet as the user"
  assert_eq "Alice Open" "$(jq -r '[.facets.author[].value] | join(" ")' <<<"$out")" "$when: author facet as the user"
  assert_eq "visible" "$(jq -r '[.facets.tag[].value] | join(" ")' <<<"$out")" "$when: tag facet as the user"
  out=$(as_user cat "$S/quo.suggest.json")
  assert_eq "quokka:2" "$(jq -r '[.terms[] | "\(.term):\(.docs)"] | join(" ")' <<<"$out")" "$when: suggest quo as the user"
  out=$(as_user cat "$S/xylo.suggest.json")
  assert_eq 0 "$(jq -r '.terms | length' <<<"$out")" "$when: suggest of the private word as the user"
  out=$(as_user cat "$S/conf.suggest.json")
  assert_eq "" "$(jq -r '[.terms[].term] | join(" ")' <<<"$out")" "$when: suggest conf as the user"
}

check_root_view() {  # $1 = when
  local when=$1
  assert_eq 5 "$(ls "$S/quokka" | wc -l)" "$when: ls search/quokka/ as root"
  assert_eq "grp-own grp-owner grp-team priv pub" "$(ids <"$S/quokka.json")" "$when: ids as root"
  assert_eq 5 "$(jq -r .total "$S/quokka.json")" "$when: total as root"
  grep -q '\[xylophage\]' "$S/xylophage.json" || fail "$when: root's snippet of the private item: $(cat "$S/xylophage.json")"
  assert_eq 5 "$(jq -r .total "$S/quokka.facets.json")" "$when: facets total as root"
  jq -e '.facets.author | map(.value) | index("Mallory Hidden") != null' "$S/quokka.facets.json" >/dev/null ||
    fail "$when: root's facets lack the private item: $(cat "$S/quokka.facets.json")"
  assert_eq "quokka:5" "$(jq -r '[.terms[] | "\(.term):\(.docs)"] | join(" ")' "$S/quo.suggest.json")" "$when: suggest quo as root"
  assert_eq "xylophage:1" "$(jq -r '[.terms[] | "\(.term):\(.docs)"] | join(" ")' "$S/xylo.suggest.json")" "$when: suggest xylo as root"
}

# 1. The user sees only what it may read; root sees everything.
check_user_view "first look"
check_root_view "first look"
# 2. The same names asked in turn by root and the user: neither answer leaks
#    into the other (nothing cached by name across callers). Root looks the
#    names up last, then the user reads them at once.
ls "$S/quokka" >/dev/null; cat "$S/quokka.json" "$S/quokka.facets.json" "$S/quo.suggest.json" >/dev/null
check_user_view "right after root"
check_root_view "right after the user"
# The user holding the directory open while root asks the same query.
as_user sh -c "cd '$S/quokka' && ls '$S/quokka' >/dev/null && sleep 0.3 && ls" >"$T/held" &
held=$!
sleep 0.1
ls "$S/quokka" >/dev/null
wait $held || fail "the user's listing from inside the query directory"
assert_eq "grp-own pub" "$(entry_ids <"$T/held")" "the user's listing after root asked the same query"
# Hits are ranked among what the caller may read: priv ranks first for root
# (it has both words), but limit:1 gives the user its best readable hit, and
# counts only readable ones.
Q="quokka OR xylophage limit:1"
assert_eq "priv" "$(ids <"$S/$Q.json")" "limit:1 as root"
out=$(as_user cat "$S/$Q.json")
case "$(ids <<<"$out")" in pub | grp-own) ;; *) fail "limit:1 as the user: $out" ;; esac
assert_eq 2 "$(jq -r .total <<<"$out")" "total with limit:1 as the user"
assert_eq 1 "$(as_user ls "$S/$Q" | wc -l)" "entries with limit:1 as the user"

# 3. Groups: the user's primary group reads grp-own (above); a
#    supplementary group 4242 reads grp-team as well; the owner of a 0044
#    item may not read it.
out=$(as_user_in 4242 cat "$S/quokka.json")
assert_eq "grp-own grp-team pub" "$(ids <<<"$out")" "ids for the user in group 4242"
assert_eq 3 "$(jq -r .total <<<"$out")" "total for the user in group 4242"
assert_eq 3 "$(as_user_in 4242 ls "$S/quokka" | wc -l)" "ls for the user in group 4242"
assert_eq 3 "$(as_user_in 4242 cat "$S/quokka.facets.json" | jq -r .total)" "facets total in group 4242"
assert_eq "quokka:3" "$(as_user_in 4242 cat "$S/quo.suggest.json" | jq -r '[.terms[] | "\(.term):\(.docs)"] | join(" ")')" "suggest in group 4242"
as_user_in 4242 cat "$I/gr/grp-team.json" >/dev/null || fail "the kernel disagrees: group 4242 cannot read grp-team"
if as_user cat "$I/gr/grp-owner.json" >/dev/null 2>&1; then fail "the kernel lets the owner read a 0044 item"; fi

# 4. chmod opens the private item: the user finds it at once.
chmod 0644 "$I/pr/priv.json"
out=$(as_user cat "$S/quokka.json")
assert_eq "grp-own priv pub" "$(ids <<<"$out")" "ids for the user after chmod 0644"
grep -q '\[xylophage\]\|xylophage' <<<"$out" || fail "the user's snippet of the opened item: $out"
assert_eq "xylophage:1" "$(as_user cat "$S/xylo.suggest.json" | jq -r '[.terms[] | "\(.term):\(.docs)"] | join(" ")')" "suggest after chmod"
# ... and chown back to a private owner hides it again.
chmod 0600 "$I/pr/priv.json"
assert_eq "grp-own pub" "$(as_user cat "$S/quokka.json" | ids)" "ids for the user after chmod 0600 again"
chown 65534 "$I/pr/priv.json"
assert_eq "grp-own priv pub" "$(as_user cat "$S/quokka.json" | ids)" "ids for the user once it owns the item"

# 5. The same after a remount (nothing kept in memory decides it).
remount -o allow_other
assert_eq "grp-own priv pub" "$(as_user cat "$S/quokka.json" | ids)" "ids for the user after remount"
chown 0 "$I/pr/priv.json"
check_user_view "after remount"
check_root_view "after remount"

# 6. A shard the user may not enter hides its items, however open they are:
#    reading one takes search permission on the way to it.
mkdir "$I/hd"
printf '{"title":"Shut away","content":"a wombat behind a closed door"}\n' >"$I/hd/hdn.json"
chmod 0700 "$I/hd"
python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd)' "$I"
if as_user cat "$I/hd/hdn.json" >/dev/null 2>&1; then fail "the kernel lets the user into a 0700 shard"; fi
assert_eq 0 "$(as_user cat "$S/wombat.json" | jq -r .total)" "an item in a 0700 shard, as the user"
assert_eq "" "$(as_user ls "$S/wombat")" "entries of an item in a 0700 shard, as the user"
assert_eq 0 "$(as_user cat "$S/womb.suggest.json" | jq -r '.terms | length')" "suggest from a 0700 shard"
assert_eq 1 "$(jq -r .total "$S/wombat.json")" "an item in a 0700 shard, as root"
chmod 0755 "$I/hd"
assert_eq hdn "$(as_user cat "$S/wombat.json" | ids)" "the item once its shard is 0755"
stop_mount

# 7. `itemfs search` is run by whoever can open the store: it shows everything.
assert_eq 5 "$("$ITEMFS" search "$STORE" --json quokka | jq -r .total)" "itemfs search total"
"$ITEMFS" fsck "$STORE" >"$T/fsck" 2>&1 || fail "fsck: $(cat "$T/fsck")"
