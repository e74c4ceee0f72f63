// Regenerates docs/console/*.png: every console page at 1440×900 in Debian's Chromium,
// against `keel serve` over the order system's data directory (the browser tests' seed),
// with a few seconds of produced events so the charts have something to show.
// Run: scripts/console-screenshots (builds keel first).
import { createHash } from "node:crypto";
import { mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";

import { REPO, api, launchBrowser, seedDemo, startServer, tempDir } from "./harness.mjs";

const OUT = join(REPO, "docs", "console");
/** Seconds of produced events before the first screenshot. */
const TRAFFIC_SECONDS = 6;

const log = seedDemo();
const server = await startServer(log,
  ["orders.db", "payment.db"].flatMap(name => ["--console-database", join(dirname(log), name)]));
const browser = await launchBrowser();
try {
  const schema = { type: "object", required: ["order_id", "total_cents"], additionalProperties: false,
    properties: { order_id: { type: "string" }, total_cents: { type: "integer" } } };
  await api(server, "/api/schemas/order.refunded/versions", "POST", { schema });
  await api(server, "/api/schemas/order.refunded/versions", "POST",
    { schema: { ...schema, properties: { ...schema.properties, reason: { type: "string" } } } });
  const until = Date.now() + TRAFFIC_SECONDS * 1000;
  for (let i = 0; Date.now() < until; i++) {
    await api(server, "/api/topics/payments/events", "POST",
      { type: "order.refunded", key: `order-${i % 9}`, data: { order_id: `order-${i % 9}`, total_cents: 100 + i } });
    await new Promise(resolve => setTimeout(resolve, 5 + (i % 40)));
  }
  const charged = (await api(server, "/api/topics/payments/events?type=payment.charged&limit=1")).body.events[0];
  const pages = [
    ["overview", "/"],
    ["topics", "/topics"],
    ["topic", "/topics/payments"],
    ["events", "/topics/payments/events"],
    ["event", `/topics/payments/events/${charged.partition}/${charged.offset}`],
    ["groups", "/groups"],
    ["group", "/groups/email"],
    ["dead-letters", "/dead-letters"],
    ["dead-letter-topic", "/dead-letters/shipping.dlq"],
    ["audit", "/audit"],
    ["schemas", "/schemas"],
    ["schema", "/schemas/order.refunded"],
    ["catalog", "/catalog"],
    ["applications", "/applications"],
  ];
  mkdirSync(OUT, { recursive: true });
  const page = await browser.context.newPage();
  const shoot = async (name, what) => {
    await page.screenshot({ path: join(OUT, `${name}.png`) });
    console.log(`docs/console/${name}.png  ${what}`);
  };
  for (const [name, path] of pages) {
    await page.goto(server.url + path);
    await shoot(name, path);
  }
  // A topic's settings form with the preview of a change, before it is applied.
  await page.goto(server.url + "/topics/payments");
  const settings = page.locator("#topic-settings");
  await settings.locator('input[name="config[retention.ms]"]').fill("604800000");
  await settings.locator('input[name="config[keel.fsync]"]').fill("interval(100)");
  await settings.locator("button[data-preview]").click();
  await settings.locator(".done").waitFor();
  await settings.evaluate(form => form.scrollIntoView({ block: "end" }));
  await shoot("topic-settings", "/topics/payments, settings previewed");

  // The login page as a browser sees it after a logout, on a server that asks for a token.
  const sha256 = createHash("sha256").update("screenshot-token").digest("hex");
  const loginDir = tempDir("keel-console-login-");
  const secured = await startServer(loginDir, ["--http-tokens", `ops:admin:${sha256}`]);
  try {
    await page.goto(secured.url + "/login?next=%2F&reason=logged-out");
    await shoot("login", "/login after a logout");
  } finally {
    await secured.stop();
    rmSync(loginDir, { recursive: true, force: true });
  }
} finally {
  await browser.close();
  await server.stop();
  rmSync(dirname(log), { recursive: true, force: true });
}
