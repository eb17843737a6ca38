#!/bin/bash
# VMs keep time from the host through the KVM PTP clock; no NTP traffic.
set -euo pipefail
# shellcheck source=../lib.sh
. /usr/local/lib/vibe/lib.sh

modprobe ptp_kvm 2>/dev/null || log "ptp_kvm module not loaded; chrony will wait for /dev/ptp0"
systemctl enable chrony >/dev/null 2>&1 || true
systemctl restart chrony
record chrony "$(dpkg-query -W -f '${Version}' chrony)"
