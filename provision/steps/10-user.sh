#!/bin/bash
# The sandbox user: no password, no sudo, no privileged group, ~/workspace.
set -euo pipefail
# shellcheck source=../lib.sh
. /usr/local/lib/vibe/lib.sh

user=$(cfg .user.name)
home=$(cfg .user.home)
uid=$(cfg .user.uid)
gid=$(cfg .user.gid)

id "$user" >/dev/null 2>&1 || die "user $user was not created"
[ "$(id -u "$user")" = "$uid" ] || die "user $user has uid $(id -u "$user"), want $uid"
[ "$(id -g "$user")" = "$gid" ] || die "user $user has gid $(id -g "$user"), want $gid"
passwd -l "$user" >/dev/null
groups=" $(id -nG "$user") "
for group in sudo admin wheel adm disk lxd incus incus-admin root shadow; do
	if [[ $groups == *" $group "* ]]; then
		gpasswd -d "$user" "$group" >/dev/null
	fi
done
rm -f "/etc/sudoers.d/90-cloud-init-users"
# Files from /etc/skel (proxy settings) must belong to the user.
chown -R "$uid:$gid" "$home"
# Mount points live in folders only root can change, outside the home: a
# folder the user could swap for a symlink would let it choose where the
# next mount lands. ~/workspace is a convenience link the user may remove.
install -d -o root -g root -m 0755 /workspace /var/lib/vibe /var/lib/vibe/state
rm -rf "$home/workspace"
ln -sfn /workspace "$home/workspace"
# Nothing of the user's starts on a schedule of its own (crontab, at, once
# a recipe installs them): settle stops every process of the user's while
# it works inside the mounts, and one that starts and ends meanwhile would
# leave no trace for it to see.
for deny in /etc/cron.deny /etc/at.deny; do
	grep -qxF -- "$user" "$deny" 2>/dev/null || printf '%s\n' "$user" >>"$deny"
	chmod 0644 "$deny"
done
