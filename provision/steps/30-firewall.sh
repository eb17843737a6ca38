#!/bin/bash
# The egress firewall: enforce now and at every boot, before the network.
set -euo pipefail
# shellcheck source=../lib.sh
. /usr/local/lib/vibe/lib.sh

systemctl daemon-reload
systemctl enable vibe-firewall.service vibe-firewall-refresh.service
/usr/local/sbin/vibe-firewall on
/usr/local/sbin/vibe-firewall status >/dev/null || die "the firewall is not enforcing after it was switched on"
