"""Shared helpers of the server tests: the server's address and key come from
the environment (tests/e2e_server.sh starts the server and sets them)."""
import json
import os
import sys
import time
import traceback

import openai
import requests

URL = os.environ["FM_SERVER_URL"]          # http://127.0.0.1:PORT
KEY = os.environ.get("FM_SERVER_KEY", "")  # the server's --api-key, or ""


def client(key=None, **kw):
    return openai.OpenAI(base_url=URL + "/v1", api_key=key if key is not None else (KEY or "none"),
                         max_retries=0, timeout=kw.pop("timeout", 120), **kw)


def model_id():
    return client().models.list().data[0].id


def headers(key=None):
    k = KEY if key is None else key
    return {"Authorization": "Bearer " + k} if k else {}


def post(path, body, key=None, raw=False):
    data = body if raw else json.dumps(body)
    return requests.post(URL + path, data=data, headers=headers(key), timeout=120)


def metrics():
    """GET /metrics as {name{labels}: value}."""
    r = requests.get(URL + "/metrics", headers=headers(), timeout=30)
    assert r.status_code == 200, r.text
    out = {}
    for line in r.text.splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def check_error(r, status, param=None):
    """An OpenAI error body with the expected status."""
    assert r.status_code == status, (r.status_code, r.text)
    e = r.json()["error"]
    assert isinstance(e["message"], str) and e["message"], e
    assert isinstance(e["type"], str) and e["type"], e
    assert "param" in e and "code" in e, e
    if param is not None:
        assert e["param"] == param, e
    return e


def wait_idle(timeout=30.0):
    """Until no slot is busy and nothing is queued."""
    t = time.time() + timeout
    while time.time() < t:
        m = metrics()
        if m["flashmoe_slots_busy"] == 0 and m["flashmoe_queue_depth"] == 0:
            return m
        time.sleep(0.1)
    raise AssertionError("the server did not become idle: %s" % metrics())


def run(tests):
    """Run test functions; print one line each; exit 1 if any failed."""
    failed = 0
    for t in tests:
        t0 = time.time()
        try:
            t()
            print("ok   %s (%.1fs)" % (t.__name__, time.time() - t0), flush=True)
        except Exception:
            failed += 1
            print("FAIL %s" % t.__name__, flush=True)
            traceback.print_exc()
    print("%d of %d failed" % (failed, len(tests)))
    sys.exit(1 if failed else 0)
