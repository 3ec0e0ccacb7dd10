"""test_tools.py: the tool-definition round trip through flashmoe serve
(issue 18), run by tests/e2e_server.sh against a running server.

1. Template bytes: the tool conversations of tests/chat/render_jinja.py
   (rendered there by the real Qwen3 / Qwen3.5 Jinja templates under jinja2,
   Debian's python3-jinja2, with Debian's python3) for the server's template
   go to POST /apply-template as an OpenAI client sends them (tool_calls with
   arguments as JSON strings, content null, reasoning_content, tools,
   chat_template_kwargs.enable_thinking). The prompt must be the Jinja text
   byte for byte; where the template raises, a 400 error.
2. The official openai client sends tool requests (tools, tool_choice, a
   history with a call and its result), plain and streamed, at temperature 0:
   both well formed and the same text; with a template whose prompt opens
   <think> (qwen35) the text arrives as reasoning_content in both.
The parser itself on fixed texts, whole and split at every byte, is
tests/test_chat_parse.c; the page's rendering of streamed calls is
tests/server/test_page.py.
"""
import json
import os
import subprocess
import sys
import tempfile

from common import client, model_id, post

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def jinja_cases():
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "cases.json")
        r = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tests/chat/render_jinja.py"), out],
                           capture_output=True, text=True)
        assert r.returncode == 0, "render_jinja.py (needs python3-jinja2): " + r.stderr[-500:]
        return json.load(open(out, encoding="utf-8"))


def openai_messages(messages):
    out = []
    for m in messages:
        o = {k: v for k, v in m.items() if k != "tool_calls"}
        if "tool_calls" in m:
            o["tool_calls"] = [{"id": c["id"], "type": "function",
                                "function": {"name": c["name"], "arguments": c["arguments"]}}
                               for c in m["tool_calls"]]
        out.append(o)
    return out


def server_template():
    r = post("/apply-template", {"messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200, r.text
    return "qwen35" if r.json()["prompt"].endswith("<think>\n") else "qwen3"


def test_template_bytes(tmpl):
    # the server reads OpenAI's "developer" role as "system"; the templates
    # know only these four
    roles = {"system", "user", "assistant", "tool"}
    cases = [c for c in jinja_cases() if c["tmpl"] == tmpl and c["gen"]
             and all(m["role"] in roles for m in c["messages"])]
    assert len(cases) >= 20, len(cases)
    bad = []
    for c in cases:
        body = {"model": "x", "messages": openai_messages(c["messages"]),
                "chat_template_kwargs": {"enable_thinking": c["think"]}}
        if c["tools"] is not None:
            body["tools"] = json.loads(c["tools"])
        r = post("/apply-template", body)
        if c.get("error"):
            if r.status_code != 400 or r.json()["error"]["type"] != "invalid_request_error":
                bad.append((c["name"], c["think"], "want 400", r.status_code, r.text[:200]))
        elif r.status_code != 200 or r.json()["prompt"] != c["expected"]:
            got = r.json().get("prompt", r.text) if r.status_code == 200 else r.text
            i = next((k for k in range(min(len(got), len(c["expected"])))
                      if got[k] != c["expected"][k]), min(len(got), len(c["expected"])))
            bad.append((c["name"], c["think"], r.status_code, "differs at", i,
                        repr(c["expected"][max(0, i - 30):i + 30]), repr(got[max(0, i - 30):i + 30])))
    for b in bad:
        print("  template bytes:", *b)
    assert not bad, f"{len(bad)} of {len(cases)} cases differ"
    print(f"ok   template bytes: {len(cases)} {tmpl} tool conversations as the Jinja template renders "
          f"them ({sum(1 for c in cases if c.get('error'))} refused where it raises)")


TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]
HISTORY = [
    {"role": "user", "content": "What's the weather in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [{
        "id": "call_1", "type": "function",
        "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 21}"},
]


def test_client(tmpl):
    cl = client()
    model = model_id()
    kw = dict(model=model, messages=HISTORY, tools=TOOLS, tool_choice="auto", max_tokens=12,
              temperature=0, seed=7)
    plain = cl.chat.completions.create(**kw)
    ch = plain.choices[0]
    assert ch.finish_reason in ("stop", "length", "tool_calls"), ch.finish_reason
    assert plain.usage.completion_tokens > 0 and plain.usage.prompt_tokens > 100, plain.usage
    msg = ch.message
    reasoning = getattr(msg, "reasoning_content", None) or (msg.model_extra or {}).get("reasoning_content")
    text = (msg.content or "", reasoning or "")
    parts, calls, finish = ["", ""], [], None
    for chunk in cl.chat.completions.create(stream=True, **kw):
        if not chunk.choices:
            continue
        d = chunk.choices[0].delta
        parts[0] += d.content or ""
        parts[1] += (d.model_extra or {}).get("reasoning_content") or ""
        calls += d.tool_calls or []
        finish = chunk.choices[0].finish_reason or finish
    assert (parts[0], parts[1]) == text, ("streamed", parts, "plain", text)
    assert finish == ch.finish_reason, (finish, ch.finish_reason)
    assert bool(calls) == bool(msg.tool_calls), (calls, msg.tool_calls)
    if tmpl == "qwen35":  # the prompt opened <think>: the tiny model's text is reasoning
        assert text[1] and not text[0], text
    else:
        assert text[0], text
    print(f"ok   openai client: tools + a call in the history, plain and streamed alike "
          f"({'reasoning' if tmpl == 'qwen35' else 'content'} {len(text[0] or text[1])} chars, "
          f"finish {finish})")


def main():
    tmpl = server_template()
    failed = 0
    for t in (test_template_bytes, test_client):
        try:
            t(tmpl)
        except AssertionError as e:
            failed += 1
            print(f"FAIL {t.__name__}: {str(e)[:1500]}")
    print(f"{2 - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
