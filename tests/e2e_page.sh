#!/bin/sh
# e2e_page.sh: flashmoe serve's chat page (GET /) in headless Chromium
# (Debian's chromium + chromium-driver, from make deps) driven by Selenium
# (PyPI, in the cached venv ~/.cache/flashmoe/venv-page, made when missing):
# tests/server/test_page.py (the server with --api-key: the key typed into the
# page's settings first) types a message, sees the reply streamed from the
# built-in model, tok/s and the expert-cache hit rate shown, a second turn,
# reasoning and a tool call rendered in <details>, and no request leaving the
# server. A screenshot lands in build/page-test/page.png.
# Exit 0 pass, 1 fail, 77 skip (only when Chromium cannot run at all).
cd "$(dirname "$0")/.." || exit 1
BIN=${FM_BIN:-build/release/flashmoe}
MODEL=models/brown-moe.gguf
[ -x "$BIN" ] || { echo "FAIL no binary $BIN"; exit 1; }
command -v chromium >/dev/null && command -v chromedriver >/dev/null || {
	echo "skip: chromium and chromium-driver are not installed (make deps installs them)"; exit 77; }
work=build/page-test
mkdir -p "$work" || exit 1
if ! timeout 60 chromium --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage \
	--dump-dom about:blank >"$work/chromium.log" 2>&1; then
	tail -n 3 "$work/chromium.log"
	echo "skip: chromium cannot run here"; exit 77
fi
V=${FM_PAGE_VENV:-${HOME:-/tmp}/.cache/flashmoe/venv-page}
if ! "$V/bin/python" -c "import selenium" 2>/dev/null; then
	echo "creating $V (pip install selenium)"
	python3 -m venv "$V" && "$V/bin/pip" install -q selenium || {
		echo "FAIL cannot create $V with selenium"; exit 1; }
fi

KEY=page-key-$$
"$BIN" serve -m "$MODEL" --port 0 -np 2 -c 1024 --api-key "$KEY" >"$work/serve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
trap 'exit 1' INT TERM HUP
url=""
for i in $(seq 100); do
	url=$(sed -n 's/^listening on \(http:[^ ]*\).*/\1/p' "$work/serve.log")
	[ -n "$url" ] && break
	kill -0 $pid 2>/dev/null || break
	sleep 0.1
done
[ -n "$url" ] || { cat "$work/serve.log"; echo "FAIL the server did not start"; exit 1; }
echo "server at $url"
timeout 300 "$V/bin/python" tests/server/test_page.py "$url" --key "$KEY" --screenshot "$work/page.png"
