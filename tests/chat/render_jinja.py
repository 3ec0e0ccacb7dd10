#!/usr/bin/env python3
"""render_jinja.py: the chat-template cases with tools, rendered by the real
Qwen3 and Qwen3.5 Jinja templates (tests/chat/qwen3.jinja: Qwen3's
tokenizer_config.json chat_template; tests/chat/qwen35.jinja: the Qwen3.5 MoE
checkpoints' chat_template) under jinja2, set up as transformers'
apply_chat_template sets it up (_compile_jinja_template: a sandboxed
environment with trim_blocks, lstrip_blocks and loopcontrols, tojson as
json.dumps(ensure_ascii=False), raise_exception). With --transformers PYTHON
(a python with transformers), every case is also rendered by
tokenizer.apply_chat_template itself and must give the same text, so the
set-up above is checked, not assumed.

usage: render_jinja.py OUT.json [--transformers PYTHON]
OUT.json: [{tmpl, tools (the JSON text a client sends, or null), messages
(content null allowed; tool_calls [{id, name, arguments: JSON text}]), gen,
think, expected (the text) or error (the template raised)}]

The messages go to the template as an OpenAI server passes them: the tool
call as {"id", "type": "function", "function": {"name", "arguments"}}, with
arguments as the client's JSON string for qwen3 (its template writes a
string as it is) and parsed into an object for qwen35 (its template iterates
arguments|items, so it needs one); both are also rendered from objects for
qwen3 where the string is already in json.dumps form (the same text).
"""
import json
import os
import subprocess
import sys

from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def raise_exception(message):
    raise ValueError(message)


def environment():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env


TOOLS_WEATHER = ('[{"type": "function", "function": {"name": "get_weather", "description": '
                 '"Get the current weather in a city", "parameters": {"type": "object", '
                 '"properties": {"city": {"type": "string", "description": "City name, e.g. '
                 'Paris"}, "days": {"type": "integer", "minimum": 1, "maximum": 14}}, '
                 '"required": ["city"]}}}]')
# compact, escapes, floats in Python's repr, key order kept, big ints, a
# surrogate pair, an escaped slash, control characters
TOOLS_ODD = ('[{"type":"function","function":{"name":"convert","description":"W\\u00e4hrung '
             '\\u00fcber \\u20ac \u2192 $ \\ud83d\\ude00\\n\\"quoted\\"\\t\\u0001 a\\/b",'
             '"parameters":{"type":"object","properties":{"z":{"type":"number","default":1.0,'
             '"examples":[0.1,1e-7,2.5e16,1E5,-0.0,123456789012345678,1e15,1e16,0.0001,'
             '0.00001,3.14159265358979,-12.5e-3,7E+2]},"a":{"type":"boolean","default":false},'
             '"x":{"default":null},"empty":{},"list":[]}}}},\n  {"type": "function", '
             '"function": {"name": "noop", "parameters": {}}}]')


def call(cid, name, args):
    return {"id": cid, "name": name, "arguments": args}


def conversations():
    q = {"role": "user", "content": "What's the weather in Paris?"}
    args_p = '{"city": "Paris"}'
    args_l = '{"city":"London",  "days":3}'
    args_nested = ('{"q": {"a": [1, 2.5, true, null], "s": "x"}, "s": "multi\\nline \\u00e9", '
                   '"b": false, "t": true, "n": null, "f": 0.1, "i": -7, "e": 1e20}')
    yield "plain", TOOLS_WEATHER, [q]
    yield "system", TOOLS_WEATHER, [{"role": "system", "content": "You are a helpful assistant."}, q]
    yield "call", TOOLS_WEATHER, [
        {"role": "system", "content": "  Be brief.\n\n"}, q,
        {"role": "assistant", "content": None, "tool_calls": [call("call_1", "get_weather", args_p)]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21, "sky": "clear"}'}]
    yield "two-calls", TOOLS_WEATHER, [
        q,
        {"role": "assistant", "content": "Let me check both.", "reasoning_content": "\nTwo cities.\n",
         "tool_calls": [call("a", "get_weather", args_p), call("b", "get_weather", args_l)]},
        {"role": "tool", "content": "21"}, {"role": "tool", "content": "  18\n"},
        {"role": "assistant", "content": "Paris 21, London 18."}]
    yield "think-in-content", TOOLS_WEATHER, [
        q,
        {"role": "assistant", "content": "<think>\nI need the tool.\n</think>\n\n",
         "tool_calls": [call("c", "get_weather", args_p)]},
        {"role": "tool", "content": "21"},
        {"role": "assistant", "content": "<think>ok</think>It is 21."},
        {"role": "user", "content": "\u3000And tomorrow?\u00a0"}]
    yield "nested-args", TOOLS_ODD, [
        {"role": "user", "content": "convert"},
        {"role": "assistant", "content": "",
         "tool_calls": [call("d", "convert", args_nested), call("e", "noop", "{}")]},
        {"role": "tool", "content": "ok"}]
    yield "no-tools", None, [
        {"role": "system", "content": "S"}, {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "<think>r1</think>a1"}, {"role": "user", "content": " q2 "}]
    yield "empty-tools", "[]", [{"role": "user", "content": "hi"}]
    yield "tool-wrapped-user", TOOLS_WEATHER, [
        q, {"role": "assistant", "content": "", "tool_calls": [call("f", "get_weather", args_p)]},
        {"role": "user", "content": "<tool_response>\n21\n</tool_response>"}]
    # the Qwen3.5 template raises on these
    yield "only-system", TOOLS_WEATHER, [{"role": "system", "content": "S"}]
    yield "late-system", None, [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}]
    yield "odd-role", None, [{"role": "user", "content": "a"}, {"role": "developer", "content": "b"}]


# ---- fixed-seed random conversations: the corners of both templates ----
FRAGMENTS = ["", " ", "\n", "\n\n", "\t", "\u3000", "\u00a0", "\u2028", "\x1c", "a", "hello world",
             "h\u00e9llo \u4e16\u754c", "<think>", "</think>", "<think>\nr\n</think>\n\n",
             "<tool_response>", "</tool_response>", "<tool_call>", "x\n\ny", " \u00e9 ", "\U0001f600"]
FLOATS = [0.1, 0.30000000000000004, 1 / 3, -0.0, 1e-7, 1e16, 1e15, 2.5e-5, 5e-324,
          1.7976931348623157e308, 123.456, -2.0, 1e22, 0.0001, 0.00001]


def rand_text(rng, n=3):
    return "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(0, n)))


def rand_value(rng, depth=0):
    k = rng.randint(0, 7 if depth < 2 else 4)
    if k == 0:
        return rand_text(rng)
    if k == 1:
        return rng.choice([0, 1, -7, 2 ** 53 + 1, 12345678901234567])
    if k == 2:
        return rng.choice(FLOATS)
    if k == 3:
        return rng.choice([True, False])
    if k == 4:
        return None
    if k in (5, 6):
        return {rng.choice(["a", "b", "city", "\u00e9", "k k", "x"]) + str(i): rand_value(rng, depth + 1)
                for i in range(rng.randint(0, 3))}
    return [rand_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]


def rand_json_text(rng, value):
    """JSON text of value, in one of the spellings clients use."""
    style = rng.randint(0, 2)
    if style == 0:
        return json.dumps(value)
    if style == 1:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return json.dumps(value, indent=1)


def random_conversations(n, seed=1234):
    import random
    rng = random.Random(seed)
    roles = ["user"] * 5 + ["assistant"] * 4 + ["tool"] * 3 + ["system"]
    for i in range(n):
        msgs = []
        if rng.random() < 0.6:
            msgs.append({"role": "system", "content": rand_text(rng)})
        for _ in range(rng.randint(1, 6)):
            role = rng.choice(roles)
            m = {"role": role, "content": rand_text(rng)}
            if role == "assistant":
                if rng.random() < 0.3:
                    m["reasoning_content"] = rand_text(rng)
                if rng.random() < 0.5:
                    m["tool_calls"] = [
                        call(f"c{k}", rng.choice(["get_weather", "f", "do_it"]),
                             rand_json_text(rng, {f"p{j}": rand_value(rng) for j in range(rng.randint(0, 3))}))
                        for k in range(rng.randint(1, 2))]
                    if rng.random() < 0.5:
                        m["content"] = None
            msgs.append(m)
        if not any(m["role"] == "user" for m in msgs) and rng.random() < 0.8:
            msgs.insert(rng.randint(0, len(msgs)), {"role": "user", "content": rand_text(rng) or "q"})
        tools = None
        if rng.random() < 0.6:
            tools = rand_json_text(rng, [{"type": "function", "function": {
                "name": "get_weather", "description": rand_text(rng),
                "parameters": {"type": "object", "properties": {"city": {"type": "string",
                               "default": rand_value(rng)}}, "extra": rand_value(rng)}}}])
        yield f"random-{i}", tools, msgs


def jinja_messages(messages, tmpl, as_objects):
    out = []
    for m in messages:
        j = {k: v for k, v in m.items() if k != "tool_calls"}
        if tmpl == "qwen3" and j.get("content") is None:
            j["content"] = ""  # Qwen3's template tests '</think>' in content
        if "tool_calls" in m:
            j["tool_calls"] = [{"id": c["id"], "type": "function", "function": {
                "name": c["name"],
                "arguments": json.loads(c["arguments"]) if as_objects else c["arguments"]}}
                for c in m["tool_calls"]]
        out.append(j)
    return out


def render(env, source, tmpl, messages, tools, gen, think, as_objects):
    try:
        return env.from_string(source).render(
            messages=jinja_messages(messages, tmpl, as_objects),
            tools=json.loads(tools) if tools else None, documents=None,
            add_generation_prompt=gen, enable_thinking=think,
            bos_token="", eos_token="<|im_end|>")
    except ValueError:
        return None


def main():
    out_path = sys.argv[1]
    env = environment()
    sources = {t: open(os.path.join(HERE, t + ".jinja"), encoding="utf-8").read()
               for t in ("qwen3", "qwen35")}
    cases = []
    import itertools
    for name, tools, messages in itertools.chain(conversations(), random_conversations(150)):
        for tmpl in ("qwen3", "qwen35"):
            for gen in (False, True):
                for think in (True, False):
                    if name.startswith("random") and (gen, think) != (int(name[7:]) % 2 == 0, True) \
                            and (gen, think) != (True, False):
                        continue  # two of the four switch settings per random conversation
                    want = render(env, sources[tmpl], tmpl, messages, tools, gen, think,
                                  tmpl == "qwen35")
                    case = {"name": name, "tmpl": tmpl, "tools": tools, "messages": messages,
                            "gen": gen, "think": think}
                    if want is None:
                        case["error"] = True
                    else:
                        case["expected"] = want
                    cases.append(case)
    # qwen3 with object arguments: the same text when the string is in
    # json.dumps form (what the output parser returns)
    dumped = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "", "tool_calls": [
        call("g", "get_weather", json.dumps({"city": "Paris", "days": [1, 2.5], "u": "\u00e9"},
                                            ensure_ascii=False))]}]
    a = render(env, sources["qwen3"], "qwen3", dumped, TOOLS_WEATHER, True, True, False)
    b = render(env, sources["qwen3"], "qwen3", dumped, TOOLS_WEATHER, True, True, True)
    if a != b:
        sys.exit("render_jinja: qwen3 renders string and object arguments differently")
    cases.append({"name": "dumped-args", "tmpl": "qwen3", "tools": TOOLS_WEATHER,
                  "messages": dumped, "gen": True, "think": True, "expected": a})
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False)
    n_err = sum(1 for c in cases if c.get("error"))
    print(f"render_jinja: {len(cases)} cases ({n_err} raise) from qwen3.jinja and qwen35.jinja")
    if "--transformers" in sys.argv:
        python = sys.argv[sys.argv.index("--transformers") + 1]
        r = subprocess.run([python, os.path.abspath(__file__), "--check-transformers", out_path],
                           capture_output=True, text=True)
        sys.stdout.write(r.stdout)
        sys.stderr.write(r.stderr)
        if r.returncode:
            sys.exit("render_jinja: transformers renders differently")


def check_transformers(path):
    """Inside a python with transformers: apply_chat_template on every case."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel({"a": 0}, unk_token="a")))
    sources = {t: open(os.path.join(HERE, t + ".jinja"), encoding="utf-8").read()
               for t in ("qwen3", "qwen35")}
    cases = json.load(open(path, encoding="utf-8"))
    bad = 0
    for c in cases:
        msgs = jinja_messages(c["messages"], c["tmpl"], c["tmpl"] == "qwen35")
        try:
            got = tok.apply_chat_template(msgs, tools=json.loads(c["tools"]) if c["tools"] else None,
                                          chat_template=sources[c["tmpl"]], tokenize=False,
                                          add_generation_prompt=c["gen"], enable_thinking=c["think"])
        except Exception:  # the template raised (transformers wraps it)
            got = None
        if got != c.get("expected"):
            bad += 1
            print(f"transformers differs: {c['name']} {c['tmpl']} gen={c['gen']} think={c['think']}")
    print(f"transformers {__import__('transformers').__version__}: {len(cases) - bad} of "
          f"{len(cases)} cases the same")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    if sys.argv[1] == "--check-transformers":
        check_transformers(sys.argv[2])
    else:
        main()
