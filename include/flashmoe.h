/* flashmoe.h: the public C API of the flashmoe inference engine.
 *
 * flashmoe runs Mixture-of-Experts language models stored as GGUF files. The
 * dense weights stay in memory; routed experts may be streamed from the file
 * into a fixed-size cache (see DESIGN.md). The CLI and the server use only
 * this header.
 *
 * Conventions
 *   - Every fallible call returns 0 (or a count) on success and a negative code
 *     on failure: -errno for OS errors, FM_E* for the engine's own; constructors
 *     return NULL. Details go to a caller-owned struct fm_error (may be NULL).
 *   - Objects are opaque: fm_X_open/fm_X_close, fm_X_new/fm_X_free. Destructors
 *     accept NULL. Getters return borrowed pointers, valid until the owner is
 *     closed.
 *   - Threads: one fm_ctx is used by one thread at a time. Contexts of one
 *     model may be made, used and freed on different threads at once, the
 *     experts resident or streamed: evaluations of a model (fm_eval,
 *     fm_eval_batch) take turns (a mutex of the model), each using the
 *     model's whole thread pool and expert cache. fm_get_stats,
 *     fm_reset_stats and, for a live context, fm_ctx_get_stats and
 *     fm_ctx_reset_stats may be called from any thread at any time.
 *     fm_model_close only when no other call on the model or its contexts
 *     runs. Tokenizers are immutable (see the tokenizer section).
 */
#ifndef FLASHMOE_H
#define FLASHMOE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FM_API __attribute__((visibility("default")))

/* Engine error codes (negative, far from -errno values). */
enum fm_errcode {
	FM_EFORMAT = -1000,  /* a file is malformed or truncated */
	FM_EUNSUPPORTED = -1001, /* valid, but a feature flashmoe lacks */
	FM_ENOMEM = -1002,   /* allocation failed or --mem budget exceeded */
	FM_EINVAL = -1003,   /* bad argument */
	FM_ERANGE = -1004,   /* a size or count out of range */
	FM_ENOTFOUND = -1005, /* a key, tensor or token is missing */
	FM_EIO = -1006,      /* a read or write failed after retries */
	FM_ECANCELED = -1007, /* stopped by the caller */
};

/* Error details, filled by the call that failed. */
struct fm_error {
	int code;          /* the value the call returned */
	char file[256];    /* file concerned, or "" */
	uint64_t offset;   /* byte offset in file, or UINT64_MAX */
	char msg[512];     /* one line: what, where, expected vs got */
};

/* ---- models and contexts ---- */

struct fm_model;
struct fm_ctx;

/* Options of fm_model_open; fm_model_params_default() fills the defaults. */
struct fm_model_params {
	int n_threads;            /* compute threads; 0 = physical cores */
	uint64_t mem_bytes;       /* whole-process budget; 0 = no limit */
	const char *isa;          /* "ref", "avx2", "avx512" or NULL = best */
	int n_expert_used;        /* routed experts per token; 0 = the model's */
	const char *io;           /* expert I/O: "uring","pread","buffered","mmap"; NULL = auto */
	bool prefetch;            /* guess the next layer's experts while that measures
				   * faster than not guessing (DESIGN.md, experts.h) */
	bool prefetch_always;     /* with prefetch: guess on every token, unmeasured */
	bool verbose;             /* print the memory split at open */
	const char *cache_policy; /* expert cache eviction: "lru", "lfu", "arc", "pred"; NULL = default */
	const char *trace_experts; /* write every routing decision to this file */
	bool stream;              /* stream experts even when everything would fit */
	uint64_t cache_bytes;     /* expert cache size when streaming; 0 = what --mem leaves
				   * at the first evaluation (contexts made before it,
				   * e.g. a server's slots, are counted first) */
	float cache_routing;      /* cache-aware routing when streaming: a selected expert not in
				   * the cache whose renormalised weight is below this is
				   * replaced by the cached one with the closest score; 0 = off
				   * (changes the output; docs/QUALITY.md has its cost) */
	const char *kv_type;      /* KV cache format of contexts: "f32", "f16", "q8_0"; NULL = f32 */
	const char *kv_type_k, *kv_type_v; /* keys' / values' format; NULL = kv_type */
};

FM_API void fm_model_params_default(struct fm_model_params *p);
/* Open a GGUF model; NULL on failure with err filled. */
FM_API struct fm_model *fm_model_open(const char *path,
				      const struct fm_model_params *p,
				      struct fm_error *err);
FM_API void fm_model_close(struct fm_model *m);

/* Sizes of an open model (borrowed, valid until fm_model_close). */
struct fm_model_info {
	const char *arch;         /* "qwen3moe" */
	const char *name;         /* general.name or "" */
	int n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim;
	int n_expert, n_expert_used, n_ff_expert;
	int n_ctx_train;
	uint64_t n_params;
	uint64_t bytes_total, bytes_expert, bytes_dense; /* tensor bytes */
	const char *isa;          /* kernels in use */
	int n_threads;
};
FM_API const struct fm_model_info *fm_model_get_info(const struct fm_model *m);

/* Write a human-readable description (tensors, types, byte split) to buf;
 * returns the length it needed (like snprintf). */
FM_API size_t fm_model_describe(const struct fm_model *m, char *buf, size_t cap);

/* A context: KV cache and scratch for one sequence of up to n_ctx tokens. */
FM_API struct fm_ctx *fm_ctx_new(struct fm_model *m, int n_ctx, struct fm_error *err);
FM_API void fm_ctx_free(struct fm_ctx *c);
/* Tokens already in the cache. */
FM_API int fm_ctx_n_past(const struct fm_ctx *c);
/* Forget all tokens after the first n_keep (0 = start over). A model with
 * recurrent layers (Qwen3-Next, Qwen3.5) can go back only to 0, to where a
 * multi-token fm_eval began, or nowhere: else FM_EUNSUPPORTED, nothing
 * changed. */
FM_API int fm_ctx_truncate(struct fm_ctx *c, int n_keep);
/* Go back to n_keep tokens or, where the model's recurrent state cannot, to
 * the nearest earlier position it can (see fm_ctx_truncate); returns the
 * tokens kept (<= n_keep) or a negative code. The caller re-evaluates the
 * tokens from there. */
FM_API int fm_ctx_rewind(struct fm_ctx *c, int n_keep);

/* Run n tokens after those already in the cache (a prompt batch or one
 * generated token). logits: NULL, or n_vocab floats for the last token
 * (all_logits false) or n x n_vocab floats (all_logits true). */
FM_API int fm_eval(struct fm_ctx *c, const int32_t *tokens, int n,
		   float *logits, bool all_logits, struct fm_error *err);
/* The context's size in tokens (as made by fm_ctx_new). */
FM_API int fm_ctx_n_ctx(const struct fm_ctx *c);

/* One step over several contexts of the same model. Item i evaluates
 * n_tokens of its own context (a prompt chunk or one generated token); all
 * items run as one batch, so a routed expert is read and multiplied once per
 * step for every item that routed to it. Items must be distinct contexts of
 * one model. */
struct fm_batch_item {
	struct fm_ctx *ctx;
	const int32_t *tokens;
	int n_tokens;          /* >= 1 */
	float *logits;         /* NULL, or n_vocab floats: the logits of the item's last token */
	int status;            /* out: 0, or the negative code of this item's failure */
};
/* 0 when every item succeeded; else the first failing item's code (err
 * filled), other items still ran. An item that cannot run (context full, a
 * token outside the vocabulary, a context repeated or of another model) is
 * left as it was; an I/O error of the expert store fails every item still
 * running, as fm_eval would. One step holds up to the widest item's batch
 * (min(n_ctx, 256) tokens): longer prompt chunks continue in further steps
 * of the same call, single tokens going first. Multi-token items are prompt
 * chunks for fm_ctx_truncate as in fm_eval. */
FM_API int fm_eval_batch(struct fm_batch_item *items, int n, struct fm_error *err);

/* ---- tokens ---- */

/* Encode text with the model's tokenizer; returns the number of ids (which
 * may exceed cap: then only cap were written) or a negative code. */
FM_API int fm_tokenize(const struct fm_model *m, const char *text, size_t len,
		       int32_t *ids, int cap, bool parse_special);
/* The bytes of token id (borrowed); *len set; NULL for a bad id. */
FM_API const char *fm_token_bytes(const struct fm_model *m, int32_t id, size_t *len);
FM_API int32_t fm_token_eos(const struct fm_model *m); /* -1 if none */
FM_API bool fm_token_is_eog(const struct fm_model *m, int32_t id);

/* ---- standalone tokenizer and chat templates (src/api_tokenizer.c) ----
 * A tokenizer without a model, from a Hugging Face tokenizer.json or from
 * the tokenizer keys of a .gguf. Immutable once loaded: any number of threads
 * may use one at the same time. Byte-level BPE exactly as the model's Hugging
 * Face tokenizer (added tokens, NFC, the pre-tokenizer regex, merges). */
struct fm_tokenizer;
/* Load path: "*.gguf" (only the tokenizer.* keys are read) or a
 * tokenizer.json (with tokenizer_config.json beside it, if present, for
 * eos/bos and the chat template). NULL on failure with err filled. */
FM_API struct fm_tokenizer *fm_tokenizer_load(const char *path, struct fm_error *err);
FM_API void fm_tokenizer_free(struct fm_tokenizer *t);
/* The model's tokenizer (borrowed, valid until fm_model_close), or NULL. */
FM_API const struct fm_tokenizer *fm_model_tokenizer(const struct fm_model *m);
/* As fm_tokenize: any bytes in (invalid UTF-8 kept as byte tokens); returns
 * the number of ids the text needs (only cap written; it may exceed len, as
 * NFC can lengthen text) or a negative code. */
FM_API int fm_tokenizer_encode(const struct fm_tokenizer *t, const char *text, size_t len,
			       bool parse_special, int32_t *ids, int cap);
/* The bytes of token id (borrowed); *len set; NULL for a bad id. */
FM_API const char *fm_tokenizer_piece(const struct fm_tokenizer *t, int32_t id, size_t *len);
FM_API int fm_tokenizer_n_vocab(const struct fm_tokenizer *t);
FM_API int32_t fm_tokenizer_bos(const struct fm_tokenizer *t); /* -1 if none */
FM_API bool fm_tokenizer_add_bos(const struct fm_tokenizer *t); /* prepend bos? */
FM_API int32_t fm_tokenizer_eos(const struct fm_tokenizer *t); /* -1 if none */
FM_API bool fm_tokenizer_is_eog(const struct fm_tokenizer *t, int32_t id);
/* Control tokens (<|im_end|>) are special; <think> is not. */
FM_API bool fm_tokenizer_is_control(const struct fm_tokenizer *t, int32_t id);
/* Id of the token spelled exactly text ("<|im_start|>"), or -1. */
FM_API int32_t fm_tokenizer_find(const struct fm_tokenizer *t, const char *text);

/* Streaming decode: feed ids, get text that never ends inside a UTF-8
 * character (held bytes come out with the next ids or at flush; bytes that
 * can never be valid UTF-8 come out as they are). One handle per stream. */
struct fm_detok;
FM_API struct fm_detok *fm_detok_new(const struct fm_tokenizer *t, bool skip_control);
FM_API void fm_detok_free(struct fm_detok *d);
/* Bytes one fm_detok_feed may write at most (size out with it). */
FM_API size_t fm_detok_max_bytes(const struct fm_tokenizer *t);
/* Write the text completed by id to out; returns the byte count, or
 * FM_EINVAL (bad id) / FM_ERANGE (cap too small; nothing consumed). */
FM_API int fm_detok_feed(struct fm_detok *d, int32_t id, char *out, size_t cap);
/* Write any held incomplete character as raw bytes (at most 3). */
FM_API int fm_detok_flush(struct fm_detok *d, char *out, size_t cap);

/* One tool call of an assistant message (OpenAI's tool_calls[i]). */
struct fm_chat_tool_call {
	const char *id;        /* not rendered by the Qwen templates; may be NULL */
	const char *name;
	const char *arguments; /* JSON text of an object, as OpenAI sends it */
};
/* A message. {role, content} initializers keep working: the trailing fields
 * are then zero. content NULL renders as "" (an assistant turn that only
 * calls tools). */
struct fm_chat_msg {
	const char *role;    /* "system", "user", "assistant", "tool" */
	const char *content;
	const char *reasoning_content; /* assistant: its reasoning, or NULL (then
					* <think>..</think> in content is used) */
	const struct fm_chat_tool_call *tool_calls; /* assistant: n_tool_calls calls */
	size_t n_tool_calls;
};
/* Name of the chat template the file asks for ("qwen3", "qwen35",
 * "chatml"), detected from its Jinja chat_template; NULL if unknown. */
FM_API const char *fm_tokenizer_chat_template(const struct fm_tokenizer *t);
/* Render messages with template tmpl ("chatml", "qwen3", "qwen35") into buf
 * (NUL-terminated when it fits); *len = the length needed. enable_thinking
 * false asks Qwen3 models not to think. 0, or FM_EINVAL (unknown template,
 * NULL role, a message list the template itself refuses). */
FM_API int fm_chat_render(const char *tmpl, const struct fm_chat_msg *msgs, size_t n,
			  bool add_generation_prompt, bool enable_thinking, char *buf,
			  size_t cap, size_t *len);
/* As fm_chat_render, with tool definitions: tools_json is OpenAI's "tools"
 * array as JSON text (or NULL / "[]": no tools block). The text is byte for
 * byte what the model's Jinja template gives under transformers
 * (apply_chat_template(messages, tools=...)). FM_EINVAL also for tools_json
 * or a tool call's arguments that are not valid JSON of the right shape. */
FM_API int fm_chat_render_tools(const char *tmpl, const struct fm_chat_msg *msgs, size_t n,
				const char *tools_json, bool add_generation_prompt,
				bool enable_thinking, char *buf, size_t cap, size_t *len);

/* Output parser: splits generated text, fed in chunks of any size (a tag may
 * be split anywhere), into content, reasoning (<think>...</think>, as
 * llama-server's reasoning_content) and tool calls (<tool_call>...</tool_call>
 * with {"name": .., "arguments": {..}} inside, or Qwen3.5's
 * <function=NAME><parameter=K>V</parameter></function>). A tool call is
 * reported once its closing tag has arrived: BEGIN (name, a fresh random id
 * "call_" + 24 letters and digits), ARGS (the arguments as JSON text in
 * Python's json.dumps form; concatenate the ARGS of one call), END. Text
 * inside <tool_call> that does not parse, or a call never closed, comes out
 * as content, tags included. Whitespace around reasoning and calls is
 * dropped. One parser per generation; not thread-safe. */
enum fm_chat_event_kind {
	FM_CHAT_CONTENT = 0,
	FM_CHAT_REASONING,
	FM_CHAT_TOOL_CALL_BEGIN,
	FM_CHAT_TOOL_CALL_ARGS,
	FM_CHAT_TOOL_CALL_END,
};
struct fm_chat_event {
	enum fm_chat_event_kind kind;
	const char *text;   /* CONTENT/REASONING: the text; ARGS: a JSON fragment */
	size_t len;
	const char *name;   /* BEGIN: the function's name (NUL-terminated) */
	const char *id;     /* BEGIN..END: the call's id (NUL-terminated) */
	int index;          /* BEGIN..END: 0, 1, .. in this generation */
};
/* Called for each event; pointers are valid only during the call. */
typedef void (*fm_chat_event_fn)(const struct fm_chat_event *ev, void *user);
struct fm_chat_parser;
/* tmpl: "chatml", "qwen3", "qwen35" (NULL = chatml); in_think: the prompt
 * ended inside <think> (the qwen35 generation prompt with thinking on), so
 * the output starts as reasoning; tools: parse <tool_call> (else it is
 * content). NULL on out of memory or an unknown template. */
FM_API struct fm_chat_parser *fm_chat_parser_new(const char *tmpl, bool in_think, bool tools);
FM_API void fm_chat_parser_free(struct fm_chat_parser *p);
/* Feed len bytes; events for what is decided so far. 0, or FM_ENOMEM. */
FM_API int fm_chat_parser_feed(struct fm_chat_parser *p, const char *text, size_t len,
			       fm_chat_event_fn cb, void *user);
/* The generation ended: everything held back comes out (an unclosed tool
 * call as content). 0, or FM_ENOMEM. */
FM_API int fm_chat_parser_finish(struct fm_chat_parser *p, fm_chat_event_fn cb, void *user);
/* ---- end of the standalone tokenizer ---- */

/* ---- sampling ---- */

struct fm_sampler_params {
	float temp;          /* 0 = greedy */
	int top_k;           /* 0 = off */
	float top_p;         /* 1 = off */
	float min_p;         /* 0 = off */
	float repeat_penalty; /* 1 = off */
	int repeat_last_n;
	uint64_t seed;
};
struct fm_sampler;
FM_API void fm_sampler_params_default(struct fm_sampler_params *p);
FM_API struct fm_sampler *fm_sampler_new(const struct fm_sampler_params *p, int n_vocab);
FM_API void fm_sampler_free(struct fm_sampler *s);
/* Pick a token from logits (modified in place); remembers it for penalties. */
FM_API int32_t fm_sampler_sample(struct fm_sampler *s, float *logits);

/* ---- statistics ---- */

struct fm_stats {
	uint64_t n_prompt_tokens, n_gen_tokens;
	double prompt_s, gen_s;            /* wall time in fm_eval */
	uint64_t expert_lookups, expert_hits, expert_misses;
	uint64_t bytes_read;               /* expert bytes read from disk */
	double io_wait_s, compute_s;
	uint64_t prefetch_issued, prefetch_used, prefetch_wasted_bytes;
	uint64_t cache_slots, cache_bytes;
	uint64_t mem_peak_bytes, mem_budget_bytes;
	uint64_t prefetch_guesses, prefetch_guess_hits; /* next-layer guesses right */
	double read_s;                     /* time with expert reads in flight */
	const char *io_mode;               /* "uring", "pread", ..., "resident" */
	/* where fm_eval's time went (seconds, summed over every token):
	 * attention layers, DeltaNet layers, routing (norm, router, top-k, the
	 * shared expert's gate and up), routed experts (waiting on their reads
	 * included: io_wait_s), the shared expert's down projection, the head */
	double attn_s, gdn_s, route_s, experts_s, shared_s, head_s;
	/* prefetch's measured choice: one-token steps run with and without it,
	 * and the last probe's mean step time of each (seconds; 0 before one) */
	uint64_t prefetch_tokens_on, prefetch_tokens_off;
	double prefetch_probe_on_s, prefetch_probe_off_s;
};
FM_API void fm_get_stats(const struct fm_model *m, struct fm_stats *out);
FM_API void fm_reset_stats(struct fm_model *m);
/* Statistics of one context (its fm_eval/fm_eval_batch calls); fm_get_stats
 * stays the model-wide sum. A context gets its own tokens and its share of
 * each step it took part in: a fm_eval_batch step's wall time, phase times
 * and expert counters are split among the items by their token counts, so
 * the contexts' figures add up to the model's (whose prompt_s + gen_s is
 * wall time: n_gen_tokens / gen_s is the aggregate generation rate). An
 * item of one token counts as generated, of more as prompt. The gauges
 * (cache_*, mem_*, io_mode) are the model's. */
FM_API void fm_ctx_get_stats(const struct fm_ctx *c, struct fm_stats *out);
FM_API void fm_ctx_reset_stats(struct fm_ctx *c);

/* ---- random-weight models for tests and benchmarks ---- */

struct fm_tiny_params {
	const char *arch;        /* "qwen3moe", "qwen3next", "qwen35moe" */
	uint64_t seed;
	int type;                /* ggml type of the big matrices: 0 f32, 8 q8_0, 12 q4_K, ... */
	int n_layer, n_embd, n_head, n_head_kv, head_dim;
	int n_expert, n_expert_used, n_ff_expert;
	int n_vocab, n_ctx;
	bool tied_embeddings;
	/* 0 = the architecture's tiny default */
	int n_rot;               /* rotary dims (qwen3moe: head_dim; hybrids: head_dim / 4) */
	int n_ff_shared;         /* shared expert width (hybrids) */
	int ssm_state, ssm_groups, ssm_heads; /* DeltaNet: head size, key heads, value heads */
	int full_attn_interval;  /* every Nth layer is attention (hybrids) */
	int expert_pool;         /* > 0: draw this many distinct experts per tensor and
				  * repeat them (big benchmark files, made faster) */
};
FM_API void fm_tiny_params_default(struct fm_tiny_params *p);
/* Write a random-weight GGUF model with a valid byte-level BPE vocabulary. */
FM_API int fm_gen_tiny(const char *path, const struct fm_tiny_params *p,
		       struct fm_error *err);

/* Name of a ggml type id ("q4_K") or NULL; and the reverse, -1 if unknown. */
FM_API const char *fm_type_name(int type);
FM_API int fm_type_from_name(const char *name);

#ifdef __cplusplus
}
#endif
#endif
