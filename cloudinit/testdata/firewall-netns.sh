#!/bin/bash
# Runs inside a fresh network namespace (unshare -n) as root: loads the
# rendered firewall with the rendered vibe-firewall and checks what it lets
# out. A dummy interface is the only route; it drops whatever reaches it, so
# nothing leaves the namespace. Usage: firewall-netns.sh DIR PROXY_USER OTHER_USER
# DIR holds vibe-firewall and the rulesets extracted from the user-data.
set -uo pipefail
dir=$1 proxy_user=$2 other_user=$3
export VIBE_RULES_DIR=$dir VIBE_ETC=$dir/etc VIBE_PROXY_USER=$proxy_user VIBE_RESOLV_FILES=$dir/resolv.conf VIBE_LEASE_DIR=$dir/leases
fail=0
check() { # check NAME WANT GOT
	if [ "$2" = "$3" ]; then echo "ok   $1"; else echo "FAIL $1: want $2, got $3"; fail=1; fi
}
# connect AS_USER PORT: 0 connected, 124 allowed but unanswered (dropped by
# the veth pair beyond the firewall), 1 refused by the firewall.
connect() {
	as "$1" true || { echo "cannot-switch-to-$1"; return; }
	timeout 1 setpriv --reuid="$(id -u "$1")" --regid="$(id -g "$1")" --clear-groups bash -c "exec 3<>/dev/tcp/198.51.100.2/$2" 2>/dev/null
	echo $?
}
# as USER CMD...: run CMD with USER's numeric uid and primary gid.
as() {
	local u=$1
	shift
	setpriv --reuid="$(id -u "$u")" --regid="$(id -g "$u")" --clear-groups "$@"
}

ip link set lo up
ip link add v0 type veth peer name v1
ip addr add 198.51.100.1/24 dev v0
ip link set v0 up
ip link set v1 up
ip route add default via 198.51.100.254 dev v0
# Fixed neighbours: without them a failed ARP answers later connects with an
# immediate "no route", which would read as a refusal.
ip neigh add 198.51.100.2 lladdr 02:00:00:00:00:02 dev v0 nud permanent
ip neigh add 198.51.100.254 lladdr 02:00:00:00:00:fe dev v0 nud permanent
printf 'nameserver 198.51.100.53\nnameserver 127.0.0.53\n' >"$dir/resolv.conf"
mkdir -p "$dir/etc" "$dir/leases"

bash "$dir/vibe-firewall" on
check "on: exit status" 0 $?
bash "$dir/vibe-firewall" status >/dev/null
check "status when on" 0 $?
# A table changed in any way but the learned sets' elements is not the one
# built from root's files.
nft insert rule inet vibe output accept
bash "$dir/vibe-firewall" status >/dev/null
check "status with a rule added" 1 $?
bash "$dir/vibe-firewall" on
nft add chain inet vibe extra
bash "$dir/vibe-firewall" status >/dev/null
check "status with a chain added" 1 $?
bash "$dir/vibe-firewall" on
nft delete table inet vibe
bash "$dir/vibe-firewall" status >/dev/null
check "status with no table" 1 $?
bash "$dir/vibe-firewall" on
nft add element inet vibe resolvers '{ 198.51.100.99 }'
bash "$dir/vibe-firewall" status >/dev/null
check "status with a resolver learned since" 0 $?
bash "$dir/vibe-firewall" on
check "other user to 443 refused" 1 "$(connect "$other_user" 443)"
check "other user to 80 refused" 1 "$(connect "$other_user" 80)"
check "proxy user to 443 allowed" 124 "$(connect "$proxy_user" 443)"
check "proxy user to 80 allowed" 124 "$(connect "$proxy_user" 80)"
check "proxy user to 8443 refused" 1 "$(connect "$proxy_user" 8443)"
check "proxy user to 22 refused" 1 "$(connect "$proxy_user" 22)"
check "resolver learned from resolv.conf" 1 "$(nft list set inet vibe resolvers | grep -c 198.51.100.53)"
check "loopback stub not a resolver" 0 "$(nft list set inet vibe resolvers | grep -c 127.0.0.53)"
check "gateway is the DHCP server" 1 "$(nft list set inet vibe dhcp_servers | grep -c 198.51.100.254)"
check "sandbox user cannot touch nft" 1 "$(as "$other_user" nft list ruleset >/dev/null 2>&1; echo $?)"
check "sandbox user cannot switch it off" 1 "$(as "$other_user" bash "$dir/vibe-firewall" off >/dev/null 2>&1; echo $?)"

bash "$dir/vibe-firewall" off
bash "$dir/vibe-firewall" status >/dev/null
check "status when off" 3 $?
check "off: other user to 443 leaves" 124 "$(connect "$other_user" 443)"
bash "$dir/vibe-firewall" on
check "on again: other user refused" 1 "$(connect "$other_user" 443)"

# Behind the egress gateway there is no proxy in the guest: every user may
# reach the gateway's proxy port and nothing else, not even the proxy user
# its web ports, and no resolver is reachable.
printf '198.51.100.2:3128\n' >"$dir/etc/gateway"
bash "$dir/vibe-firewall" apply
check "gateway: apply" 0 $?
bash "$dir/vibe-firewall" status >/dev/null
check "gateway: status" 0 $?
check "gateway: other user to the gateway's port" 124 "$(connect "$other_user" 3128)"
check "gateway: other user to 443 refused" 1 "$(connect "$other_user" 443)"
check "gateway: proxy user to 443 refused" 1 "$(connect "$proxy_user" 443)"
check "gateway: proxy user to 80 refused" 1 "$(connect "$proxy_user" 80)"
check "gateway: no resolver" 0 "$(nft list set inet vibe resolvers | grep -c 198.51.100.53)"
check "gateway: dns to the old resolver refused" 1 "$(as "$other_user" timeout 1 bash -c 'exec 3<>/dev/tcp/198.51.100.53/53' 2>/dev/null; echo $?)"
printf '198.51.100.2:31280000\n' >"$dir/etc/gateway"
bash "$dir/vibe-firewall" apply 2>/dev/null
check "malformed gateway: apply fails" 1 $?
check "malformed gateway: egress closed" 1 "$(connect "$proxy_user" 443)"
rm "$dir/etc/gateway"
bash "$dir/vibe-firewall" apply
check "no gateway again: other user to 3128 refused" 1 "$(connect "$other_user" 3128)"

# Fail closed: no proxy user, or a proxy user that is root.
VIBE_PROXY_USER=vibe-no-such-user bash "$dir/vibe-firewall" apply 2>/dev/null
check "missing proxy user: apply fails" 1 $?
check "missing proxy user: proxy uid refused too" 1 "$(connect "$proxy_user" 443)"
check "missing proxy user: policy still drop" 1 "$(nft list chain inet vibe output | grep -c 'policy drop')"
VIBE_PROXY_USER=root bash "$dir/vibe-firewall" apply 2>/dev/null
check "root as proxy user: apply fails" 1 $?
check "root as proxy user: root refused" 1 "$(connect root 443)"
# A broken ruleset file: the emergency ruleset closes egress.
cp "$dir/firewall.nft" "$dir/firewall.nft.good"
echo 'this is not nft' >>"$dir/firewall.nft"
bash "$dir/vibe-firewall" apply 2>/dev/null
check "broken ruleset: apply fails" 1 $?
check "broken ruleset: egress closed" 1 "$(connect "$proxy_user" 443)"
mv "$dir/firewall.nft.good" "$dir/firewall.nft"
# Unknown mode text enforces.
echo garbage >"$dir/etc/firewall"
bash "$dir/vibe-firewall" apply
check "unknown mode enforces" 1 "$(connect "$other_user" 443)"
# Only its own table is replaced.
nft add table ip other
nft add chain ip other keep
bash "$dir/vibe-firewall" on
check "other tables untouched" 0 "$(nft list chain ip other keep >/dev/null 2>&1; echo $?)"
exit $fail
