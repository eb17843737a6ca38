#!/bin/bash
# packages.update is false: nothing is fetched, so every package the recipe
# names must already be in the base. Say which is missing, by name.
set -euo pipefail
# shellcheck source=../lib.sh
. /usr/local/lib/vibe/lib.sh

missing=()
while read -r pkg; do
	[ -n "$pkg" ] || continue
	name=${pkg%%=*}
	status=$(dpkg-query -W -f '${Status}' "$name" 2>/dev/null || true)
	[ "$status" = "install ok installed" ] || missing+=("$name")
done < <(cfg_list .packages)
[ ${#missing[@]} -eq 0 ] || die "packages.update is false, and the base lacks: ${missing[*]} (use a base that holds them, or set packages.update: true)"
log "all $(cfg_list .packages | wc -l) packages are in the base"
