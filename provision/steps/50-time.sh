#!/bin/bash
# VMs keep time from the host through the KVM PTP clock; no NTP traffic.
set -euo pipefail
# shellcheck source=../lib.sh
. /usr/local/lib/vibe/lib.sh

# /dev/ptp_kvm is udev's name for the KVM clock (/dev/ptp0 may be another).
modprobe ptp_kvm 2>/dev/null || log "ptp_kvm module not loaded; chrony will wait for /dev/ptp_kvm"
udevadm settle --timeout=10 || true
systemctl enable chrony >/dev/null 2>&1 || true
systemctl restart chrony
# The image keeps time only if chrony takes the host's clock: it must have
# selected it (a '*' source) within half a minute.
synced=
for _ in $(seq 1 30); do
	if chronyc -n sources 2>/dev/null | grep -q '^#\*'; then
		synced=1
		break
	fi
	sleep 1
done
[ -n "$synced" ] || die "chrony did not take the host's clock (/dev/ptp_kvm): time would drift in sandboxes"
record chrony "$(dpkg-query -W -f '${Version}' chrony)"
