// What the browser tests and the screenshot command share: the `keel` binary, a seeded data
// directory, a `keel serve` on free ports or a `keel console` over a Kafka cluster, Debian's
// Chromium driven by playwright-core, and small helpers to read the JSON API. Nothing here
// asserts.
import { execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(here, "../../../..");
export const KEEL =
  process.env.KEEL_BIN ||
  join(process.env.CARGO_TARGET_DIR || join(REPO, "target"), "debug", "keel");
export const CHROMIUM = process.env.KEEL_CHROMIUM || "/usr/bin/chromium";
/** The launch arguments Debian's Chromium needs here: no sandbox (root), no GPU, no network of its own. */
const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];
/** How long a server may take to print its listening line. */
const START_TIMEOUT_MS = 30_000;

export function tempDir(prefix) {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Runs `keel ARGS` and returns its stdout; throws with stderr on a non-zero exit. */
export function keel(args) {
  return execFileSync(KEEL, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/**
 * A data directory with what an operator sees after the order system ran: topics with
 * events and their conversations, consumer groups, and dead letters (every 5th order has an
 * invalid email address). Returns the log's directory.
 */
export function seedDemo() {
  const dir = tempDir("keel-console-seed-");
  keel(["demo", "--orders", "30", "--poison-every", "5", "--payment-outage", "1s",
    "--decline-rate", "0.2", "--quiet", "--dir", dir]);
  return join(dir, "log");
}

/**
 * Runs `keel ARGS` until stopped; resolves once its stdout prints the line `listening`
 * matches (`what` names it in errors) with that match and a `stop` that ends the process
 * with SIGTERM.
 */
async function startKeel(args, listening, what) {
  const child = spawn(KEEL, args,
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: "warn" } });
  let stderr = "";
  child.stderr.on("data", chunk => { stderr += chunk; });
  const found = await new Promise((resolveLine, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`${what} did not start: ${stderr}`)), START_TIMEOUT_MS);
    child.stdout.on("data", chunk => {
      out += chunk;
      const line = out.match(listening);
      if (line) { clearTimeout(timer); resolveLine(line); }
    });
    child.on("exit", code => { clearTimeout(timer); reject(new Error(`${what} exited ${code}: ${stderr}`)); });
  });
  return {
    found,
    async stop() {
      if (child.exitCode !== null) return;
      child.kill("SIGTERM");
      await once(child, "exit");
    },
  };
}

/** The console's sample interval: 200 ms unless `extra` sets one, so a test sees charts move. */
function sampling(extra) {
  return extra.includes("--console-sample-ms") ? [] : ["--console-sample-ms", "200"];
}

/** Starts `keel serve` over `dataDir` on free ports; resolves once it listens. */
export async function startServer(dataDir, extra = []) {
  const args = ["--data-dir", dataDir, "serve", "--http", "127.0.0.1:0", "--kafka", "127.0.0.1:0",
    "--registry", "127.0.0.1:0", ...sampling(extra), ...extra];
  const { found, stop } = await startKeel(args, /keel serve listening (.*)\n/, "keel serve");
  const addresses = Object.fromEntries(found[1].split(" ").map(pair => pair.split("=")));
  return {
    url: `http://${addresses.http}`,
    registry: `http://${addresses.registry}`,
    kafka: addresses.kafka,
    dataDir,
    stop,
  };
}

/**
 * Starts `keel console` over the Kafka cluster at `brokers` (a keel built with the `kafka`
 * feature) on a free port; resolves once it listens.
 */
export async function startConsole(brokers, extra = []) {
  const args = ["console", "--brokers", brokers, "--http", "127.0.0.1:0", ...sampling(extra), ...extra];
  const { found, stop } = await startKeel(args, /keel console listening http=(.*)\n/, "keel console");
  return { url: `http://${found[1]}`, brokers, stop };
}

/**
 * Runs the Python `script` with confluent-kafka (librdkafka; .ci/run installs it), `args`
 * as its arguments and `input` on its stdin; returns what it printed. Throws, with what it
 * wrote to stderr shown, when it fails.
 */
export function confluentKafka(script, args, input = "") {
  return execFileSync("python3", ["-c", script, ...args],
    { input, encoding: "utf8", stdio: ["pipe", "pipe", "inherit"] });
}

/** Debian's Chromium with a fresh profile, 1440×900. */
export async function launchBrowser() {
  const profile = tempDir("keel-chromium-");
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1440, height: 900 },
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** GET (or another method with a JSON body) against the server's API; the parsed body. */
export async function api(server, path, method = "GET", body) {
  const response = await fetch(server.url + path, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

/** A figure of a page as a number: digits of its text (thin spaces and units dropped). */
export async function figure(page, selector) {
  const text = await page.locator(selector).first().innerText();
  return Number(text.replace(/[^0-9.]/g, ""));
}

/** Milliseconds from navigation start to the load event of the current page. */
export async function loadTimeMs(page) {
  return page.evaluate(() => {
    const [navigation] = performance.getEntriesByType("navigation");
    return navigation.loadEventEnd - navigation.startTime;
  });
}
