#!/bin/sh
# e2e_chat_tools.sh: the chat templates with tools against the real Jinja
# templates, and the output parser on what they render (issue 18 item 3).
# tests/chat/render_jinja.py renders tool conversations (definitions with
# escapes, floats and key orders that test tojson; calls with and without
# content and reasoning; tool results; lists the Qwen3.5 template raises on)
# through tests/chat/qwen3.jinja and qwen35.jinja under jinja2 (Debian's
# python3-jinja2) set up as transformers sets it up, and, when the cached
# transformers venv is there (~/.cache/flashmoe/venv), through
# tokenizer.apply_chat_template too, which must agree. chat_exact.c then
# renders every case with src/chat.c: the same bytes, or a refusal where the
# template raised; and parses each rendered tool-calling turn back into
# the calls it came from.
# Exit 0 pass, 1 fail, 77 skip (no python3 with jinja2).
cd "$(dirname "$0")/.." || exit 1
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
$PY -c "import jinja2" 2>/dev/null || {
	echo "skip: python3-jinja2 is not installed (make deps installs it)"; exit 77; }
work=${O:-build/release}/chat-exact
mkdir -p "$work" || exit 1
venv=${FM_CACHE:-${HOME:-/tmp}/.cache/flashmoe}/venv/bin/python
cross=""
if [ -x "$venv" ] && "$venv" -c "import transformers" 2>/dev/null; then
	cross="--transformers $venv"
else
	echo "note: no transformers venv at $venv; jinja2 alone renders the cases"
fi
$PY tests/chat/render_jinja.py "$work/cases.json" $cross || { echo "FAIL render_jinja.py"; exit 1; }
gcc -std=c11 -D_GNU_SOURCE -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined \
	-Iinclude -Isrc -o "$work/chat_exact" tests/chat/chat_exact.c src/chat.c src/chat_json.c \
	src/chat_parse.c src/util.c -ljson-c -lm -pthread || { echo "FAIL build chat_exact"; exit 1; }
"$work/chat_exact" "$work/cases.json" tests/chat
