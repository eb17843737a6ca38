#!/bin/bash
# Where the bake's web traffic goes. Every proxy setting in the image names
# http://vibe-proxy:3128; vibe-egress points that name at the guest's own
# filtering proxy (tinyproxy on 127.0.0.1, deny by default) or, for a bake
# behind vibe's egress gateway, at the gateway, which then applies the
# recipe's allowlist outside the guest. Sandboxes point it again at every
# launch (settle), so the image keeps neither.
set -euo pipefail
# shellcheck source=../lib.sh
. /usr/local/lib/vibe/lib.sh

getent passwd tinyproxy >/dev/null || die "the proxy user tinyproxy does not exist; is tinyproxy installed?"
[ "$(id -u tinyproxy)" != 0 ] || die "the proxy user has uid 0"
install -d -o tinyproxy -g tinyproxy -m 0750 /var/log/tinyproxy
# The guest's proxy starts at boot, so that it is up when a launch wants it
# (behind the gateway, the launch stops it: vibe-egress). Stopped now: the
# package's install may have started it with the package's configuration.
systemctl enable tinyproxy >/dev/null 2>&1 || true
systemctl stop tinyproxy
# Where the distribution confines tinyproxy (Ubuntu), its profile takes the
# local addition that lets it read the allowlist. (Where the profile cannot
# be loaded, it is not enforced either.)
if [ -r /etc/apparmor.d/usr.bin.tinyproxy ] && command -v apparmor_parser >/dev/null; then
	apparmor_parser -r /etc/apparmor.d/usr.bin.tinyproxy || log "warning: the tinyproxy AppArmor profile could not be reloaded"
fi
# The host names the gateway through the guest API (never in the
# user-data, so the image stays the same wherever it is baked).
gateway=
for _ in $(seq 1 50); do
	[ -S /dev/incus/sock ] && break
	sleep 0.2
done
if [ -S /dev/incus/sock ]; then
	gateway=$(curl -sf --max-time 5 --unix-socket /dev/incus/sock http://incus/1.0/config/user.vibe.gateway-proxy || true)
fi
if [ -n "$gateway" ]; then
	/usr/local/sbin/vibe-egress gateway "$gateway"
	log "baking behind the egress gateway at $gateway"
else
	/usr/local/sbin/vibe-egress local </etc/vibe/allowlist
	if pgrep -u root -x tinyproxy >/dev/null; then
		die "tinyproxy runs as root; it must drop to the tinyproxy user"
	fi
fi
record tinyproxy "$(dpkg-query -W -f '${Version}' tinyproxy)"
