# shellcheck shell=sh
# vibe: all egress goes through the guest's filtering proxy.
export http_proxy=http://127.0.0.1:8888 https_proxy=http://127.0.0.1:8888
export HTTP_PROXY=http://127.0.0.1:8888 HTTPS_PROXY=http://127.0.0.1:8888
export no_proxy=localhost,127.0.0.1 NO_PROXY=localhost,127.0.0.1
export NODE_USE_ENV_PROXY=1
if [ -d /usr/local/lib/vibe/node-bin ]; then
	case ":$PATH:" in *:/usr/local/lib/vibe/node-bin:*) ;; *) PATH=/usr/local/lib/vibe/node-bin:$PATH ;; esac
	export PATH
fi
