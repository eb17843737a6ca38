#!/bin/bash
# Runs inside a fresh network namespace (unshare -n) as root: starts the real
# tinyproxy with the rendered configuration and allowlist and checks what it
# admits. There is no route out, so an admitted request fails after the
# filter (no DNS) with a status other than 403; a refused one gets 403.
# Usage: proxy-netns.sh DIR (holding tinyproxy.conf and allowlist).
set -uo pipefail
dir=$1
fail=0
ip link set lo up
tinyproxy -d -c "$dir/tinyproxy.conf" >"$dir/tinyproxy.out" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null' EXIT
for _ in $(seq 1 50); do
	curl -s -o /dev/null --max-time 1 http://127.0.0.1:3128/ && break
	sleep 0.1
done
if ! kill -0 "$pid" 2>/dev/null; then
	echo "FAIL tinyproxy did not start:"
	cat "$dir/tinyproxy.out"
	exit 1
fi
get() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 --proxy http://127.0.0.1:3128 "http://$1/"; }
tunnel() { curl -s -o /dev/null -w '%{http_connect}' --max-time 5 --proxytunnel --proxy http://127.0.0.1:3128 "https://$1/"; }
expect() { # expect NAME admitted|refused CODE
	local got=refused
	[ "$3" != 403 ] && got=admitted
	if [ "$2" = "$got" ]; then echo "ok   $1 ($3)"; else echo "FAIL $1: want $2, got $3"; fail=1; fi
}
expect "GET allowed domain" admitted "$(get api.github.com)"
expect "GET allowed apex" admitted "$(get github.com)"
expect "GET allowed, upper case" admitted "$(get API.GitHub.COM)"
expect "GET exact host" admitted "$(get raw.githubusercontent.com)"
expect "GET sibling of exact host" refused "$(get evil.githubusercontent.com)"
expect "GET lookalike suffix" refused "$(get github.com.evil.net)"
expect "GET lookalike prefix" refused "$(get evilgithub.com)"
expect "GET unlisted" refused "$(get example.net)"
expect "GET by IP" refused "$(get 192.0.2.1)"
expect "CONNECT allowed :443" admitted "$(tunnel api.github.com)"
expect "CONNECT lookalike :443" refused "$(tunnel github.com.evil.net)"
expect "CONNECT allowed :8443" refused "$(tunnel api.github.com:8443)"
expect "CONNECT allowed :22" refused "$(tunnel github.com:22)"
exit $fail
