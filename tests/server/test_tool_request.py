"""The tool round trip through `flashmoe serve` (the request side; the answer
side on fixed texts is tests/test_server_out.c): a conversation with tools,
an assistant turn that called one (arguments as a JSON string, as OpenAI
sends them) and the tool's answer is accepted by the official client and
rendered as POST /apply-template shows it: the tools block, the call and the
tool response are in the prompt, and the completion's usage counts exactly
that prompt's tokens. tool_choice "none" leaves the tools out; malformed
tools are a 400."""
import json

import openai

from common import check_error, client, model_id, post, run

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]
MSGS = [{"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris"})}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 C"}]


def template(**kw):
    r = post("/apply-template", dict(messages=MSGS, **kw))
    assert r.status_code == 200, r.text
    return r.json()["prompt"]


def n_tokens(text):
    r = client().completions.create(model=model_id(), prompt=text, max_tokens=1)
    return r.usage.prompt_tokens


def test_round_trip():
    prompt = template(tools=TOOLS)
    for part in ("get_weather", "<tool_call>", '"city": "Paris"', "<tool_response>", "Sunny, 21 C"):
        assert part in prompt, (part, prompt)
    r = client().chat.completions.create(model=model_id(), messages=MSGS, tools=TOOLS,
                                         tool_choice="auto", max_tokens=8, temperature=0)
    assert r.choices[0].finish_reason in ("stop", "length", "tool_calls")
    assert r.usage.prompt_tokens == n_tokens(prompt), (r.usage.prompt_tokens, n_tokens(prompt))
    # streamed: the same prompt
    usage = None
    for ch in client().chat.completions.create(model=model_id(), messages=MSGS, tools=TOOLS,
                                               max_tokens=4, stream=True,
                                               stream_options={"include_usage": True}):
        usage = ch.usage or usage
    assert usage.prompt_tokens == r.usage.prompt_tokens


def test_tool_choice_none():
    with_tools, without = template(tools=TOOLS), template(tools=TOOLS, tool_choice="none")
    assert without == template() and with_tools != without
    assert "get_weather" not in without.split("<tool_call>")[0], without


def test_bad_tools():
    check_error(post("/v1/chat/completions", {"messages": MSGS, "tools": {"x": 1}}), 400, "tools")
    check_error(post("/v1/chat/completions", {"messages": MSGS, "tools": [{"type": "function"}]}),
                400, "tools")
    check_error(post("/v1/chat/completions", {"messages": MSGS, "tools": TOOLS, "tool_choice": "sometimes"}),
                400, "tool_choice")
    try:
        client().chat.completions.create(model=model_id(), messages=[
            {"role": "assistant", "content": None, "tool_calls": [{"type": "function", "function": {}}]}])
    except openai.BadRequestError:
        pass
    else:
        raise AssertionError("a tool call without a name accepted")


run([test_round_trip, test_tool_choice_none, test_bad_tools])
