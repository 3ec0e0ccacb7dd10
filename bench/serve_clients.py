"""Aggregate generation speed of a running `flashmoe serve` (or llama-server)
at several numbers of concurrent clients: each client asks /v1/completions
for --tokens tokens at temperature 1 (sampled, fixed seeds: random-weight
models repeat themselves greedily, see DESIGN.md) after a short prompt of its
own. Prints, per concurrency: tokens generated, wall time from the first
request to the last answer, aggregate tok/s, and (flashmoe only, from
/metrics) expert bytes read per generated token and the cache hit rate.
    python bench/serve_clients.py http://127.0.0.1:8080 --clients 1,2,4,8 --tokens 64 --rounds 3
Uses only the standard library."""
import argparse
import json
import threading
import time
import urllib.request

WORDS = "the river house stone field morning letter window garden evening".split()


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=3600) as r:
        return json.loads(r.read())


def metrics(base):
    try:
        with urllib.request.urlopen(base + "/metrics", timeout=30) as r:
            text = r.read().decode()
    except Exception:  # noqa: BLE001 (llama-server without --metrics)
        return {}
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def level(base, n, tokens, model):
    m0 = metrics(base)
    done = [0] * n

    def one(i):
        prompt = " ".join(WORDS[(i * 7 + k) % len(WORDS)] for k in range(8))
        r = post(base + "/v1/completions", {"model": model, "prompt": prompt, "max_tokens": tokens,
                                            "temperature": 1.0, "seed": 1000 + i})
        done[i] = r["usage"]["completion_tokens"]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.time() - t0
    m1 = metrics(base)
    gen = sum(done)
    row = {"clients": n, "tokens": gen, "wall_s": wall, "tok_s": gen / wall}
    if m1:
        d = {k: m1.get(k, 0) - m0.get(k, 0) for k in m1}
        row["read_mib_per_tok"] = d["flashmoe_expert_bytes_read_total"] / max(gen, 1) / 1048576
        look = d["flashmoe_expert_lookups_total"]
        row["hit"] = d["flashmoe_expert_cache_hits_total"] / look if look else 1.0
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--clients", default="1,2,4,8")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--warmup", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=1,
                    help="run the levels this many times (up, down, up...); print each, then the best")
    a = ap.parse_args()
    with urllib.request.urlopen(a.url + "/v1/models", timeout=30) as r:
        model = json.loads(r.read())["data"][0]["id"]
    post(a.url + "/v1/completions", {"model": model, "prompt": "warm up", "max_tokens": a.warmup,
                                     "temperature": 1.0, "seed": 1})
    levels = [int(x) for x in a.clients.split(",")]
    best = {}
    print("clients  tokens  wall_s   tok/s  MiB_read/tok  hit%")
    for k in range(a.rounds):
        # alternate the order so that a drift in the machine's load hits every level
        for n in levels if k % 2 == 0 else levels[::-1]:
            r = level(a.url, n, a.tokens, model)
            show(r)
            if n not in best or r["tok_s"] > best[n]["tok_s"]:
                best[n] = r
    if a.rounds > 1:
        print("best of %d rounds:" % a.rounds)
        for n in levels:
            show(best[n])


def show(r):
    print("%7d %7d %7.1f %7.2f %13s %5s" % (
        r["clients"], r["tokens"], r["wall_s"], r["tok_s"],
        "%.1f" % r["read_mib_per_tok"] if "read_mib_per_tok" in r else "-",
        "%.0f" % (100 * r["hit"]) if "hit" in r else "-"), flush=True)


main()
