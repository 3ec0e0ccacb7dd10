#!/bin/sh
# Installs the Debian packages flashmoe builds and tests with, when missing.
# Run as root (CI, a fresh machine); otherwise prints what to install.
# libmicrohttpd-dev: flashmoe serve's HTTP
# g++, cmake, python3-venv: llama.cpp (llama-cpp-python) for tests/llamacpp only
# python3-jinja2: the real chat templates (tests/e2e_chat_tools.sh)
# chromium, chromium-driver: the chat page in a headless browser (tests/e2e_page.sh)
PKGS="gcc make pkg-config liburing-dev libpcre2-dev libedit-dev python3 python3-numpy tmux libjson-c-dev libutf8proc-dev libmicrohttpd-dev g++ cmake python3-venv python3-jinja2 chromium chromium-driver"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
	echo "install-deps: installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null && apt-get install -y -qq $missing >/dev/null || {
		echo "install-deps: apt-get install$missing failed" >&2; exit 1; }
else
	echo "install-deps: missing Debian packages:$missing (run: sudo apt-get install$missing)" >&2
	exit 1
fi
