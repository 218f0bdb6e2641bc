#!/usr/bin/env bash
# sed -i, vim -es (swap file on), truncate-and-rewrite, python.
source "$(dirname "$0")/lib.sh"
start_mount
I=$MNT/items
mkdir "$I/ed"
printf '{"title":"old title","n":1}\n' >"$T/e.json"
cp "$T/e.json" "$I/ed/edit.json"

sed -i 's/old title/sed title/' "$I/ed/edit.json"
assert_eq "sed title" "$(jq -r .title "$I/ed/edit.json")" "sed -i"

# vim -es with a swap file, writing the buffer back (backup/writebackup on).
HOME=$T vim -u NONE -i NONE -es -c 'set swapfile backup writebackup directory=. backupdir=.' \
  -c '%s/sed title/vim title/' -c 'wq' "$I/ed/edit.json" </dev/null || fail "vim exited $?"
assert_eq "vim title" "$(jq -r .title "$I/ed/edit.json")" "vim -es"
ls -a "$I/ed" | grep -q swp && fail "vim left a swap file"

# nano-style: open with O_TRUNC and write the new body.
printf '{"title":"nano title"}' >"$I/ed/edit.json"
assert_eq "nano title" "$(jq -r .title "$I/ed/edit.json")" "truncate and rewrite"
python3 -c 'import sys; open(sys.argv[1], "w").write("{\"title\": \"python title\"}\n")' "$I/ed/edit.json"
assert_eq "python title" "$(jq -r .title "$I/ed/edit.json")" "python open/write"
# Appending keeps the body and commits the whole.
printf '{"a":[1,2' >"$T/half.json"
python3 - "$I/ed/edappend.json" <<'PY'
import sys
p = sys.argv[1]
with open(p, "w") as f:
    f.write('{"a":[1,2')
    f.flush()
    f.write(',3]}')
PY
assert_eq "3" "$(jq '.a | length' "$I/ed/edappend.json")" "two writes, one commit"
printf '{"b":1}' >"$I/ed/edapp2.json"
python3 -c 'import sys; f=open(sys.argv[1],"r+"); f.seek(0); f.write("[   "); f.seek(0,2); f.write("]"); f.close()' "$I/ed/edapp2.json" \
  && fail "an invalid r+ edit was accepted"
assert_eq '{"b":1}' "$(cat "$I/ed/edapp2.json")" "invalid r+ edit kept the old body"
remount
assert_eq "python title" "$(jq -r .title "$I/ed/edit.json")" "after remount"
