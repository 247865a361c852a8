#!/usr/bin/env bash
# Instructions per packet of fvs's hot paths, counted by callgrind (exact and
# repeatable, unlike timings). Counts only `measured_poll`: one PMD iteration
# (rx from a memory port, extraction, lookup, actions, tx to a memory port).
#   benches/callgrind.sh [SCENARIO...]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
bin=$(cargo bench --bench instructions --no-run 2>&1 | grep -o 'target/release/deps/instructions-[0-9a-f]*' | head -n1)
[ -x "$bin" ] || { echo "callgrind.sh: could not build the instructions bench" >&2; exit 1; }
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(extract_tcp4 extract_udp6 extract_vlan emc_hit megaflow1 megaflow4 megaflow16 megaflow10k upcall vhost_p2p vxlan_encap vxlan_decap)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
printf '%-12s %12s %10s %s\n' scenario instructions packets "instructions/packet"
for s in "${scenarios[@]}"; do
    iters=2000
    [ "$s" = upcall ] && iters=200
    log=$(valgrind --tool=callgrind --callgrind-out-file="$out/$s.cg" --toggle-collect='*measured_poll*' --toggle-collect='*measured_extract*' \
        "$bin" "$s" "$iters" 2>/dev/null)
    packets=$(echo "$log" | awk '/^packets/ {print $2}')
    extra=$(echo "$log" | awk '/^avg_subtable_lookups/ {print "(avg subtables searched " $2 ")"}')
    ir=$(awk '/^totals:/ {print $2}' "$out/$s.cg")
    printf '%-12s %12s %10s %8.1f %s\n' "$s" "$ir" "$packets" "$(echo "$ir / $packets" | bc -l)" "$extra"
done
