/* gen_seeds.c: the seed corpora of the fuzz targets (`make fuzz` runs it).
 *
 *   gen_seeds OUT_DIR [MODEL.gguf]
 *
 * writes OUT_DIR/corpus-<target>/seed-* for every tests/fuzz/fuzz_*.c:
 *   fuzz_gguf             a GGUF with every key type and three small tensors,
 *                         and a tokenizer-only GGUF (the gen-tiny vocabulary)
 *   fuzz_safetensors      three small files (dtypes, scalar, empty tensor)
 *   fuzz_tokenizer_gguf   the tokenizer-only GGUF, and the same with a
 *                         chat template, bos/pad ids and a token_embd.weight
 *   fuzz_tokenizer        texts: prose, chat markup, digits, NFC cases,
 *                         broken UTF-8 (byte 0: parse_special)
 *   fuzz_tokenizer_json   tokenizer.json files (+ tokenizer_config.json
 *                         after a NUL) from the gen-tiny vocabulary and,
 *                         when MODEL is given, from its tokenizer cut to its
 *                         first 512 ids and its added tokens (renumbered)
 *   fuzz_config           config.json: Qwen3-30B-A3B's, tiny Qwen3-MoE,
 *                         Qwen3-Next and Qwen3.5-MoE ones, two refused ones
 *   fuzz_chat_parser      model outputs: reasoning, Qwen3 JSON and Qwen3.5
 *                         XML tool calls, a malformed and an unclosed call
 * Deterministic: the same files on every run.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gentiny.h"
#include "gguf.h"
#include "tokenizer_int.h"

static const char *out_dir;

static FILE *open_seed(const char *target, const char *name)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/corpus-%s", out_dir, target);
	if (mkdir(path, 0755) && errno != EEXIST) {
		perror(path);
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/corpus-%s/seed-%s", out_dir, target, name);
	FILE *f = fopen(path, "wb");
	if (!f) {
		perror(path);
		exit(1);
	}
	return f;
}

static void put_seed(const char *target, const char *name, const void *p, size_t n)
{
	FILE *f = open_seed(target, name);
	if (fwrite(p, 1, n, f) != n || fclose(f)) {
		fprintf(stderr, "gen_seeds: cannot write %s/%s\n", target, name);
		exit(1);
	}
}

/* ---- tokenizer.json ---- */

/* s[0..n) as a JSON string. */
static void put_json_str(FILE *f, const char *s, size_t n)
{
	fputc('"', f);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static bool is_added_type(enum tok_type ty)
{
	return ty == TOK_TYPE_CONTROL || ty == TOK_TYPE_USER_DEFINED;
}

/* Output id of token i: the tokens below keep keep their ids, the added
 * ones past it follow them in order; -1 = left out. */
static int32_t out_id(const struct tok *t, int32_t i, int keep)
{
	if (i < keep)
		return i;
	if (!is_added_type(tok_token_type(t, i)))
		return -1;
	int32_t k = keep;
	for (int32_t j = keep; j < i; j++)
		k += is_added_type(tok_token_type(t, j));
	return k;
}

enum { J_SPLIT = 1, J_NFC = 2, J_PAIR_MERGES = 4, J_IGNORE_MERGES = 8, J_CONFIG = 16 };

/* t as a tokenizer.json: its normal tokens below keep, its added tokens
 * after them, the merges among those; flags pick the variant. */
static void put_tok_json(const char *name, const struct tok *t, int keep, int flags)
{
	FILE *f = open_seed("fuzz_tokenizer_json", name);
	size_t n;
	fputs("{\"version\":\"1.0\",\"added_tokens\":[", f);
	bool first = true;
	for (int32_t i = 0; i < tok_n_vocab(t); i++) {
		if (!is_added_type(tok_token_type(t, i)))
			continue;
		const char *s = tok_text(t, i, &n);
		fprintf(f, "%s{\"id\":%d,\"content\":", first ? "" : ",", out_id(t, i, keep));
		put_json_str(f, s, n);
		fprintf(f, ",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,"
			   "\"normalized\":false,\"special\":%s}",
			tok_token_type(t, i) == TOK_TYPE_CONTROL ? "true" : "false");
		first = false;
	}
	fprintf(f, "],\"normalizer\":%s,\"pre_tokenizer\":", flags & J_NFC ? "{\"type\":\"NFC\"}"
									  : "null");
	if (flags & J_SPLIT) {
		fputs("{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":"
		      "{\"Regex\":", f);
		put_json_str(f, tok_re_qwen2, strlen(tok_re_qwen2));
		fputs("},\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\","
		      "\"add_prefix_space\":false,\"trim_offsets\":false,\"use_regex\":false}]}", f);
	} else {
		fputs("{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true}", f);
	}
	fprintf(f, ",\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,"
		   "\"continuing_subword_prefix\":\"\",\"end_of_word_suffix\":\"\","
		   "\"fuse_unk\":false,\"byte_fallback\":false,\"ignore_merges\":%s,\"vocab\":{",
		flags & J_IGNORE_MERGES ? "true" : "false");
	first = true;
	for (int32_t i = 0; i < keep && i < tok_n_vocab(t); i++) {
		if (is_added_type(tok_token_type(t, i)))
			continue;
		fputs(first ? "" : ",", f);
		const char *s = tok_text(t, i, &n);
		put_json_str(f, s, n);
		fprintf(f, ":%d", i);
		first = false;
	}
	fputs("},\"merges\":[", f);
	first = true;
	for (uint32_t m = 0; m < t->n_merges; m++) {
		int32_t a = t->merges[m][0], b = t->merges[m][1];
		size_t la, lb;
		const char *sa = tok_text(t, a, &la), *sb = tok_text(t, b, &lb);
		char buf[1024];
		if (a >= keep || b >= keep || la + lb > sizeof(buf))
			continue;
		memcpy(buf, sa, la);
		memcpy(buf + la, sb, lb);
		int32_t c = tok_find(t, buf, la + lb);
		if (c < 0 || c >= keep)
			continue;
		fputs(first ? "" : ",", f);
		first = false;
		if (flags & J_PAIR_MERGES) {
			fputc('[', f);
			put_json_str(f, sa, la);
			fputc(',', f);
			put_json_str(f, sb, lb);
			fputc(']', f);
		} else {
			memcpy(buf + la, " ", 1);
			memcpy(buf + la + 1, sb, lb);
			put_json_str(f, buf, la + 1 + lb);
		}
	}
	fputs("]}}", f);
	if (flags & J_CONFIG) { /* the tokenizer_config.json after a NUL */
		fputc(0, f);
		fputs("{\"add_bos_token\":false,\"bos_token\":null,\"eos_token\":"
		      "{\"content\":\"<|im_end|>\",\"special\":true},\"pad_token\":"
		      "\"<|endoftext|>\",\"chat_template\":\"{% for m in messages %}"
		      "<|im_start|>{{ m.role }}\\n{{ m.content }}<|im_end|>\\n{% endfor %}\"}", f);
	}
	fclose(f);
}

/* The gen-tiny vocabulary (320 tokens) as a GGUF tokenizer, loaded back. */
static struct tok *tiny_tok(struct fm_error *err)
{
	struct tiny_vocab *v = tiny_vocab_new(320, 1);
	if (!v)
		return NULL;
	char path[4096];
	snprintf(path, sizeof(path), "%s/tiny-tokenizer.gguf", out_dir);
	struct gguf_writer *w = gguf_writer_new(32);
	int rc = gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
	rc = rc ? rc : gguf_writer_set_str(w, "tokenizer.ggml.pre", "qwen2");
	rc = rc ? rc : gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens",
					       (const char *const *)v->tokens, NULL,
					       (uint64_t)v->n_tokens);
	rc = rc ? rc : gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32,
					   v->types, (uint64_t)v->n_tokens);
	rc = rc ? rc : gguf_writer_set_arr_str(w, "tokenizer.ggml.merges",
					       (const char *const *)v->merges, NULL,
					       (uint64_t)v->n_merges);
	rc = rc ? rc : gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)v->eos_id);
	rc = rc ? rc : gguf_writer_open(w, path, err);
	rc = rc ? rc : gguf_writer_finish(w, err);
	gguf_writer_free(w);
	tiny_vocab_free(v);
	struct gguf_file *f = rc ? NULL : gguf_open(path, err);
	struct tok *t = f ? tok_load_gguf(f, err) : NULL;
	gguf_close(f);
	return t;
}

static void tokenizer_json_seeds(const struct tok *tiny, const char *model)
{
	put_tok_json("tiny-split-nfc", tiny, tok_n_vocab(tiny), J_SPLIT | J_NFC);
	put_tok_json("tiny-bytelevel", tiny, tok_n_vocab(tiny), J_PAIR_MERGES);
	put_tok_json("tiny-ignore-merges-config", tiny, tok_n_vocab(tiny),
		     J_SPLIT | J_IGNORE_MERGES | J_CONFIG);
	struct fm_error err = { 0 };
	struct gguf_file *f = model ? gguf_open(model, &err) : NULL;
	struct tok *t = f ? tok_load_gguf(f, &err) : NULL;
	gguf_close(f);
	if (model && !t) {
		fprintf(stderr, "gen_seeds: %s: %s (no seeds from it)\n", model, err.msg);
		return;
	}
	if (t) {
		put_tok_json("model512-split-nfc", t, 512, J_SPLIT | J_NFC | J_PAIR_MERGES);
		put_tok_json("model512-config", t, 512, J_SPLIT | J_NFC | J_CONFIG);
	}
	tok_free(t);
}

/* ---- GGUF ---- */

static void put_file_seed(const char *target, const char *name, const char *path)
{
	FILE *f = fopen(path, "rb");
	static char buf[1 << 20];
	size_t n = f ? fread(buf, 1, sizeof(buf), f) : 0;
	if (f)
		fclose(f);
	if (n)
		put_seed(target, name, buf, n);
}

static void gguf_seeds(const struct tok *tiny)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/seed.gguf", out_dir);
	struct fm_error err = { 0 };
	struct gguf_writer *w = gguf_writer_new(32);
	const char *strs[] = { "a", "", "ccc" };
	const int16_t i16[] = { -1, 2, 3 };
	const float f32[] = { 0.5f, -2.0f };
	const uint64_t ne_a[2] = { 32, 2 }, ne_b[1] = { 5 }, ne_c[3] = { 4, 1, 2 };
	static uint8_t data[2 * 34];
	gguf_writer_set_str(w, "general.architecture", "qwen3moe");
	gguf_writer_set_u32(w, "qwen3moe.block_count", 1);
	gguf_writer_set_f32(w, "qwen3moe.rope.freq_base", 1e6f);
	gguf_writer_set_bool(w, "x.bool", true);
	gguf_writer_set_scalar(w, "x.u8", GGUF_TYPE_UINT8, &(uint8_t){ 7 });
	gguf_writer_set_scalar(w, "x.i64", GGUF_TYPE_INT64, &(int64_t){ -5 });
	gguf_writer_set_scalar(w, "x.f64", GGUF_TYPE_FLOAT64, &(double){ 0.25 });
	gguf_writer_set_arr(w, "x.i16", GGUF_TYPE_INT16, i16, 3);
	gguf_writer_set_arr(w, "x.f32", GGUF_TYPE_FLOAT32, f32, 2);
	gguf_writer_set_arr_str(w, "x.strs", strs, NULL, 3);
	gguf_writer_add_tensor(w, "blk.0.ffn_up_exps.weight", GGML_TYPE_Q8_0, 2, ne_a);
	gguf_writer_add_tensor(w, "blk.0.attn_norm.weight", GGML_TYPE_F32, 1, ne_b);
	gguf_writer_add_tensor(w, "output_norm.weight", GGML_TYPE_F16, 3, ne_c);
	int rc = gguf_writer_open(w, path, &err);
	rc = rc ? rc : gguf_writer_write_tensor(w, 0, data, 2 * 34, &err);
	rc = rc ? rc : gguf_writer_write_tensor(w, 1, data, 20, &err);
	rc = rc ? rc : gguf_writer_write_tensor(w, 2, data, 16, &err);
	rc = rc ? rc : gguf_writer_finish(w, &err);
	gguf_writer_free(w);
	if (rc)
		fprintf(stderr, "gen_seeds: seed.gguf: %s\n", err.msg);
	else
		put_file_seed("fuzz_gguf", "keys-tensors", path);
	remove(path);
	snprintf(path, sizeof(path), "%s/tiny-tokenizer.gguf", out_dir);
	if (tiny) {
		put_file_seed("fuzz_gguf", "tokenizer", path);
		put_file_seed("fuzz_tokenizer_gguf", "tiny", path);
	}
	remove(path);
}

/* The tiny tokenizer with every optional key and a token_embd.weight. */
static void tok_gguf_seed(const struct tok *tiny)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/tok-full.gguf", out_dir);
	struct fm_error err = { 0 };
	struct gguf_writer *w = gguf_writer_new(32);
	const uint64_t ne[2] = { 1, (uint64_t)tok_n_vocab(tiny) };
	static float rows[1 << 12];
	int rc = tok_write_gguf(tiny, w);
	rc = rc ? rc : gguf_writer_set_str(w, "tokenizer.ggml.pre", "qwen35");
	rc = rc ? rc : gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
	rc = rc ? rc : gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", 2);
	rc = rc ? rc : gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true);
	rc = rc ? rc : gguf_writer_set_str(w, "tokenizer.chat_template",
					   "{% for m in messages %}<|im_start|>{{ m.role }}\n"
					   "{{ m.content }}<|im_end|>\n{% endfor %}");
	if (!rc && gguf_writer_add_tensor(w, "token_embd.weight", GGML_TYPE_F32, 2, ne) < 0)
		rc = FM_EINVAL;
	rc = rc ? rc : gguf_writer_open(w, path, &err);
	rc = rc ? rc : gguf_writer_write_tensor(w, 0, rows, ne[1] * sizeof(float), &err);
	rc = rc ? rc : gguf_writer_finish(w, &err);
	gguf_writer_free(w);
	if (rc)
		fprintf(stderr, "gen_seeds: tok-full.gguf: %s\n", err.msg);
	else
		put_file_seed("fuzz_tokenizer_gguf", "tiny-full", path);
	remove(path);
}

/* ---- safetensors ---- */

static void put_st(const char *name, const char *header, size_t data_bytes)
{
	uint8_t buf[1024];
	size_t n = strlen(header);
	for (int i = 0; i < 8; i++)
		buf[i] = (uint8_t)((uint64_t)n >> (8 * i));
	memcpy(buf + 8, header, n);
	for (size_t i = 0; i < data_bytes; i++)
		buf[8 + n + i] = (uint8_t)(i * 37);
	put_seed("fuzz_safetensors", name, buf, 8 + n + data_bytes);
}

static void safetensors_seeds(void)
{
	put_st("three", "{\"__metadata__\":{\"format\":\"pt\"},"
			"\"b\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[8,32]},"
			"\"a\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[0,8]},"
			"\"c\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[32,34]}}  ", 34);
	put_st("layers", "{\"model.layers.0.mlp.experts.0.up_proj.weight\":{\"dtype\":\"BF16\","
			 "\"shape\":[2,2],\"data_offsets\":[0,8]},\"model.norm.weight\":{\"dtype\":"
			 "\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16);
	put_st("empty-tensor", "{\"e\":{\"dtype\":\"F32\",\"shape\":[0,4],\"data_offsets\":[0,0]},"
			       "\"i\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8);
}

/* ---- texts for tok_encode (byte 0 = parse_special) ---- */

static void text_seeds(void)
{
	static const char *const texts[] = {
		"\1The Fulton County Grand Jury said Friday an investigation of Atlanta's recent "
		"primary election produced \"no evidence\" that any irregularities took place.",
		"\1<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n"
		"<|im_start|>assistant\n<think>\n\n</think>\n\n",
		"\0<|im_end|> is text here <|endoftext|>",
		"\1 12345 3.14159 -42 1,000,000\n\n\t\t  \r\n",
		"\1caf\xc3\xa9 cafe\xcc\x81 \xe1\x84\x80\xe1\x85\xa1 \xef\xac\x81 \xe2\x84\xab",
		"\1\xff\xfe\x80 ok \xed\xa0\x80 \xf0\x9f\x98\x80 \xf0\x9f\x98 \xc0\xaf",
		"\1I'm you'RE they'll IT'S don't",
		"\1\xe4\xb8\x96\xe7\x95\x8c\xe4\xbd\xa0\xe5\xa5\xbd \xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2"
		"\xd0\xb5\xd1\x82 \xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7",
	};
	char name[16];
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		snprintf(name, sizeof(name), "text%zu", i);
		put_seed("fuzz_tokenizer", name, texts[i], 1 + strlen(texts[i] + 1));
	}
}

/* ---- config.json ---- */

static void config_seeds(void)
{
	static const char qwen3_30b[] =
		"{\n  \"architectures\": [\"Qwen3MoeForCausalLM\"],\n"
		"  \"attention_bias\": false,\n  \"attention_dropout\": 0.0,\n"
		"  \"bos_token_id\": 151643,\n  \"decoder_sparse_step\": 1,\n"
		"  \"eos_token_id\": 151645,\n  \"head_dim\": 128,\n  \"hidden_act\": \"silu\",\n"
		"  \"hidden_size\": 2048,\n  \"initializer_range\": 0.02,\n"
		"  \"intermediate_size\": 6144,\n  \"max_position_embeddings\": 40960,\n"
		"  \"max_window_layers\": 48,\n  \"mlp_only_layers\": [],\n"
		"  \"model_type\": \"qwen3_moe\",\n  \"moe_intermediate_size\": 768,\n"
		"  \"norm_topk_prob\": true,\n  \"num_attention_heads\": 32,\n"
		"  \"num_experts\": 128,\n  \"num_experts_per_tok\": 8,\n"
		"  \"num_hidden_layers\": 48,\n  \"num_key_value_heads\": 4,\n"
		"  \"output_router_logits\": false,\n  \"rms_norm_eps\": 1e-06,\n"
		"  \"rope_scaling\": null,\n  \"rope_theta\": 1000000.0,\n"
		"  \"router_aux_loss_coef\": 0.001,\n  \"sliding_window\": null,\n"
		"  \"tie_word_embeddings\": false,\n  \"torch_dtype\": \"bfloat16\",\n"
		"  \"transformers_version\": \"4.51.0\",\n  \"use_cache\": true,\n"
		"  \"use_sliding_window\": false,\n  \"vocab_size\": 151936\n}\n";
	static const char tiny[] =
		"{\"architectures\":[\"Qwen3MoeForCausalLM\"],\"model_type\":\"qwen3_moe\","
		"\"hidden_size\":256,\"intermediate_size\":512,\"moe_intermediate_size\":128,"
		"\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
		"\"num_experts\":8,\"num_experts_per_tok\":2,\"vocab_size\":151936,"
		"\"max_position_embeddings\":512,\"rope_theta\":1e6,\"rms_norm_eps\":1e-6,"
		"\"tie_word_embeddings\":true,\"norm_topk_prob\":false,\"bos_token_id\":null}";
	static const char other_arch[] =
		"{\"architectures\":[\"Qwen2MoeForCausalLM\"],\"model_type\":\"qwen2_moe\","
		"\"rope_scaling\":{\"type\":\"yarn\",\"factor\":4.0},\"hidden_act\":\"gelu\"}";
	static const char bad_values[] =
		"{\"architectures\":[\"Qwen3MoeForCausalLM\"],\"hidden_size\":-1,"
		"\"num_attention_heads\":3,\"num_key_value_heads\":2,\"head_dim\":7,"
		"\"num_experts\":2,\"num_experts_per_tok\":4,\"rope_theta\":\"big\"}";
	/* save_pretrained's config.json of tiny Qwen3-Next (transformers 4.57.6)
	 * and Qwen3.5-MoE (5.25.0: text_config, rope_parameters) models */
	static const char qwen3_next[] =
		"{\"architectures\":[\"Qwen3NextForCausalLM\"],\"attention_bias\":false,"
		"\"attention_dropout\":0.0,"
		"\"decoder_sparse_step\":1,\"head_dim\":64,\"hidden_act\":\"silu\",\"hidden_size\":256,"
		"\"initializer_range\":0.02,\"intermediate_size\":128,\"layer_types\":[\"linear_attention\","
		"\"linear_attention\",\"linear_attention\",\"full_attention\"],\"linear_conv_kernel_dim\":4,"
		"\"linear_key_head_dim\":32,\"linear_num_key_heads\":2,\"linear_num_value_heads\":4,"
		"\"linear_value_head_dim\":32,\"max_position_embeddings\":32768,\"mlp_only_layers\":[],"
		"\"model_type\":\"qwen3_next\",\"moe_intermediate_size\":64,\"norm_topk_prob\":true,"
		"\"num_attention_heads\":4,\"num_experts\":8,\"num_experts_per_tok\":2,\"num_hidden_layers\":4,"
		"\"num_key_value_heads\":2,\"output_router_logits\":false,\"partial_rotary_factor\":0.25,"
		"\"rms_norm_eps\":1e-06,\"rope_scaling\":null,\"rope_theta\":10000.0,"
		"\"router_aux_loss_coef\":0.001,"
		"\"shared_expert_intermediate_size\":64,\"tie_word_embeddings\":false,"
		"\"transformers_version\":\"4.57.6\","
		"\"use_cache\":true,\"vocab_size\":151936}";
	static const char qwen3_5_moe[] =
		"{\"architectures\":[\"Qwen3_5MoeForConditionalGeneration\"],\"image_token_id\":248056,"
		"\"model_type\":\"qwen3_5_moe\",\"text_config\":{\"attention_bias\":false,"
		"\"attention_dropout\":0.0,"
		"\"bos_token_id\":null,\"eos_token_id\":null,\"head_dim\":64,\"hidden_act\":\"silu\","
		"\"hidden_size\":256,\"initializer_range\":0.02,\"layer_types\":[\"linear_attention\","
		"\"linear_attention\",\"linear_attention\",\"full_attention\"],\"linear_conv_kernel_dim\":4,"
		"\"linear_key_head_dim\":32,\"linear_num_key_heads\":2,\"linear_num_value_heads\":4,"
		"\"linear_value_head_dim\":32,\"max_position_embeddings\":32768,"
		"\"model_type\":\"qwen3_5_moe_text\","
		"\"moe_intermediate_size\":64,\"num_attention_heads\":4,\"num_experts\":8,"
		"\"num_experts_per_tok\":2,"
		"\"num_hidden_layers\":4,\"num_key_value_heads\":2,\"output_router_logits\":false,"
		"\"pad_token_id\":null,\"rms_norm_eps\":1e-06,"
		"\"rope_parameters\":{\"partial_rotary_factor\":0.25,"
		"\"rope_theta\":10000.0,\"rope_type\":\"default\"},\"router_aux_loss_coef\":0.001,"
		"\"shared_expert_intermediate_size\":64,\"tie_word_embeddings\":false,\"use_cache\":true,"
		"\"vocab_size\":151936},\"tie_word_embeddings\":false,\"transformers_version\":\"5.25.0\","
		"\"video_token_id\":248057,\"vision_config\":{\"depth\":1,\"hidden_act\":\"gelu_pytorch_tanh\","
		"\"hidden_size\":32,\"in_channels\":3,\"initializer_range\":0.02,\"intermediate_size\":64,"
		"\"model_type\":\"qwen3_5_moe_vision\",\"num_heads\":2,\"num_position_embeddings\":2304,"
		"\"out_hidden_size\":256,\"patch_size\":16,\"rope_parameters\":{\"rope_theta\":10000.0,"
		"\"rope_type\":\"axial\"},\"spatial_merge_size\":2,\"temporal_patch_size\":2},"
		"\"vision_end_token_id\":248054,"
		"\"vision_start_token_id\":248053}";
	put_seed("fuzz_config", "qwen3-next", qwen3_next, strlen(qwen3_next));
	put_seed("fuzz_config", "qwen3.5-moe", qwen3_5_moe, strlen(qwen3_5_moe));
	put_seed("fuzz_config", "qwen3-30b-a3b", qwen3_30b, strlen(qwen3_30b));
	put_seed("fuzz_config", "tiny", tiny, strlen(tiny));
	put_seed("fuzz_config", "other-arch", other_arch, strlen(other_arch));
	put_seed("fuzz_config", "bad-values", bad_values, strlen(bad_values));
}

/* ---- chat output: byte 0 the parser's flags, byte 1 the chunking seed ---- */

static void chat_seeds(void)
{
	static const char *const outs[] = {
		"\x02\x07<think>\nLet me think.\n</think>\n\nSure.\n<tool_call>\n{\"name\": "
		"\"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": [1, 2.5]}}\n"
		"</tool_call>",
		"\x07\x05Need it.\n</think>\n\n<tool_call>\n<function=get_weather>\n"
		"<parameter=city>\nSan Francisco\n</parameter>\n<parameter=days>\n3\n</parameter>\n"
		"</function>\n</tool_call>",
		"\x02\x03Hi <tool_call>{\"name\": \"f\", \"arguments\": [1]}</tool_call> <tool_call>{",
		"\x01\x09reasoning </thi </think> answer <think>",
	};
	char name[16];
	for (size_t i = 0; i < sizeof(outs) / sizeof(outs[0]); i++) {
		snprintf(name, sizeof(name), "out%zu", i);
		put_seed("fuzz_chat_parser", name, outs[i], strlen(outs[i]));
	}
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: gen_seeds OUT_DIR [MODEL.gguf]\n");
		return 2;
	}
	out_dir = argv[1];
	if (mkdir(out_dir, 0755) && errno != EEXIST) {
		perror(out_dir);
		return 1;
	}
	struct fm_error err = { 0 };
	struct tok *tiny = tiny_tok(&err);
	if (!tiny)
		fprintf(stderr, "gen_seeds: the gen-tiny tokenizer: %s\n", err.msg);
	gguf_seeds(tiny);
	safetensors_seeds();
	text_seeds();
	config_seeds();
	chat_seeds();
	if (tiny) {
		tok_gguf_seed(tiny);
		tokenizer_json_seeds(tiny, argc > 2 ? argv[2] : NULL);
	}
	tok_free(tiny);
	return tiny ? 0 : 1;
}
