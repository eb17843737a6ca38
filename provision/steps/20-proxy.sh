#!/bin/bash
# The egress proxy: tinyproxy on 127.0.0.1:8888, deny by default.
set -euo pipefail
# shellcheck source=../lib.sh
. /usr/local/lib/vibe/lib.sh

getent passwd tinyproxy >/dev/null || die "the proxy user tinyproxy does not exist; is tinyproxy installed?"
[ "$(id -u tinyproxy)" != 0 ] || die "the proxy user has uid 0"
install -d -o tinyproxy -g tinyproxy -m 0750 /var/log/tinyproxy
# A bake behind vibe's egress gateway: the host names the gateway's proxy
# through the guest API (never in the user-data, so the image stays the
# same); the proxy forwards everything to it, and the gateway applies the
# recipe's allowlist. seal puts the filtering configuration back.
gateway=
for _ in $(seq 1 50); do
	[ -S /dev/incus/sock ] && break
	sleep 0.2
done
if [ -S /dev/incus/sock ]; then
	gateway=$(curl -sf --max-time 5 --unix-socket /dev/incus/sock http://incus/1.0/config/user.vibe.gateway-proxy || true)
fi
if [ -n "$gateway" ]; then
	[[ $gateway =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}:[0-9]{1,5}$ ]] || die "the gateway the host names is malformed"
	conf=/etc/tinyproxy/tinyproxy.conf
	cp -p "$conf" "$conf.vibe-filtering"
	{ grep -v -e '^Filter' -e '^Upstream' "$conf.vibe-filtering" && printf 'Upstream http %s\n' "$gateway"; } >"$conf"
	install -d -m 0755 /etc/vibe
	printf '%s\n' "$gateway" >/etc/vibe/gateway
	log "baking behind the egress gateway at $gateway"
fi
systemctl enable tinyproxy >/dev/null 2>&1 || true
systemctl restart tinyproxy
for _ in $(seq 1 50); do
	if curl -s -o /dev/null --max-time 2 http://127.0.0.1:8888/; then
		break
	fi
	sleep 0.2
done
if pgrep -u root -x tinyproxy >/dev/null; then
	die "tinyproxy runs as root; it must drop to the tinyproxy user"
fi
record tinyproxy "$(dpkg-query -W -f '${Version}' tinyproxy)"
