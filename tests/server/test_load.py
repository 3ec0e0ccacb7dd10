"""64 clients at once against `flashmoe serve` (more than its slots): chat and
completions, streamed and not, a quarter of them leaving midway. Every answer
that completes must be well-formed; afterwards the server is idle (every slot
freed), answers again, and its counters add up. FM_LOAD_CLIENTS overrides 64."""
import os
import random
import threading

from common import client, metrics, model_id, run, wait_idle

N = int(os.environ.get("FM_LOAD_CLIENTS", "64"))
WORDS = "the river house stone field morning letter window garden evening".split()


def one(i, mid, results):
    rnd = random.Random(i)
    prompt = " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(3, 40)))
    n = rnd.randint(4, 40)
    kind = i % 4
    c = client(timeout=600)
    try:
        if kind == 0:  # streamed chat, to the end
            text, finish, usage, role = "", None, None, None
            for ch in c.chat.completions.create(model=mid, messages=[{"role": "user", "content": prompt}],
                                                max_tokens=n, stream=True, seed=i,
                                                stream_options={"include_usage": True}):
                assert ch.object == "chat.completion.chunk"
                usage = ch.usage or usage
                for x in ch.choices:
                    role = role or x.delta.role
                    text += x.delta.content or ""
                    finish = x.finish_reason or finish
            assert role == "assistant" and finish in ("stop", "length"), (role, finish)
            assert usage and 1 <= usage.completion_tokens <= n, usage
        elif kind == 1:  # plain chat
            r = c.chat.completions.create(model=mid, messages=[{"role": "user", "content": prompt}],
                                          max_tokens=n, temperature=0.8, seed=i)
            assert r.choices[0].finish_reason in ("stop", "length")
            assert isinstance(r.choices[0].message.content, str)
            assert 1 <= r.usage.completion_tokens <= n
            assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
        elif kind == 2:  # streamed, the client leaves after a few chunks
            with c.chat.completions.create(model=mid, messages=[{"role": "user", "content": prompt}],
                                           max_tokens=400, stream=True) as s:
                for k, _ in enumerate(s):
                    if k == 1 + i % 5:
                        break
            results[i] = "left"
            return
        else:  # plain completion
            r = c.completions.create(model=mid, prompt=prompt, max_tokens=n, seed=i)
            assert r.choices[0].finish_reason in ("stop", "length")
            assert 1 <= r.usage.completion_tokens <= n
        results[i] = "ok"
    except Exception as e:  # noqa: BLE001 (reported below)
        results[i] = "%s: %s" % (type(e).__name__, e)


def test_concurrent_clients():
    mid = model_id()
    before = metrics()
    results = [None] * N
    threads = [threading.Thread(target=one, args=(i, mid, results)) for i in range(N)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(900)
    bad = [(i, r) for i, r in enumerate(results) if r not in ("ok", "left")]
    assert not bad, bad[:8]
    after = wait_idle(60)
    done = after["flashmoe_requests_finished_total"] - before["flashmoe_requests_finished_total"]
    gone = after["flashmoe_requests_canceled_total"] - before["flashmoe_requests_canceled_total"]
    n_left = results.count("left")
    # a client that left after its answer was complete counts as finished
    assert done + gone == N and done >= N - n_left, (done, gone, n_left)
    assert after["flashmoe_requests_failed_total"] == before["flashmoe_requests_failed_total"]
    # the batch steps really batched (several slots per fm_eval_batch)
    steps = after["flashmoe_batch_steps_total"] - before["flashmoe_batch_steps_total"]
    toks = after["flashmoe_batch_tokens_total"] - before["flashmoe_batch_tokens_total"]
    assert toks > 1.5 * steps, (toks, steps)
    r = client().chat.completions.create(model=mid, messages=[{"role": "user", "content": "hello"}],
                                         max_tokens=3)
    assert r.choices[0].finish_reason in ("stop", "length")


run([test_concurrent_clients])
