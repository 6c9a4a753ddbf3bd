#!/usr/bin/env bash
# layers.sh - the layering of docs/architecture.md holds: each folder
# includes only its own headers and those of the folders below it,
#   conf <- policy <- report <- proxy <- cli
# and every folder has the include.am comment that says what it is for.
set -u
SRC=${srcdir:-.}
cd "$SRC" || exit 99
PASS=0 FAIL=0
layers=(conf policy report proxy cli)
for i in "${!layers[@]}"; do
	d=${layers[$i]}
	above=("${layers[@]:$((i + 1))}")
	if [ ${#above[@]} -eq 0 ]; then
		bad=""
	else
		re=$(IFS='|'; echo "${above[*]}")
		bad=$(grep -HnE "#include \"($re)/" "$d"/*.[ch] 2>/dev/null)
	fi
	if [ -z "$bad" ]; then
		PASS=$((PASS + 1)); echo "ok - $d/ includes nothing above it"
	else
		FAIL=$((FAIL + 1)); echo "not ok - $d/ includes a higher layer:"; echo "$bad" | sed 's/^/#   /'
	fi
	if head -1 "$d/include.am" | grep -q "^# $d/: "; then
		PASS=$((PASS + 1)); echo "ok - $d/include.am says what the folder is for"
	else
		FAIL=$((FAIL + 1)); echo "not ok - $d/include.am lacks its '# $d/: ...' header"
	fi
done
printf '%d passed, %d failed\n' "$PASS" "$FAIL"
[ "$FAIL" -eq 0 ]
