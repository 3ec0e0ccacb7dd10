#!/bin/sh
# e2e_faults.sh: what convert, quantize and a streamed run do when files and
# disks misbehave (issue 14). Exit 0 pass, 1 fail, 77 skip (no python3).
#
#  outputs  convert/quantize --out naming an input (the same path, a hard link,
#           a symlink: the checkpoint's shard, config.json, tokenizer.json; the
#           input GGUF), a character device (mknod'ed here, as /dev/full is), a
#           FIFO, a directory: refused, exit 1, the inputs and the node as they
#           were. An existing regular output is replaced only on success.
#  writes   ENOSPC (a tmpfs smaller than the output, mounted here as root; where
#           mount is refused, the shim's ENOSPC), EIO after N bytes, EIO from
#           fsync: a clear error, exit 1, an existing output kept byte for
#           byte, no temporary file left. Short writes: the same bytes.
#  reads    expert reads, --io pread and buffered, through the shim (io_uring
#           reads bypass libc; tests/test_io.c and test_experts.c inject those
#           with io_set_fault): short reads, one transient EIO and slow reads
#           give the reference tokens and logits hash; a persistent EIO stops
#           with layer, expert, offset and errno, exit 1, and the tokens printed
#           before it are a prefix of the reference (never garbage).
#  changes  the model rewritten in place (other bytes, same size), replaced by
#           rename, or truncated while `generate` streams it (uring, pread,
#           buffered): exit 1 with a message naming the file and what changed.
#           (--io mmap and resident runs read the mapping: not covered, see
#           docs/RELIABILITY.md.)
#
# The shim is a small LD_PRELOAD library compiled here (needs cc; without it
# its cases are skipped, each saying so). It acts on the calls named by
#   FMF_OP     write | fsync | pread
#   FMF_PATH   only fds whose /proc/self/fd target contains this string
#   FMF_MODE   eio | enospc | short | slow
#   FMF_AFTER  bytes (write) or reads (pread) that go through first
#   FMF_COUNT  how many calls to fault (default: every one after FMF_AFTER)
#   FMF_DELAY_US  slow: the delay of each read
# pread faults hit only threads other than the main one (the io engine's
# workers), so the dense weights' reads at load are left alone; a short read
# returns half of what arrived (only reads over 8 KiB, so that the engine's
# continuation from the last aligned byte always progresses). With FMF_REPORT
# set it prints "fmfault: N faults" at exit, so that a case that injected
# nothing fails instead of passing.
set -u
BIN=${FM_BIN:-build/release/flashmoe}
# an ASan build would refuse the preloaded shim ahead of its runtime
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
command -v python3 >/dev/null || { echo "skip: no python3 to write the checkpoint"; exit 77; }
T=$(mktemp -d "${TMPDIR:-/tmp}/e2e_faults.XXXXXX")
MNT=$T/small
cleanup() {
	mountpoint -q "$MNT" 2>/dev/null && umount "$MNT"
	[ -n "${FM_KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
fails=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fails=$((fails + 1)); }
note() { echo "note $1"; }

# expect_refused NAME PATTERN CMD...: exit 1 and PATTERN in stderr
expect_refused() {
	name=$1 pat=$2
	shift 2
	"$@" >"$T/out" 2>"$T/err"
	rc=$?
	if [ $rc -ne 1 ]; then
		bad "$name: exit $rc, expected 1"; cat "$T/err"; return 1
	fi
	if ! grep -qi -- "$pat" "$T/err"; then
		bad "$name: message lacks '$pat':"; cat "$T/err"; return 1
	fi
	ok "$name: $(head -n 1 "$T/err")"
}

# no_tmp DIR: no temporary output (*.tmp.*) left in DIR
no_tmp() {
	left=$(ls "$1" | grep '\.tmp\.' || true)
	[ -z "$left" ] || { bad "temporary file left in $1: $left"; return 1; }
}

# ---- the shim ----
cat >"$T/fmfault.c" <<'EOF'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

typedef ssize_t (*pread_fn)(int, void *, size_t, off_t);
static atomic_llong n_bytes, n_reads, n_faults, n_taken;

static long long env_ll(const char *k, long long d)
{
	const char *v = getenv(k);
	return v && *v ? atoll(v) : d;
}
static int env_is(const char *k, const char *want)
{
	const char *v = getenv(k);
	return v && !strcmp(v, want);
}
static int on_path(int fd)
{
	char l[64], t[4096];
	const char *p = getenv("FMF_PATH");
	if (!p || !*p)
		return 0;
	snprintf(l, sizeof(l), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(l, t, sizeof(t) - 1);
	if (n < 0)
		return 0;
	t[n] = 0;
	return strstr(t, p) != NULL;
}
static int take_fault(void)
{
	long long c = env_ll("FMF_COUNT", -1);
	if (c >= 0 && atomic_fetch_add(&n_taken, 1) >= c)
		return 0;
	atomic_fetch_add(&n_faults, 1);
	return 1;
}
static int fault_errno(void)
{
	return env_is("FMF_MODE", "enospc") ? ENOSPC : EIO;
}

ssize_t write(int fd, const void *buf, size_t n)
{
	static ssize_t (*real)(int, const void *, size_t);
	if (!real)
		real = (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
	if (!env_is("FMF_OP", "write") || !on_path(fd))
		return real(fd, buf, n);
	if (env_is("FMF_MODE", "short")) {
		if (n > 2 && take_fault())
			n = n / 2;
		return real(fd, buf, n);
	}
	long long after = env_ll("FMF_AFTER", 0), done = atomic_load(&n_bytes);
	ssize_t r;
	if (done + (long long)n <= after || done < after) { /* what fits first */
		size_t k = done + (long long)n <= after ? n : (size_t)(after - done);
		if ((r = real(fd, buf, k)) > 0)
			atomic_fetch_add(&n_bytes, r);
		return r;
	}
	if (!take_fault())
		return real(fd, buf, n);
	errno = fault_errno();
	return -1;
}

int fsync(int fd)
{
	static int (*real)(int);
	if (!real)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	if (env_is("FMF_OP", "fsync") && on_path(fd) && take_fault()) {
		errno = fault_errno();
		return -1;
	}
	return real(fd);
}

static ssize_t fault_pread(pread_fn real, int fd, void *buf, size_t n, off_t off)
{
	if (!env_is("FMF_OP", "pread") || syscall(SYS_gettid) == getpid() || !on_path(fd) ||
	    atomic_fetch_add(&n_reads, 1) < env_ll("FMF_AFTER", 0))
		return real(fd, buf, n, off);
	if (env_is("FMF_MODE", "slow") && take_fault()) {
		long long us = env_ll("FMF_DELAY_US", 2000);
		struct timespec ts = { us / 1000000, us % 1000000 * 1000 };
		nanosleep(&ts, NULL);
		return real(fd, buf, n, off);
	}
	if (env_is("FMF_MODE", "short")) {
		ssize_t r = real(fd, buf, n, off);
		return r > 8192 && take_fault() ? r / 2 : r;
	}
	if (!take_fault())
		return real(fd, buf, n, off);
	errno = fault_errno();
	return -1;
}

ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
	static pread_fn real;
	if (!real)
		real = (pread_fn)dlsym(RTLD_NEXT, "pread");
	return fault_pread(real, fd, buf, n, off);
}

ssize_t pread64(int fd, void *buf, size_t n, off_t off)
{
	static pread_fn real;
	if (!real)
		real = (pread_fn)dlsym(RTLD_NEXT, "pread64");
	return fault_pread(real, fd, buf, n, off);
}

__attribute__((destructor)) static void report(void)
{
	if (getenv("FMF_REPORT"))
		fprintf(stderr, "fmfault: %lld faults\n", (long long)atomic_load(&n_faults));
}
EOF
SHIM=
if ${CC:-cc} -shared -fPIC -O2 -o "$T/fmfault.so" "$T/fmfault.c" -ldl 2>"$T/cc.log"; then
	SHIM=$T/fmfault.so
else
	note "no shim (cc failed: $(head -n 1 "$T/cc.log")): its cases are skipped"
fi

# shim VAR=VALUE... -- CMD...: CMD with the shim preloaded and FMF_* set
shim() {
	env LD_PRELOAD="$SHIM" FMF_REPORT=1 "$@"
}
# faults_seen FILE: the shim's report says it injected something
faults_seen() {
	n=$(sed -n 's/^fmfault: \([0-9]*\) faults$/\1/p' "$1" | tail -n 1)
	[ "${n:-0}" -gt 0 ]
}

# ---- a tiny Hugging Face checkpoint, in plain Python (no PyTorch) ----
cat >"$T/mkckpt.py" <<'EOF'
import json, os, random, struct, sys
d = sys.argv[1]
os.makedirs(d, exist_ok=True)
H, NH, NKV, HD, FF, E, K, L, V = 64, 2, 1, 32, 64, 4, 2, 2, 320
json.dump({"architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe",
           "hidden_size": H, "num_attention_heads": NH, "num_key_value_heads": NKV,
           "head_dim": HD, "intermediate_size": 128, "moe_intermediate_size": FF,
           "num_experts": E, "num_experts_per_tok": K, "num_hidden_layers": L,
           "vocab_size": V, "max_position_embeddings": 512, "rope_theta": 1000000.0,
           "rms_norm_eps": 1e-06, "tie_word_embeddings": False, "norm_topk_prob": True,
           "hidden_act": "silu", "bos_token_id": 256, "eos_token_id": 256},
          open(os.path.join(d, "config.json"), "w"))
shapes = [("model.embed_tokens.weight", [V, H])]
for l in range(L):
    p = "model.layers.%d." % l
    shapes += [(p + "input_layernorm.weight", [H]), (p + "self_attn.q_proj.weight", [NH * HD, H]),
               (p + "self_attn.k_proj.weight", [NKV * HD, H]),
               (p + "self_attn.v_proj.weight", [NKV * HD, H]),
               (p + "self_attn.o_proj.weight", [H, NH * HD]), (p + "self_attn.q_norm.weight", [HD]),
               (p + "self_attn.k_norm.weight", [HD]), (p + "post_attention_layernorm.weight", [H]),
               (p + "mlp.gate.weight", [E, H])]
    for e in range(E):
        q = p + "mlp.experts.%d." % e
        shapes += [(q + "gate_proj.weight", [FF, H]), (q + "up_proj.weight", [FF, H]),
                   (q + "down_proj.weight", [H, FF])]
shapes += [("model.norm.weight", [H]), ("lm_head.weight", [V, H])]
rng = random.Random(14)
header, blobs, at = {"__metadata__": {"format": "pt"}}, [], 0
for name, shape in shapes:
    n = 1
    for s in shape:
        n *= s
    scale, base = (0.2, 1.0) if len(shape) == 1 else (0.05, 0.0)
    b = struct.pack("<%df" % n, *[base + scale * rng.gauss(0, 1) for _ in range(n)])
    header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [at, at + len(b)]}
    blobs.append(b)
    at += len(b)
h = json.dumps(header).encode()
h += b" " * (-len(h) % 8)
with open(os.path.join(d, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h)
    for b in blobs:
        f.write(b)
# byte-level BPE: the 256 GPT-2 byte characters, <|endoftext|> = 256, two merges
bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
cs, n = bs[:], 0
for b in range(256):
    if b not in bs:
        bs.append(b)
        cs.append(256 + n)
        n += 1
vocab = {chr(c): b for b, c in zip(bs, cs)}
vocab.update({"he": 257, "ll": 258})
regex = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}"
         "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
json.dump({"version": "1.0",
           "added_tokens": [{"id": 256, "content": "<|endoftext|>", "special": True}],
           "normalizer": {"type": "NFC"},
           "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
               {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated",
                "invert": False},
               {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}]},
           "model": {"type": "BPE", "vocab": vocab, "merges": ["h e", "l l"]}},
          open(os.path.join(d, "tokenizer.json"), "w"))
json.dump({"eos_token": "<|endoftext|>", "add_bos_token": False},
          open(os.path.join(d, "tokenizer_config.json"), "w"))
EOF
CK=$T/ck
python3 "$T/mkckpt.py" "$CK" || { echo "FAIL writing the checkpoint"; exit 1; }
cp -r "$CK" "$T/ck.orig"
$BIN convert "$CK" --out "$T/ref.gguf" -q >/dev/null 2>"$T/err" ||
	{ cat "$T/err"; echo "FAIL convert of the tiny checkpoint"; exit 1; }
$BIN quantize -m "$T/ref.gguf" --out "$T/refq.gguf" --type q8_0 -q >/dev/null 2>"$T/err" ||
	{ cat "$T/err"; echo "FAIL quantize of the tiny model"; exit 1; }
no_tmp "$T" && ok "convert and quantize a tiny checkpoint ($(stat -c %s "$T/ref.gguf") bytes)"

# ---- 1. outputs that would destroy data ----
ln "$CK/model.safetensors" "$T/hard.gguf"
ln -s "$CK/config.json" "$T/sym.gguf"
ln -s "$T/ref.gguf" "$T/symq.gguf"
mkfifo "$T/fifo.gguf"
mkdir "$T/dir.gguf"
DEV=
if mknod "$T/full.gguf" c 1 7 2>/dev/null; then DEV=$T/full.gguf; fi
for out in "$CK/model.safetensors" "$CK/config.json" "$CK/tokenizer.json" \
	   "$CK/tokenizer_config.json" "$T/hard.gguf" "$T/sym.gguf"; do
	expect_refused "convert --out $(basename "$out") (an input)" "is the input" \
		$BIN convert "$CK" --out "$out" -q
done
for out in "$T/ref.gguf" "$T/./ref.gguf" "$T/symq.gguf"; do
	expect_refused "quantize --out $(basename "$out") (the input)" "is the input" \
		$BIN quantize -m "$T/ref.gguf" --out "$out" --type q8_0 -q
done
for out in "$T/fifo.gguf" "$T/dir.gguf" $DEV; do
	expect_refused "convert --out $(basename "$out") (not a regular file)" "not a regular file" \
		timeout 20 $BIN convert "$CK" --out "$out" -q
	expect_refused "quantize --out $(basename "$out") (not a regular file)" "not a regular file" \
		timeout 20 $BIN quantize -m "$T/ref.gguf" --out "$out" --type q8_0 -q
done
[ -n "$DEV" ] || note "mknod refused: the character-device case is left to the FIFO and test_io"
if diff -r "$CK" "$T/ck.orig" >/dev/null && [ -p "$T/fifo.gguf" ] && [ -d "$T/dir.gguf" ] &&
   { [ -z "$DEV" ] || [ -c "$DEV" ]; } && [ -L "$T/sym.gguf" ] && no_tmp "$T" && no_tmp "$CK"; then
	ok "inputs, FIFO, directory and device node unchanged, no temporary file"
else
	bad "a refused output changed an input or a node"
fi
echo "old output" >"$T/old.gguf"
if $BIN convert "$CK" --out "$T/old.gguf" -q >/dev/null 2>&1 && cmp -s "$T/old.gguf" "$T/ref.gguf"; then
	ok "an existing regular output is replaced on success"
else
	bad "convert over an existing output"
fi

# ---- 2. write faults ----
# wfault NAME PATTERN DIR SHIMVARS... -- (convert|quantize): the output DIR/out.gguf
# exists beforehand ("old bytes"); after the failure it must be exactly that
wfault() {
	name=$1 pat=$2 dir=$3
	shift 3
	printf 'old bytes\n' >"$dir/out.gguf"
	vars=
	while [ "$1" != "--" ]; do vars="$vars $1"; shift; done
	shift
	case $1 in
	convert) set -- $BIN convert "$CK" --out "$dir/out.gguf" -q ;;
	*) set -- $BIN quantize -m "$T/ref.gguf" --out "$dir/out.gguf" --type f16 -q ;;
	esac
	if [ -n "$vars" ]; then
		# shellcheck disable=SC2086
		set -- env LD_PRELOAD="$SHIM" FMF_REPORT=1 $vars "$@"
	fi
	expect_refused "$name" "$pat" "$@" || return
	if [ -n "$vars" ] && ! faults_seen "$T/err"; then bad "$name: the shim injected nothing"; return; fi
	[ "$(cat "$dir/out.gguf")" = "old bytes" ] && no_tmp "$dir" &&
		ok "$name: the old output is intact, no temporary file left"
}

if mkdir -p "$MNT" && mount -t tmpfs -o size=128k tmpfs "$MNT" 2>"$T/mount.err"; then
	for tool in convert quantize; do
		wfault "ENOSPC ($tool onto a 128 KiB tmpfs)" "No space left on device" "$MNT" -- $tool
	done
	umount "$MNT"
elif [ -n "$SHIM" ]; then
	note "mount refused ($(head -n 1 "$T/mount.err")): ENOSPC from the shim instead"
	for tool in convert quantize; do
		wfault "ENOSPC ($tool, shim)" "No space left on device" "$T" \
			FMF_OP=write FMF_PATH=out.gguf.tmp FMF_MODE=enospc FMF_AFTER=65536 -- $tool
	done
else
	note "neither mount nor the shim: no ENOSPC case"
fi
if [ -n "$SHIM" ]; then
	for tool in convert quantize; do
		wfault "EIO after 100000 bytes ($tool)" "write failed: Input/output error" "$T" \
			FMF_OP=write FMF_PATH=out.gguf.tmp FMF_MODE=eio FMF_AFTER=100000 -- $tool
		wfault "EIO from fsync ($tool)" "fsync failed: Input/output error" "$T" \
			FMF_OP=fsync FMF_PATH=out.gguf.tmp FMF_MODE=eio -- $tool
	done
	shim FMF_OP=write FMF_PATH=short.gguf.tmp FMF_MODE=short \
		$BIN convert "$CK" --out "$T/short.gguf" -q >/dev/null 2>"$T/err"
	if faults_seen "$T/err" && cmp -s "$T/short.gguf" "$T/ref.gguf"; then
		ok "short writes are continued: the same bytes ($(tail -n 1 "$T/err"))"
	else
		bad "short writes"; cat "$T/err"
	fi
else
	note "no shim: the EIO, fsync and short-write cases are skipped"
fi

# ---- 3. expert read faults, end to end ----
M=$T/stream.gguf
$BIN gen-tiny --out "$M" --type q8_0 --layers 4 --hidden 256 --experts 16 --expert-ff 256 \
	--seed 14 >/dev/null || { bad "gen-tiny"; exit 1; }
# gen OUT IO [ENV...]: a streamed greedy run with a 1 MiB cache; stdout to OUT.ids,
# stderr to OUT.err
gen() {
	o=$1 io=$2
	shift 2
	env "$@" $BIN generate -m "$M" --cache-size 1M --io "$io" --token-ids 1,2,3 -n 40 \
		--temp 0 --ids --stats --isa ref -t 1 >"$o.ids" 2>"$o.err"
}
gen "$T/resident" mmap
hash=$(grep "final logits hash" "$T/resident.err")
[ -n "$hash" ] || { bad "reference run"; cat "$T/resident.err"; }
if [ -n "$SHIM" ]; then
	for io in pread buffered; do
		r=$T/r-$io
		gen "$r" "$io"
		[ "$(grep "final logits hash" "$r.err")" = "$hash" ] && cmp -s "$r.ids" "$T/resident.ids" ||
			bad "$io without faults differs from the resident run"
		for c in "short:FMF_MODE=short" "transient EIO:FMF_MODE=eio FMF_AFTER=20 FMF_COUNT=1" \
			 "slow (3 ms a read):FMF_MODE=slow FMF_DELAY_US=3000"; do
			what=${c%%:*}
			# shellcheck disable=SC2086
			gen "$r.f" "$io" LD_PRELOAD="$SHIM" FMF_REPORT=1 FMF_OP=pread FMF_PATH=stream.gguf ${c#*:}
			rc=$?
			if [ $rc -eq 0 ] && faults_seen "$r.f.err" && cmp -s "$r.f.ids" "$T/resident.ids" &&
			   [ "$(grep "final logits hash" "$r.f.err")" = "$hash" ]; then
				ok "$io, $what reads: the reference tokens and $hash ($(tail -n 1 "$r.f.err"))"
			else
				bad "$io, $what reads: exit $rc"; tail -n 3 "$r.f.err"
			fi
		done
		EIO_MSG="read failed after a retry: Input/output error (errno 5)"
		gen "$r.f" "$io" LD_PRELOAD="$SHIM" FMF_REPORT=1 FMF_OP=pread FMF_PATH=stream.gguf \
			FMF_MODE=eio FMF_AFTER=300
		rc=$?
		msg=$(grep "flashmoe generate" "$r.f.err")
		got=$(cat "$r.f.ids")
		case $(cat "$T/resident.ids") in
		"$got"*) prefix=1 ;;
		*) prefix=0 ;;
		esac
		if [ $rc -eq 1 ] && [ $prefix -eq 1 ] && ! grep -q "final logits hash" "$r.f.err" &&
		   echo "$msg" | grep -q "stream.gguf: at offset [0-9]*: layer [0-9]* expert [0-9]*: $EIO_MSG"; then
			ok "$io, persistent EIO: exit 1, $(wc -w <"$r.f.ids") tokens before it (a prefix of the reference): $msg"
		else
			bad "$io, persistent EIO: exit $rc, prefix $prefix: $msg"; tail -n 3 "$r.f.err"
		fi
	done
else
	note "no shim: the read-fault cases run only in test_io and test_experts"
fi

# ---- 4. the model file changed during a streamed run ----
# Seed 4 samples 1500 tokens without meeting an end-of-text token (--isa ref:
# the same numbers on every CPU), a few seconds of streaming at -t 1. The
# change is made once the first tokens are out; it must stop the run with
# exit 1 and a message naming the file and the change.
$BIN gen-tiny --out "$T/c1.gguf" --type q8_0 --layers 4 --hidden 256 --experts 32 --expert-ff 256 \
	--vocab 4096 --ctx 4096 --seed 1 >/dev/null &&
	$BIN gen-tiny --out "$T/c2.gguf" --type q8_0 --layers 4 --hidden 256 --experts 32 \
		--expert-ff 256 --vocab 4096 --ctx 4096 --seed 2 >/dev/null || { bad "gen-tiny"; exit 1; }
[ "$(stat -c %s "$T/c1.gguf")" = "$(stat -c %s "$T/c2.gguf")" ] || bad "the two models differ in size"
# change NAME IO PATTERN ACTION
change() {
	name=$1 io=$2 pat=$3 action=$4
	cp "$T/c1.gguf" "$T/big.gguf"
	touch -d @1000000000 "$T/big.gguf" # an old mtime: a write now cannot share its tick
	: >"$T/ch.out"
	$BIN generate -m "$T/big.gguf" --cache-size 2M --io "$io" --token-ids 1,2,3 -n 1500 \
		--temp 1 --seed 4 --isa ref --ids -t 1 >"$T/ch.out" 2>"$T/ch.err" &
	pid=$!
	i=0
	while [ ! -s "$T/ch.out" ] && [ $i -lt 600 ] && kill -0 $pid 2>/dev/null; do
		sleep 0.05; i=$((i + 1))
	done
	alive=0
	kill -0 $pid 2>/dev/null && alive=1
	n0=$(wc -w <"$T/ch.out")
	eval "$action"
	wait $pid
	rc=$?
	if [ $alive -eq 0 ]; then
		bad "$io, $name: generation ended (exit $rc) before the change"; cat "$T/ch.err"; return
	fi
	if [ $rc -eq 1 ] && grep -q "big.gguf" "$T/ch.err" && grep -q -- "$pat" "$T/ch.err"; then
		ok "$io, $name after $n0 tokens: exit 1 after $(wc -w <"$T/ch.out"): $(cat "$T/ch.err")"
	else
		bad "$io, $name: exit $rc, $(wc -w <"$T/ch.out") tokens, expected '$pat':"; cat "$T/ch.err"
	fi
}
for io in uring pread buffered; do
	change "rewritten in place" $io "modified in place" \
		'dd if="$T/c2.gguf" of="$T/big.gguf" bs=1M conv=notrunc status=none'
	change "replaced by rename" $io "names another file" \
		'cp "$T/c2.gguf" "$T/big.new" && mv "$T/big.new" "$T/big.gguf"'
	change "truncated" $io "size went from\|the file ends before it" \
		'truncate -s 5M "$T/big.gguf"'
done

[ $fails -eq 0 ] && echo "e2e_faults: ok" && exit 0
echo "e2e_faults: $fails failed"
exit 1
