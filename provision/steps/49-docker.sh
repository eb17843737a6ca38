#!/bin/bash
# Docker from the distribution. The docker group is root-equivalent and
# containers' traffic is not filtered by the egress allowlist: opt-in only.
set -euo pipefail
# shellcheck source=../lib.sh
. /usr/local/lib/vibe/lib.sh

apt_install docker.io
usermod -aG docker "$(cfg .user.name)"
systemctl daemon-reload
systemctl enable docker
systemctl restart docker
record docker "$(dpkg-query -W -f '${Version}' docker.io)"
