// The chat page in headless Chromium (Debian's, driven by playwright-core): open
// it, send a message, watch the reply come in delta by delta, check that the
// page fetched nothing from elsewhere, and save a screenshot.
// Usage: node chat_page.test.mjs SLM_BINARY MODEL CHROMIUM SCREENSHOT.png
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { startServer } from "./server.mjs";

const [slm, model, exe, shot] = process.argv.slice(2);
const srv = await startServer(slm, model);
const browser = await chromium.launch({ executablePath: exe, headless: true, args: ["--no-sandbox"] });
try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 700 } });
  const urls = [];
  page.on("request", (r) => urls.push(r.url()));
  await page.goto(srv.url + "/");
  assert.match(await page.title(), /slm chat/);
  await page.fill("#temperature", "0");
  await page.fill("#max_tokens", "60");
  await page.evaluate(() => {
    window.updates = 0;
    // Records, not callbacks: deltas that arrive in one network read are rendered
    // one by one but reported to a single callback.
    new MutationObserver((records) => { window.updates += records.length; })
      .observe(document.getElementById("log"), { subtree: true, childList: true, characterData: true });
  });
  await page.fill("#input", "Tell me a story about a little cat");
  await page.click("#send");
  await page.waitForSelector(".msg.assistant.done", { timeout: 60000 });
  const reply = await page.textContent(".msg.assistant");
  assert.ok(reply.trim().length > 0, "the reply is empty");
  assert.equal(await page.locator(".msg.error").count(), 0, "the page shows an error");
  const updates = await page.evaluate(() => window.updates);
  assert.ok(updates > 10, `the reply was rendered in ${updates} updates, not delta by delta`);
  await page.waitForSelector(".stats");
  for (const u of urls) assert.ok(u.startsWith(srv.url), `the page fetched ${u}`);
  await page.screenshot({ path: shot, fullPage: true });
  console.log(`chat page e2e: ok, ${updates} updates, screenshot ${shot}`);
} finally {
  await browser.close();
  await srv.stop();
}
