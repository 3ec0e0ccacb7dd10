#!/bin/sh
# tests/server/venv.sh: prints the python of the cached venv that holds the
# official openai client and requests (PyPI), creating it when missing
# (~/.cache/flashmoe/venv-server; FM_SERVER_VENV overrides). Exit 1 when it
# cannot be made (no network on a fresh machine): the caller skips.
V=${FM_SERVER_VENV:-$HOME/.cache/flashmoe/venv-server}
if ! "$V/bin/python" -c 'import openai, requests' 2>/dev/null; then
	echo "venv.sh: creating $V (pip install openai requests)" >&2
	mkdir -p "$(dirname "$V")"
	python3 -m venv "$V" >&2 && "$V/bin/pip" install -q openai requests >&2 || {
		echo "venv.sh: cannot create $V" >&2
		exit 1
	}
fi
echo "$V/bin/python"
