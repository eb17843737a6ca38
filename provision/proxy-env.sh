# shellcheck shell=sh
# vibe: all egress goes through the guest's filtering proxy.
export http_proxy=http://vibe-proxy:3128 https_proxy=http://vibe-proxy:3128
export HTTP_PROXY=http://vibe-proxy:3128 HTTPS_PROXY=http://vibe-proxy:3128
export no_proxy=localhost,127.0.0.1 NO_PROXY=localhost,127.0.0.1
export NODE_USE_ENV_PROXY=1
# The system trust store (with tls.ca's authorities) for Node, Python and uv.
export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
export REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
# The sandbox user's own tools (its nvm's node) go on its PATH only: root's
# shells must never run a program the sandbox user can write.
if [ "$(id -u)" != 0 ] && [ -d "$HOME/.vibe/node-bin" ]; then
	case ":$PATH:" in *":$HOME/.vibe/node-bin:"*) ;; *) PATH=$HOME/.vibe/node-bin:$PATH ;; esac
	export PATH
fi
