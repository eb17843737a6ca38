#!/bin/bash
# The egress proxy: tinyproxy on 127.0.0.1:8888, deny by default.
set -euo pipefail
# shellcheck source=../lib.sh
. /usr/local/lib/vibe/lib.sh

getent passwd tinyproxy >/dev/null || die "the proxy user tinyproxy does not exist; is tinyproxy installed?"
[ "$(id -u tinyproxy)" != 0 ] || die "the proxy user has uid 0"
install -d -o tinyproxy -g tinyproxy -m 0750 /var/log/tinyproxy
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
