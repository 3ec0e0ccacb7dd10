#!/bin/sh
# e2e_chat.sh: flashmoe chat end to end on a tiny random-weight model (its
# answers are noise; what is checked is the machinery). In a detached tmux
# terminal: a first prompt is typed and its answer streamed; the second turn
# evaluates only the new tokens (the --verbose line "[turn 2: N new tokens, R
# reused from cache]" with R covering the whole first turn); /stats prints;
# /exit leaves with status 0. Ctrl-C stops a long answer, the prompt returns
# and the next turn reuses the partial answer from the cache. From a pipe,
# chat reads plain lines, and generate --chat gives the same first answer.
# Exit 0 pass, 1 fail, 77 skip (no tmux).
set -u
BIN=${FM_BIN:-build/release/flashmoe}
case $BIN in /*) ;; *) BIN=$PWD/$BIN ;; esac
command -v tmux >/dev/null 2>&1 || { echo "tmux is not installed"; exit 77; }
[ -x "$BIN" ] || { echo "FAIL no binary $BIN"; exit 1; }
T=$(mktemp -d)
SOCK=fm-e2e-chat-$$
# A private tmux server: panes stay after their program exits (to show the
# screen when a check fails), with a long scrollback.
printf 'set -g remain-on-exit on\nset -g history-limit 50000\n' >"$T/tmux.conf"
tm() { TERM=${TERM:-xterm} tmux -L "$SOCK" -f "$T/tmux.conf" "$@"; }
trap 'tm kill-server 2>/dev/null; rm -rf "$T"' EXIT
trap 'exit 1' INT TERM HUP
fails=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fails=$((fails + 1)); }

# start NAME ARGS...: flashmoe chat ARGS in a fresh 120x40 terminal; its
# exit status goes to $T/NAME.rc (tmux's own #{pane_dead_status} is sometimes
# never set). The shell ignores SIGINT so that Ctrl-C reaches only chat, which
# installs its own handler.
start() {
	name=$1
	shift
	tm new-session -d -s "$name" -x 120 -y 40 -- \
		sh -c 'trap "" INT; "$@"; echo $? >"$0"' "$T/$name.rc" "$BIN" chat "$@"
}
screen() { tm capture-pane -p -J -S - -t "$1"; }
# wait_for NAME COUNT PATTERN: until COUNT lines match PATTERN (60 s at most)
wait_for() {
	i=0
	while [ $i -lt 600 ]; do
		[ "$(screen "$1" | grep -c -- "$3")" -ge "$2" ] && return 0
		[ "$(tm display -p -t "$1" '#{pane_dead}')" = 1 ] && break
		sleep 0.1
		i=$((i + 1))
	done
	echo "--- waited for $2 x '$3'; the screen:"
	screen "$1" | grep -v '^$' | tail -n 25
	return 1
}
# exit_status NAME: chat's exit status once it has left (60 s at most;
# "running" if it has not)
exit_status() {
	i=0
	while [ $i -lt 600 ]; do
		[ -s "$T/$1.rc" ] && { cat "$T/$1.rc"; return; }
		sleep 0.1
		i=$((i + 1))
	done
	echo running
	echo "--- the screen:" >&2
	screen "$1" | grep -v '^$' | tail -n 25 >&2
}
# turn_field NAME TURN FIELD: from "[turn N: X new tokens, Y reused from cache]",
# X (FIELD 1) or Y (FIELD 2)
turn_field() {
	screen "$1" | sed -n "s/^\[turn $2: \([0-9]*\) new tokens, \([0-9]*\) reused from cache\]$/\\$3/p" |
		head -n 1
}
P='^>>> ' # the prompt

"$BIN" gen-tiny --out "$T/m.gguf" --vocab 512 >/dev/null || { bad "gen-tiny"; exit 1; }
if ! tm new-session -d -s probe true 2>"$T/err"; then
	echo "tmux cannot start a terminal here: $(head -n 1 "$T/err")"
	exit 77
fi

# --- two turns, /stats, /exit
start a -m "$T/m.gguf" -n 16 --temp 0 --verbose
if wait_for a 1 "$P"; then
	tm send-keys -t a 'hello there, who are you?' Enter
	wait_for a 2 "$P" && ok "first answer finished, prompt back" || bad "first answer"
	# the answer: the lines between the turn line and the next prompt, less notes
	answer=$(screen a | sed -n '/^\[turn 1:/,/^>>> /p' | grep -v '^\[\|^>>> ' | tr -d ' \n')
	[ -n "$answer" ] && ok "first answer streamed: $(echo "$answer" | head -c 40)" ||
		bad "no answer text"
	tm send-keys -t a 'and a second question' Enter
	wait_for a 3 "$P" && ok "second answer finished" || bad "second answer"
	new1=$(turn_field a 1 1) new2=$(turn_field a 2 1) reused2=$(turn_field a 2 2)
	echo "     turn 1: ${new1:-?} new; turn 2: ${new2:-?} new, ${reused2:-?} reused"
	# reused: at least the whole first prompt (and the first answer's tokens)
	if [ -n "$new1" ] && [ -n "$reused2" ] && [ "$new1" -gt 0 ] && [ "$reused2" -ge "$new1" ]; then
		ok "second turn reused the first from the cache ($reused2 tokens), evaluated $new2"
	else
		bad "second turn did not reuse the cache"
	fi
	tm send-keys -t a '/stats' Enter
	wait_for a 1 '^prompt: [0-9]* tokens' && wait_for a 4 "$P" && ok "/stats printed" ||
		bad "/stats"
	tm send-keys -t a '/exit' Enter
	st=$(exit_status a)
	[ "$st" = 0 ] && ok "/exit: status 0" || bad "/exit: status $st"
else
	bad "no prompt at start"
fi

# --- Ctrl-C stops an answer; the partial answer stays in the cache
start b -m "$T/m.gguf" -n 100000 -c 100000 --temp 0 --verbose
if wait_for b 1 "$P"; then
	tm send-keys -t b 'tell me a very long story' Enter
	wait_for b 1 '^\[turn 1:' && sleep 0.3
	tm send-keys -t b C-c
	wait_for b 1 '^\[stopped\]' && wait_for b 2 "$P" && ok "Ctrl-C stopped the answer, prompt back" ||
		bad "Ctrl-C did not stop the answer"
	[ "$(tm display -p -t b '#{pane_dead}')" = 0 ] && ok "still running after Ctrl-C" ||
		bad "chat left on Ctrl-C"
	tm send-keys -t b 'go on' Enter
	wait_for b 1 '^\[turn 2:' && sleep 0.1
	tm send-keys -t b C-c
	wait_for b 3 "$P" || bad "second Ctrl-C"
	new1=$(turn_field b 1 1) reused2=$(turn_field b 2 2)
	[ -n "$reused2" ] && [ -n "$new1" ] && [ "$reused2" -gt "$new1" ] &&
		ok "the partial answer stayed in the cache ($reused2 reused > $new1)" ||
		bad "partial answer not reused (turn 1 ${new1:-?} new, turn 2 ${reused2:-?} reused)"
	tm send-keys -t b 'abc' C-c
	wait_for b 1 'Ctrl-D or /exit to leave' && ok "Ctrl-C at the prompt clears the line" ||
		bad "Ctrl-C at the prompt"
	tm send-keys -t b '/exit' Enter
	st=$(exit_status b)
	[ "$st" = 0 ] && ok "/exit after Ctrl-C: status 0" || bad "/exit after Ctrl-C: status $st"
else
	bad "no prompt at start (Ctrl-C test)"
fi

# --- Ctrl-D leaves
start c -m "$T/m.gguf" -n 4 --temp 0
if wait_for c 1 "$P"; then
	tm send-keys -t c C-d
	st=$(exit_status c)
	[ "$st" = 0 ] && ok "Ctrl-D: status 0" || bad "Ctrl-D: status $st"
else
	bad "no prompt at start (Ctrl-D test)"
fi

# --- from a pipe: no prompt, plain lines; generate --chat agrees
out=$(printf 'hello\n/exit\n' | "$BIN" chat -m "$T/m.gguf" -n 8 --temp 0 2>"$T/err")
rc=$?
[ $rc -eq 0 ] && [ -n "$out" ] && ok "piped chat: status 0, answer printed" ||
	{ bad "piped chat: status $rc, output '$out'"; cat "$T/err"; }
echo "$out" | grep -q '>>>' && bad "piped chat printed a prompt" || ok "piped chat: no prompt"
gen=$("$BIN" generate -m "$T/m.gguf" --chat -p hello -n 8 --temp 0)
[ "$gen" = "$out" ] && ok "generate --chat gives chat's first answer" ||
	bad "generate --chat '$gen' differs from chat '$out'"
printf 'one\ntwo\n' | "$BIN" chat -m "$T/m.gguf" -n 4 --temp 0 --verbose >"$T/out" 2>"$T/err"
rc=$?
[ $rc -eq 0 ] && grep -q '^\[turn 2: .* [1-9][0-9]* reused' "$T/err" &&
	ok "piped chat: end of input leaves with status 0; turn 2 reused the cache" ||
	{ bad "piped chat at end of input: status $rc"; cat "$T/err"; }
printf '/reset\nthree\n' | "$BIN" chat -m "$T/m.gguf" -n 4 --temp 0 --verbose >"$T/out" 2>"$T/err"
grep -q '^\[turn 1: .* 0 reused' "$T/err" && grep -q 'conversation reset' "$T/out" &&
	ok "/reset" || { bad "/reset"; cat "$T/out" "$T/err"; }
"$BIN" chat -m "$T/m.gguf" --template nope </dev/null 2>"$T/err"
rc=$?
[ $rc -eq 1 ] && grep -q "unknown --template" "$T/err" && ok "unknown --template refused" ||
	bad "unknown --template: status $rc"

[ $fails -eq 0 ] && echo "all chat checks passed" && exit 0
echo "$fails chat checks failed"
exit 1
