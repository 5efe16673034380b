// The real server driven by the official openai npm client: a chat completion,
// a streamed one (its deltas add up to the same greedy reply), a completion, the
// model list, and the error for a bad API key.
// Usage: node openai.test.mjs SLM_BINARY MODEL
import assert from "node:assert/strict";
import OpenAI from "openai";
import { startServer } from "./server.mjs";

const [slm, model] = process.argv.slice(2);
const key = "sk-e2e-test";
const srv = await startServer(slm, model, ["--api-key", key]);
try {
  const client = new OpenAI({ baseURL: srv.url + "/v1", apiKey: key, maxRetries: 0 });
  const messages = [{ role: "system", content: "You tell stories." }, { role: "user", content: "A story about a cat" }];

  const chat = await client.chat.completions.create({ model: "any", messages, max_tokens: 24, temperature: 0 });
  assert.equal(chat.object, "chat.completion");
  assert.equal(chat.choices.length, 1);
  assert.equal(chat.choices[0].message.role, "assistant");
  const reply = chat.choices[0].message.content;
  assert.ok(reply.length > 0, "an empty reply");
  assert.ok(["stop", "length"].includes(chat.choices[0].finish_reason));
  assert.ok(chat.usage.prompt_tokens > 0 && chat.usage.completion_tokens <= 24);
  assert.equal(chat.usage.total_tokens, chat.usage.prompt_tokens + chat.usage.completion_tokens);

  const stream = await client.chat.completions.create({ model: "any", messages, max_tokens: 24, temperature: 0, stream: true });
  let streamed = "", chunks = 0, finish = null;
  for await (const c of stream) {
    assert.equal(c.object, "chat.completion.chunk");
    streamed += c.choices[0]?.delta?.content ?? "";
    finish = c.choices[0]?.finish_reason ?? finish;
    ++chunks;
  }
  assert.equal(streamed, reply, "streamed deltas differ from the whole reply");
  assert.ok(chunks > 3, `only ${chunks} chunks`);
  assert.equal(finish, chat.choices[0].finish_reason);

  const cmpl = await client.completions.create({ model: "any", prompt: "Once upon a time", max_tokens: 16, temperature: 0 });
  assert.equal(cmpl.object, "text_completion");
  assert.ok(cmpl.choices[0].text.length > 0);
  assert.equal(cmpl.usage.completion_tokens, 16);

  const models = await client.models.list();
  assert.equal(models.data.length, 1);
  assert.equal(models.data[0].object, "model");

  const bad = new OpenAI({ baseURL: srv.url + "/v1", apiKey: "sk-wrong", maxRetries: 0 });
  await assert.rejects(bad.chat.completions.create({ model: "any", messages, max_tokens: 4 }), (e) => {
    assert.ok(e instanceof OpenAI.AuthenticationError, `expected AuthenticationError, got ${e.constructor.name}`);
    assert.equal(e.status, 401);
    assert.equal(e.code, "invalid_api_key");
    return true;
  });
  await assert.rejects(client.chat.completions.create({ model: "any", messages: [], max_tokens: 4 }), (e) => {
    assert.ok(e instanceof OpenAI.BadRequestError, `expected BadRequestError, got ${e.constructor.name}`);
    return true;
  });
  console.log(`openai e2e: ok (reply ${JSON.stringify(reply.slice(0, 60))}…)`);
} finally {
  await srv.stop();
}
