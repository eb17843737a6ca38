#!/bin/bash
# Google Chrome stable for headless use, and Lighthouse for the sandbox user.
set -euo pipefail
# shellcheck source=../lib.sh
. /usr/local/lib/vibe/lib.sh

[ "$(uname -m)" = x86_64 ] || die "Google Chrome is published for x86_64 only; disable toolchains.chrome on $(uname -m)"
install -d -m 0755 /etc/apt/keyrings
download https://dl.google.com/linux/linux_signing_key.pub /etc/apt/keyrings/google-chrome.asc
chmod 0644 /etc/apt/keyrings/google-chrome.asc
printf '%s\n' 'deb [arch=amd64 signed-by=/etc/apt/keyrings/google-chrome.asc] https://dl.google.com/linux/chrome/deb/ stable main' \
	>/etc/apt/sources.list.d/google-chrome.list
apt-get -o Acquire::http::Proxy="$VIBE_PROXY" -o Acquire::https::Proxy="$VIBE_PROXY" update
apt_install google-chrome-stable
record chrome "$(dpkg-query -W -f '${Version}' google-chrome-stable)"

lighthouse=$(cfg .toolchains.chrome.lighthouse)
if [ "$(cfg .toolchains.node.source)" = distro ]; then
	as_user npm install -g "lighthouse@$lighthouse"
else
	# shellcheck disable=SC2016
	as_user bash -c '. "$HOME/.nvm/nvm.sh" && npm install -g "lighthouse@$1"' nvm "$lighthouse"
fi
record lighthouse "$lighthouse"
