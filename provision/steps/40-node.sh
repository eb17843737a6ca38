#!/bin/bash
# Node.js through nvm, for the sandbox user, and the agent CLI.
set -euo pipefail
# shellcheck source=../lib.sh
. /usr/local/lib/vibe/lib.sh

nvm_version=$(cfg .toolchains.node.nvm)
node_version=$(cfg .toolchains.node.version)
agent_package=$(jq -r .agent.package "$VIBE_BUILD_JSON")
agent_version=$(jq -r .agent.version "$VIBE_BUILD_JSON")
home=$(cfg .user.home)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
download "https://raw.githubusercontent.com/nvm-sh/nvm/v${nvm_version}/install.sh" "$tmp/install-nvm.sh"
chmod 0755 "$tmp"
chmod 0644 "$tmp/install-nvm.sh"
as_user env PROFILE=/dev/null NVM_DIR="$home/.nvm" bash "$tmp/install-nvm.sh"
# $1 etc. are expanded by the inner shell, from its arguments: values stay data.
# shellcheck disable=SC2016
nvm_run='. "$HOME/.nvm/nvm.sh" && "$@"'
as_user bash -c "$nvm_run" nvm nvm install "$node_version"
as_user bash -c "$nvm_run" nvm nvm alias default "$node_version"
record node "$(as_user bash -c "$nvm_run" nvm node --version)"
if [ "$(jq -r .agent.enabled "$VIBE_BUILD_JSON")" = true ]; then
	as_user bash -c "$nvm_run" nvm npm install -g "${agent_package}@${agent_version}"
	record agent "$(as_user bash -c "$nvm_run" nvm npm ls -g --depth=0 --json | jq -r --arg p "$agent_package" '.dependencies[$p].version')"
fi
link_node_bin "$(dirname "$(as_user bash -c "$nvm_run" nvm nvm which default)")"
