#!/bin/bash
# root-writable.sh USER: run as root in a sandbox. Lists every file or
# folder that root, a root service or root's login shells read or run and
# that USER can write, directly or by replacing it through a folder it can
# write, following every symlink to its target; exits 1 if there is one.
# Walked: the folders on root's login PATH (bash and zsh) and what they
# hold, shell profiles and rc files, vibe's own files, the proxy's
# configuration, systemd units, cron and sudoers.
set -uo pipefail

user=$1
uid=$(id -u "$user") || exit 2
groups=" $(id -G "$user") "
declare -A seen
found=0

# writable PATH: whether USER can write PATH itself (a symlink's own mode
# means nothing: it is replaced through its folder, checked separately;
# character devices such as /dev/null, where masked units point, keep
# nothing).
writable() {
	local u g m
	{ [ -L "$1" ] || [ -c "$1" ]; } && return 1
	read -r u g m < <(stat -c '%u %g %a' -- "$1" 2>/dev/null) || return 1
	m=$((8#$m))
	[ "$u" = "$uid" ] && return 0
	if [[ $groups == *" $g "* ]] && ((m & 8#020)); then return 0; fi
	((m & 8#002)) && return 0
	return 1
}

# check PATH: PATH, every folder above it, and the target of any symlink
# on the way.
check() {
	local p=$1
	while [ -n "$p" ]; do
		[ -n "${seen[$p]:-}" ] && return
		seen[$p]=1
		if writable "$p"; then
			echo "writable by $user: $p ($(stat -c '%U:%G %A' -- "$p"))"
			found=1
		fi
		if [ -L "$p" ]; then
			check "$(readlink -f -- "$p")"
		fi
		[ "$p" = / ] && return
		p=$(dirname -- "$p")
	done
}

# walk DIR: DIR and everything under it.
walk() {
	local f
	[ -e "$1" ] || return 0
	while IFS= read -r -d '' f; do check "$f"; done < <(find "$1" -xdev -print0 2>/dev/null)
}

# shellcheck disable=SC2016 # $PATH is the login shell's own
login_path() { env -i HOME=/root TERM=dumb "$1" -lc 'printf %s "$PATH"' 2>/dev/null </dev/null; }

paths=$(
	login_path bash
	echo
	command -v zsh >/dev/null && login_path zsh
	echo
	printf '%s' /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
)
IFS=: read -r -a dirs <<<"$(printf '%s' "$paths" | tr '\n' :)"
for d in "${dirs[@]}"; do
	[ -n "$d" ] || continue
	check "$d"
	[ -d "$d" ] && while IFS= read -r -d '' f; do check "$f"; done < <(find "$d" -maxdepth 1 -mindepth 1 -print0 2>/dev/null)
done
for f in /etc/profile /etc/bash.bashrc /etc/environment /etc/zshenv /etc/zprofile /etc/zshrc /etc/zlogin \
	/root/.profile /root/.bashrc /root/.bash_profile /root/.bash_login /root/.zshenv /root/.zshrc /root/.zprofile /root/.zlogin; do
	check "$f"
done
for d in /etc/profile.d /etc/zsh /etc/vibe /usr/local/lib/vibe /usr/local/sbin /etc/tinyproxy /etc/systemd/system \
	/usr/lib/systemd/system /lib/systemd/system /etc/cron.d /etc/sudoers.d /etc/sudoers /etc/apt /etc/ld.so.conf.d /etc/ld.so.preload; do
	walk "$d"
done
exit "$found"
