#!/bin/bash
# Node.js for the sandbox user, through nvm or from the distribution, and
# the agent CLI. Global npm packages always live in the user's home: npm
# never installs (nor runs package scripts) as root.
set -euo pipefail
# shellcheck source=../lib.sh
. /usr/local/lib/vibe/lib.sh

source=$(cfg .toolchains.node.source)
agent_package=$(jq -r .agent.package "$VIBE_BUILD_JSON")
agent_version=$(jq -r .agent.version "$VIBE_BUILD_JSON")
home=$(cfg .user.home)

# install_agents NPM...: the agents baked beside the agent (agents.*), each
# pinned, installed by the sandbox user with the given npm command. Their
# engines are enforced: an agent that needs a newer Node.js than the image
# has (Gemini CLI on bookworm's) fails the bake, not every session after.
install_agents() {
	local name package version
	while IFS=$'\t' read -r name package version; do
		"$@" install -g --engine-strict "${package}@${version}" ||
			die "agent $name (${package}@${version}) did not install on Node.js $("$@" exec -c 'node --version' 2>/dev/null || echo '?'): npm says why above (an engines field names the Node.js it needs); set toolchains.node.source: nvm with a newer toolchains.node.version, or use a newer distribution"
		record "agent-$name" "$("$@" ls -g --depth=0 --json | jq -r --arg p "$package" '.dependencies[$p].version')"
	done < <(jq -r '(.agents // [])[] | [.name, .package, .version] | @tsv' "$VIBE_BUILD_JSON")
}

if [ "$source" = distro ]; then
	# nodejs and npm came with the packages; npm's global folder is the user's.
	command -v node >/dev/null || die "toolchains.node.source is distro but the distribution's nodejs is not installed"
	as_user npm config set prefix "$home/.npm-global"
	record node "$(as_user node --version)"
	if [ "$(jq -r .agent.enabled "$VIBE_BUILD_JSON")" = true ]; then
		as_user npm install -g "${agent_package}@${agent_version}"
		record agent "$(as_user npm ls -g --depth=0 --json | jq -r --arg p "$agent_package" '.dependencies[$p].version')"
	fi
	install_agents as_user npm
	as_user mkdir -p "$home/.npm-global/bin"
	link_node_bin "$home/.npm-global/bin"
	exit 0
fi

nvm_version=$(cfg .toolchains.node.nvm)
node_version=$(cfg .toolchains.node.version)
# nvm downloads Node.js from this mirror when one is configured.
node_mirror=$(jq -r '.mirrors.node // ""' "$VIBE_BUILD_JSON")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
download "https://raw.githubusercontent.com/nvm-sh/nvm/v${nvm_version}/install.sh" "$tmp/install-nvm.sh"
chmod 0755 "$tmp"
chmod 0644 "$tmp/install-nvm.sh"
as_user env PROFILE=/dev/null NVM_DIR="$home/.nvm" bash "$tmp/install-nvm.sh"
# $1 etc. are expanded by the inner shell, from its arguments: values stay data.
# shellcheck disable=SC2016
nvm_run='. "$HOME/.nvm/nvm.sh" && "$@"'
if [ -n "$node_mirror" ]; then
	as_user env NVM_NODEJS_ORG_MIRROR="$node_mirror" bash -c "$nvm_run" nvm nvm install "$node_version"
else
	as_user bash -c "$nvm_run" nvm nvm install "$node_version"
fi
as_user bash -c "$nvm_run" nvm nvm alias default "$node_version"
record node "$(as_user bash -c "$nvm_run" nvm node --version)"
if [ "$(jq -r .agent.enabled "$VIBE_BUILD_JSON")" = true ]; then
	as_user bash -c "$nvm_run" nvm npm install -g "${agent_package}@${agent_version}"
	record agent "$(as_user bash -c "$nvm_run" nvm npm ls -g --depth=0 --json | jq -r --arg p "$agent_package" '.dependencies[$p].version')"
fi
install_agents as_user bash -c "$nvm_run" nvm npm
link_node_bin "$(dirname "$(as_user bash -c "$nvm_run" nvm nvm which default)")"
