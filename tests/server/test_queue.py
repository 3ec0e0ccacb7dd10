"""A full queue: the server runs with -np 1 --queue 1, so of several requests
at once at most two are taken (one generating, one waiting); the others get
503 with OpenAI's error JSON and Retry-After, and the taken ones complete."""
import threading

from common import URL, check_error, headers, run, wait_idle

import requests


def test_queue_full():
    body = {"messages": [{"role": "user", "content": "Tell me a long story."}],
            "max_tokens": 300, "temperature": 1.0}
    out = [None] * 6

    def go(i):
        out[i] = requests.post(URL + "/v1/chat/completions", json=body, headers=headers(), timeout=300)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(out))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.status_code for r in out)
    assert set(codes) <= {200, 503} and 1 <= codes.count(200) <= 2, codes
    for r in out:
        if r.status_code == 503:
            check_error(r, 503)
            assert r.headers.get("Retry-After") == "1"
        else:
            assert r.json()["choices"][0]["finish_reason"] in ("stop", "length")
    m = wait_idle()
    assert m["flashmoe_requests_rejected_total"] == codes.count(503), m


run([test_queue_full])
