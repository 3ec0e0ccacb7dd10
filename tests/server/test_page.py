#!/usr/bin/env python3
"""test_page.py: the chat page of flashmoe serve in headless Chromium
(Selenium, Debian's chromium + chromium-driver), run by tests/e2e_page.sh.

  test_page.py BASE_URL [--screenshot PNG] [--key API_KEY]

With --key the server was started with --api-key: the page shows nothing
until the key is typed into its settings, then everything below works.

1. The page loads from the server alone: no request leaves BASE_URL and the
   console has no error (the server's Content-Security-Policy would report
   any outside resource there).
2. A message typed into the box and sent with Enter gets a reply streamed
   from the model: a MutationObserver sees the reply's text grow in several
   steps while the page is in its streaming state; then tok/s and the expert
   cache hit rate (from /metrics) are shown. A second turn works too.
3. Reasoning and tool calls render as collapsible <details>: a scripted
   event stream (fetch replaced in the page for one request) carries
   reasoning, content and a tool call split over several deltas.
Prints one line per check and "N passed, N failed"; exit 0 / 1.
"""
import re
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

passed = failed = 0


def check(ok, what, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {what}")
    else:
        failed += 1
        print(f"FAIL {what} {detail}")


def wait_for(fn, timeout=60.0):
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    return fn()


def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1100,900", "--no-first-run", "--disable-extensions"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=opts)


# Records every change of the last assistant reply: [text length, page state].
OBSERVE = """
window.__steps = [];
new MutationObserver(() => {
  const c = document.querySelectorAll('.msg.assistant .content');
  const last = c[c.length - 1];
  if (last) window.__steps.push([last.textContent.length, document.body.dataset.state]);
}).observe(document.getElementById('messages'), {subtree: true, childList: true, characterData: true});
"""

# One scripted /v1/chat/completions answer: reasoning, content, a tool call
# whose name and arguments come in pieces, then usage and [DONE].
SCRIPTED = r"""
const realFetch = window.fetch;
window.fetch = async (url, init) => {
  if (!String(url).endsWith('/v1/chat/completions')) return realFetch(url, init);
  window.fetch = realFetch;
  window.__scriptedBody = JSON.parse(init.body);
  const chunk = (delta, finish) => 'data: ' + JSON.stringify({object: 'chat.completion.chunk',
    choices: [{index: 0, delta, finish_reason: finish || null}]}) + '\n\n';
  const parts = [
    chunk({role: 'assistant', content: ''}),
    chunk({reasoning_content: 'The user wants '}), chunk({reasoning_content: 'the weather.'}),
    chunk({content: 'Checking.'}),
    chunk({tool_calls: [{index: 0, id: 'call_abc', type: 'function',
                         function: {name: 'get_weather', arguments: ''}}]}),
    chunk({tool_calls: [{index: 0, function: {arguments: '{"city": '}}]}),
    chunk({tool_calls: [{index: 0, function: {arguments: '"Paris"}'}}]}),
    chunk({}, 'tool_calls'),
    'data: ' + JSON.stringify({choices: [], usage: {completion_tokens: 7, prompt_tokens: 5}}) + '\r\n\r\n',
    'data: [DONE]\n\n'];
  const enc = new TextEncoder();
  const body = new ReadableStream({async start(ctl) {
    for (const p of parts) {   // split each event across two reads
      const b = enc.encode(p), h = b.length >> 1;
      ctl.enqueue(b.slice(0, h)); await new Promise(r => setTimeout(r, 5));
      ctl.enqueue(b.slice(h)); await new Promise(r => setTimeout(r, 5));
    }
    ctl.close();
  }});
  return new Response(body, {status: 200, headers: {'Content-Type': 'text/event-stream'}});
};
"""


def send(d, text):
    box = d.find_element(By.ID, "input")
    box.clear()
    box.send_keys(text)
    box.send_keys(Keys.ENTER)


def idle(d):
    return d.execute_script("return document.body.dataset.state") == "idle"


def main():
    base = sys.argv[1].rstrip("/")
    shot = sys.argv[sys.argv.index("--screenshot") + 1] if "--screenshot" in sys.argv else None
    key = sys.argv[sys.argv.index("--key") + 1] if "--key" in sys.argv else None
    d = browser()
    try:
        d.get(base + "/")
        check(d.title == "flashmoe", "the page loads", f"title {d.title!r}")
        if key:  # the server wants a key: nothing loads until it is typed in
            time.sleep(1)
            check(d.find_element(By.ID, "model").text == "", "no model name without the key")
            d.execute_script("const k = document.getElementById('key'); k.value = arguments[0];"
                             "k.dispatchEvent(new Event('change'));", key)
        model = wait_for(lambda: d.find_element(By.ID, "model").text, 20)
        check(bool(model), f"the model's name from /v1/models ({model})")
        d.execute_script("document.getElementById('maxtok').value = '48';"
                         "document.getElementById('temp').value = '0';" + OBSERVE)

        # 2. a streamed reply from the model
        send(d, "Tell me about the weather in the city.")
        wait_for(lambda: d.execute_script("return window.__steps.length") > 0, 30)
        wait_for(lambda: idle(d), 120)
        steps = d.execute_script("return window.__steps")
        reply = d.find_elements(By.CSS_SELECTOR, ".msg.assistant .content")[-1].text
        grew = sorted({n for n, state in steps if n > 0 and state == "streaming"})
        check(len(reply) > 0, "a reply", f"{reply!r}")
        check(len(grew) >= 3 and grew[-1] <= len(reply) + 1,
              f"streamed: the reply grew in {len(grew)} steps while streaming",
              f"steps {steps[:20]}")
        tps = wait_for(lambda: d.find_element(By.ID, "tps").text, 10)
        m = re.search(r"(\d+) tokens, ([0-9.]+) tok/s", tps)
        check(bool(m) and float(m.group(2)) > 0 and not tps.endswith("…"),
              f"tok/s shown ({tps})")
        hit = wait_for(lambda: re.search(r"\d+\.\d%", d.find_element(By.ID, "hit").text), 15)
        check(bool(hit), f"expert cache hit rate shown ({d.find_element(By.ID, 'hit').text})")
        errors = d.find_elements(By.CSS_SELECTOR, ".msg.error")
        check(not errors, "no error message", errors[0].text if errors else "")

        send(d, "And tomorrow?")
        wait_for(lambda: len(d.find_elements(By.CSS_SELECTOR, ".msg.assistant")) == 2, 30)
        wait_for(lambda: idle(d), 120)
        second = d.find_elements(By.CSS_SELECTOR, ".msg.assistant .content")[-1].text
        check(len(second) > 0 and not d.find_elements(By.CSS_SELECTOR, ".msg.error"),
              "a second turn", f"{second!r}")

        # 3. reasoning and a tool call from a scripted stream
        d.execute_script(SCRIPTED)
        send(d, "What's the weather in Paris?")
        wait_for(lambda: idle(d) and d.find_elements(By.CSS_SELECTOR, "details.call"), 20)
        body = d.execute_script("return window.__scriptedBody")
        msgs = body["messages"]
        check(body["stream"] and msgs[-1] == {"role": "user", "content": "What's the weather in Paris?"}
              and [m["role"] for m in msgs] == ["user", "assistant", "user", "assistant", "user"],
              "the request carries the conversation", str(msgs)[:300])
        r = d.find_elements(By.CSS_SELECTOR, ".msg.assistant")[-1]
        reasoning = r.find_elements(By.CSS_SELECTOR, "details.reasoning")
        call = r.find_elements(By.CSS_SELECTOR, "details.call")
        check(len(reasoning) == 1 and reasoning[0].get_attribute("textContent")
              == "ReasoningThe user wants the weather.", "reasoning in a <details>",
              reasoning[0].get_attribute("textContent") if reasoning else "none")
        check(r.find_element(By.CSS_SELECTOR, ".content").text == "Checking.", "content beside it")
        check(len(call) == 1 and call[0].find_element(By.TAG_NAME, "summary").text
              == "Tool call: get_weather" and call[0].find_element(By.TAG_NAME, "pre")
              .get_attribute("textContent") == '{"city": "Paris"}',
              "the tool call in a <details>, arguments joined from the deltas",
              call[0].get_attribute("textContent") if call else "none")
        check(d.find_element(By.ID, "role").get_attribute("value") == "tool",
              "after a tool call the next message goes as role tool")
        check(d.find_element(By.ID, "tps").text.startswith("7 tokens"),
              "usage from the final chunk", d.find_element(By.ID, "tps").text)
        hist = d.execute_script("return conversation")
        check(hist[-1].get("tool_calls", [{}])[0].get("function") ==
              {"name": "get_weather", "arguments": '{"city": "Paris"}'}
              and hist[-1].get("reasoning_content") == "The user wants the weather.",
              "the reply is kept as an assistant message with tool_calls", str(hist[-1]))
        if shot:
            d.execute_script("document.querySelectorAll('details').forEach(x => x.open = true)")
            d.save_screenshot(shot)

        # 1. nothing came from elsewhere, nothing went wrong in the console
        urls = d.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        foreign = [u for u in urls if not u.startswith(base)]
        check(not foreign, f"every request went to the server ({len(urls)} requests)", str(foreign))
        logs = [e for e in d.get_log("browser") if e["level"] == "SEVERE"
                and not (key and "401" in e["message"])]  # the calls before the key
        check(not logs, "no console errors", str(logs)[:500])
    finally:
        d.quit()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
