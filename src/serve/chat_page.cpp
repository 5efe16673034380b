#include "slm/serve/chat_page.h"

namespace slm::serve {

namespace {

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

// {{MODEL}} is replaced by the model's name.
constexpr const char* kPage = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>slm chat: {{MODEL}}</title>
<style>
  :root { --bg: #f6f7f9; --fg: #1d2330; --muted: #6b7385; --user: #dbe7ff; --bot: #ffffff; --accent: #3662e3; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.5 system-ui, sans-serif; background: var(--bg); color: var(--fg);
         display: flex; flex-direction: column; height: 100vh; }
  header { padding: 10px 16px; border-bottom: 1px solid #dde1e8; display: flex; gap: 16px; align-items: center;
           flex-wrap: wrap; background: #fff; }
  header h1 { font-size: 16px; margin: 0 12px 0 0; }
  header label { color: var(--muted); font-size: 13px; display: flex; gap: 6px; align-items: center; }
  header input { width: 80px; padding: 3px 6px; }
  header input#key { width: 140px; }
  #log { flex: 1; overflow-y: auto; padding: 16px; display: flex; flex-direction: column; gap: 10px; }
  .msg { max-width: 46rem; padding: 8px 12px; border-radius: 10px; white-space: pre-wrap; word-wrap: break-word; }
  .user { align-self: flex-end; background: var(--user); }
  .assistant { align-self: flex-start; background: var(--bot); border: 1px solid #e3e6ec; }
  .error { align-self: center; color: #b00020; font-size: 13px; }
  .stats { color: var(--muted); font-size: 12px; align-self: flex-start; }
  form { display: flex; gap: 8px; padding: 12px 16px; border-top: 1px solid #dde1e8; background: #fff; }
  textarea { flex: 1; resize: none; height: 3.2em; padding: 8px; font: inherit; }
  button { padding: 0 18px; font: inherit; background: var(--accent); color: #fff; border: 0; border-radius: 6px; }
  button:disabled { opacity: .5; }
</style>
</head>
<body>
<header>
  <h1>slm chat · <span id="model">{{MODEL}}</span></h1>
  <label>temperature <input id="temperature" type="number" min="0" max="2" step="0.1" value="0.8"></label>
  <label>max tokens <input id="max_tokens" type="number" min="1" max="4096" step="1" value="200"></label>
  <label>API key <input id="key" type="password" placeholder="(none)"></label>
  <button id="clear" type="button">New chat</button>
</header>
<main id="log" aria-live="polite"></main>
<form id="form">
  <textarea id="input" placeholder="Say something… (Enter sends, Shift+Enter a new line)" autofocus></textarea>
  <button id="send" type="submit">Send</button>
</form>
<script>
"use strict";
const log = document.getElementById("log"), form = document.getElementById("form");
const input = document.getElementById("input"), send = document.getElementById("send");
const key = document.getElementById("key");
key.value = localStorage.getItem("slm-key") || "";
key.addEventListener("change", () => localStorage.setItem("slm-key", key.value));
let history = [], controller = null;

function bubble(cls, text) {
  const d = document.createElement("div");
  d.className = "msg " + cls;
  d.textContent = text;
  log.appendChild(d);
  log.scrollTop = log.scrollHeight;
  return d;
}

document.getElementById("clear").onclick = () => {
  if (controller) controller.abort();
  history = [];
  log.textContent = "";
};

input.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); }
});

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const text = input.value.trim();
  if (!text || controller) return;
  input.value = "";
  history.push({ role: "user", content: text });
  bubble("user", text);
  const out = bubble("assistant", "");
  out.classList.add("streaming");
  send.disabled = true;
  controller = new AbortController();
  const t0 = performance.now();
  let reply = "", nTok = 0;
  try {
    const headers = { "Content-Type": "application/json" };
    if (key.value) headers["Authorization"] = "Bearer " + key.value;
    const res = await fetch("/v1/chat/completions", {
      method: "POST", headers, signal: controller.signal,
      body: JSON.stringify({
        messages: history, stream: true,
        temperature: Number(document.getElementById("temperature").value),
        max_tokens: Number(document.getElementById("max_tokens").value),
      }),
    });
    if (!res.ok) {
      const body = await res.json().catch(() => ({}));
      throw new Error((body.error && body.error.message) || ("HTTP " + res.status));
    }
    const reader = res.body.getReader(), dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const ev = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        if (!ev.startsWith("data: ")) continue;
        const data = ev.slice(6);
        if (data === "[DONE]") continue;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        const delta = chunk.choices[0].delta || {};
        if (delta.content) { reply += delta.content; out.textContent = reply; log.scrollTop = log.scrollHeight; }
        if (chunk.usage) nTok = chunk.usage.completion_tokens;
      }
    }
    history.push({ role: "assistant", content: reply });
    const secs = (performance.now() - t0) / 1000;
    const s = document.createElement("div");
    s.className = "stats";
    s.textContent = nTok + " tokens in " + secs.toFixed(2) + " s";
    log.appendChild(s);
  } catch (err) {
    if (err.name !== "AbortError") bubble("error", String(err.message || err));
    history.pop();
  } finally {
    out.classList.remove("streaming");
    out.classList.add("done");
    controller = null;
    send.disabled = false;
    input.focus();
  }
});
</script>
</body>
</html>
)HTML";

}  // namespace

std::string chat_page_html(const std::string& model_id) {
  std::string page = kPage;
  const std::string tag = "{{MODEL}}", name = html_escape(model_id);
  for (size_t at; (at = page.find(tag)) != std::string::npos;) page.replace(at, tag.size(), name);
  return page;
}

}  // namespace slm::serve
