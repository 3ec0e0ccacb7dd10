"""The OpenAI API of `flashmoe serve` through the official openai client:
models, chat and completions (plain and streamed), usage, stop strings, seeds,
max_tokens, prefix reuse, client disconnects, /health and /metrics, and the
error answers (bad JSON, bad fields, unknown model and route, oversized body,
wrong or missing key). The server runs with --api-key and --max-body 64K."""
import json
import socket
import time

import openai
import requests

from common import KEY, URL, check_error, client, headers, metrics, model_id, post, run, wait_idle

MSGS = [{"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Tell me about the old house by the river."}]


def chat(**kw):
    kw.setdefault("messages", MSGS)
    return client().chat.completions.create(model=model_id(), **kw)


def stream_chat(**kw):
    """Streamed chat: (text, finish_reason, usage, chunks)."""
    text, finish, usage, chunks = "", None, None, []
    for ch in chat(stream=True, **kw):
        chunks.append(ch)
        assert ch.object == "chat.completion.chunk"
        if ch.usage:
            usage = ch.usage
        for c in ch.choices:
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    return text, finish, usage, chunks


def completion(**kw):
    return client().completions.create(model=model_id(), **kw)


def test_models():
    ms = client().models.list().data
    assert len(ms) == 1 and ms[0].id and ms[0].object == "model", ms


def test_chat():
    r = chat(max_tokens=16, temperature=0)
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
    c = r.choices[0]
    assert c.message.role == "assistant" and isinstance(c.message.content, str)
    assert c.finish_reason in ("stop", "length"), c.finish_reason
    u = r.usage
    assert u.prompt_tokens > 10 and 1 <= u.completion_tokens <= 16, u
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens, u
    if c.finish_reason == "length":
        assert u.completion_tokens == 16, u


def test_chat_stream_matches_plain():
    plain = chat(max_tokens=24, temperature=0)
    text, finish, usage, chunks = stream_chat(max_tokens=24, temperature=0,
                                              stream_options={"include_usage": True})
    assert chunks[0].choices[0].delta.role == "assistant"
    assert text == plain.choices[0].message.content, (text, plain.choices[0].message.content)
    assert finish == plain.choices[0].finish_reason
    assert usage is not None and usage.completion_tokens == plain.usage.completion_tokens, usage
    assert usage.prompt_tokens == plain.usage.prompt_tokens
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    # without include_usage: no usage chunk
    _, _, usage2, chunks2 = stream_chat(max_tokens=4, temperature=0)
    assert usage2 is None and all(ch.usage is None for ch in chunks2)


def test_sse_wire_format():
    """The raw stream: data: lines, each JSON, ending with data: [DONE]."""
    r = requests.post(URL + "/v1/chat/completions", headers=headers(), stream=True, timeout=60,
                      json={"messages": MSGS, "max_tokens": 5, "stream": True})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
    events = [line for line in r.iter_lines(decode_unicode=True) if line]
    assert events[-1] == "data: [DONE]", events[-1]
    for e in events[:-1]:
        assert e.startswith("data: "), e
        json.loads(e[6:])


def test_completion_plain_and_stream():
    p = "The man walked into the"
    r = completion(prompt=p, max_tokens=20, temperature=0)
    assert r.object == "text_completion" and r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.completion_tokens <= 20 and r.usage.prompt_tokens >= 4
    text = "".join(ch.choices[0].text for ch in
                   completion(prompt=p, max_tokens=20, temperature=0, stream=True) if ch.choices)
    assert text == r.choices[0].text, (text, r.choices[0].text)
    # a prompt of token ids
    ids = completion(prompt=[785, 883, 14858], max_tokens=4, temperature=0)
    assert ids.usage.prompt_tokens == 3


def test_stop_strings():
    p = "It was a long day, and the"
    full = completion(prompt=p, max_tokens=40, temperature=0).choices[0].text
    assert len(full) > 12, full
    # a stop string from the middle of the text (most likely across tokens)
    k = len(full) // 2
    stop = full[k:k + 4]
    want = full[:full.index(stop)]
    r = completion(prompt=p, max_tokens=40, temperature=0, stop=stop)
    assert r.choices[0].text == want and r.choices[0].finish_reason == "stop", (r.choices[0], stop)
    text = "".join(ch.choices[0].text for ch in
                   completion(prompt=p, max_tokens=40, temperature=0, stop=[stop, "zzzz"],
                              stream=True) if ch.choices)
    assert text == want, (text, want)
    # a stop string that never appears changes nothing
    r = completion(prompt=p, max_tokens=40, temperature=0, stop=["\u2603\u2603"])
    assert r.choices[0].text == full


def test_seed_reproducible():
    a = chat(max_tokens=32, temperature=1.0, seed=42).choices[0].message.content
    b = chat(max_tokens=32, temperature=1.0, seed=42).choices[0].message.content
    c = chat(max_tokens=32, temperature=1.0, seed=4242).choices[0].message.content
    assert a == b, (a, b)
    assert a != c, (a, c)


def test_max_tokens_capped_by_context():
    r = chat(max_tokens=10 ** 9, temperature=0, stop=None)
    n_ctx = metrics()["flashmoe_slot_context_tokens"]
    assert r.usage.prompt_tokens + r.usage.completion_tokens <= n_ctx, r.usage
    r = client().chat.completions.create(model=model_id(), messages=MSGS, max_completion_tokens=3,
                                         temperature=0)
    assert r.usage.completion_tokens <= 3


def test_prompt_too_long():
    try:
        chat(messages=[{"role": "user", "content": "word " * 5000}], max_tokens=4)
    except openai.BadRequestError as e:
        assert "context" in str(e), e
    else:
        raise AssertionError("no error")


def test_follow_up_reuses_prefix():
    first = chat(max_tokens=12, temperature=0)
    msgs = MSGS + [{"role": "assistant", "content": first.choices[0].message.content},
                   {"role": "user", "content": "And then?"}]
    second = chat(messages=msgs, max_tokens=8, temperature=0)
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert cached >= first.usage.prompt_tokens - 1, (cached, first.usage)


def test_errors():
    check_error(post("/v1/chat/completions", '{"messages": [', raw=True), 400)
    check_error(post("/v1/chat/completions", "[1, 2]", raw=True), 400)
    check_error(post("/v1/chat/completions", {"messages": MSGS, "temperature": "hot"}), 400,
                "temperature")
    check_error(post("/v1/chat/completions", {"messages": MSGS, "max_tokens": 0}), 400, "max_tokens")
    check_error(post("/v1/chat/completions", {"messages": MSGS, "stop": 5}), 400, "stop")
    check_error(post("/v1/chat/completions", {"model": model_id()}), 400, "messages")
    check_error(post("/v1/chat/completions", {"messages": [{"role": "wizard", "content": "x"}]}),
                400, "messages")
    check_error(post("/v1/completions", {"max_tokens": 3}), 400, "prompt")
    check_error(post("/v1/completions", {"prompt": [1, -5]}), 400, "prompt")
    try:
        client().chat.completions.create(model="no-such-model", messages=MSGS)
    except openai.NotFoundError as e:
        assert e.status_code == 404
    else:
        raise AssertionError("unknown model accepted")
    check_error(requests.get(URL + "/v1/nothing", headers=headers(), timeout=10), 404)
    check_error(requests.get(URL + "/v1/chat/completions", headers=headers(), timeout=10), 405)
    # over --max-body 64K: announced by Content-Length, and sent chunked
    big = {"messages": [{"role": "user", "content": "x" * 100000}]}
    check_error(post("/v1/chat/completions", big), 413)
    chunks = (json.dumps(big)[i:i + 8192].encode() for i in range(0, 100100, 8192))
    check_error(requests.post(URL + "/v1/chat/completions", data=chunks, headers=headers(),
                              timeout=30), 413)


def test_api_key():
    assert KEY, "the server must run with --api-key"
    for key in ("wrong", KEY[:-1], KEY + "x", ""):
        try:
            client(key=key or "none").models.list()
        except openai.AuthenticationError as e:
            assert e.status_code == 401
        else:
            raise AssertionError("key %r accepted" % key)
    check_error(requests.get(URL + "/v1/models", timeout=10), 401)
    check_error(post("/v1/chat/completions", {"messages": MSGS}, key="nope"), 401)
    assert requests.get(URL + "/health", timeout=10).json() == {"status": "ok"}


def test_disconnect_frees_slot():
    before = metrics()
    with chat(stream=True, max_tokens=400, temperature=1.0) as s:
        for i, _ in enumerate(s):
            if i == 2:
                break
    # a non-streamed request whose client leaves: a raw socket, closed early
    host, port = URL.split("//")[1].split(":")
    body = json.dumps({"messages": MSGS, "max_tokens": 400, "temperature": 1.0})
    sock = socket.create_connection((host, int(port)))
    sock.sendall(("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  "Authorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s" % (KEY, len(body), body)).encode())
    time.sleep(0.3)
    sock.close()
    after = wait_idle()
    assert after["flashmoe_requests_canceled_total"] >= before["flashmoe_requests_canceled_total"] + 2, \
        (before["flashmoe_requests_canceled_total"], after["flashmoe_requests_canceled_total"])
    assert chat(max_tokens=2).choices[0].finish_reason in ("stop", "length")


def test_slow_client_does_not_stall_others():
    """A streaming client that never reads (a tiny receive buffer, soon full):
    the others' answers still come, and its slot keeps generating into its
    own buffer."""
    host, port = URL.split("//")[1].split(":")
    body = json.dumps({"messages": MSGS, "max_tokens": 400, "temperature": 1.0, "stream": True})
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    slow.connect((host, int(port)))
    slow.sendall(("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  "Authorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s" % (KEY, len(body), body)).encode())
    try:
        t0 = time.time()
        for _ in range(3):
            r = chat(max_tokens=24, temperature=0)
            assert r.choices[0].finish_reason in ("stop", "length")
        assert time.time() - t0 < 60, time.time() - t0
    finally:
        slow.close()
    wait_idle()


def test_metrics():
    m = metrics()
    for k in ("flashmoe_tokens_generated_total", "flashmoe_prompt_tokens_total",
              "flashmoe_expert_cache_hit_ratio", "flashmoe_expert_bytes_read_total",
              "flashmoe_queue_depth", "flashmoe_generation_tokens_per_second",
              'flashmoe_http_requests_total{route="chat_completions"}'):
        assert k in m, k
    assert m["flashmoe_tokens_generated_total"] > 0 and m["flashmoe_generation_tokens_per_second"] > 0
    assert 0 <= m["flashmoe_expert_cache_hit_ratio"] <= 1


run([test_models, test_chat, test_chat_stream_matches_plain, test_sse_wire_format,
     test_completion_plain_and_stream, test_stop_strings, test_seed_reproducible,
     test_max_tokens_capped_by_context, test_prompt_too_long, test_follow_up_reuses_prefix,
     test_errors, test_api_key, test_disconnect_frees_slot, test_slow_client_does_not_stall_others,
     test_metrics])
