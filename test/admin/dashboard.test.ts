/**
 * The admin dashboard in a real browser: Debian's headless Chromium, driven by playwright-core, against lb in this
 * process and real backends. It watches a backend go down and a drain take effect, checks the phone layout, and
 * saves screenshots to test/artifacts/ for a person to look at.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync } from "node:fs";
import { type Browser, type Page, chromium } from "playwright-core";
import { ROOT, type TestBackend, deadPort, stoppedAfterEach, waitFor } from "../helpers.ts";

// Code passed to page.evaluate/waitForFunction runs in the browser. The project's TypeScript has no DOM library, so
// the few browser globals used there are declared for this module only.
declare const document: any;
declare const NodeFilter: { SHOW_TEXT: number };
declare function getComputedStyle(element: unknown): { fontSize: string; borderLeftColor: string };

const CHROMIUM = "/usr/bin/chromium";
const ARTIFACTS = `${ROOT}test/artifacts`;
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-quic",
];

let browser: Browser | undefined;
const { cleanup, backend: startedBackend, lbFor } = stoppedAfterEach({ "health-interval": "300ms" });

beforeAll(async () => {
  if (!(await Bun.file(CHROMIUM).exists())) {
    throw new Error(`${CHROMIUM} is missing: the dashboard test needs Debian's Chromium (apt-get install -y chromium)`);
  }
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  mkdirSync(ARTIFACTS, { recursive: true });
});

afterAll(async () => {
  await browser?.close();
});

function backend(name: string): TestBackend {
  // A few milliseconds of work per request, so the latency columns and charts have something to show.
  return startedBackend(name, async () => {
    await Bun.sleep(2 + Math.random() * 8);
    return new Response(`backend ${name}`);
  });
}

/** Clients sending requests back to back until stopped (bounded: at most `limit` requests). */
function traffic(url: string, clients = 4, limit = 5000) {
  let running = true;
  let sent = 0;
  const done = Promise.all(
    Array.from({ length: clients }, async () => {
      while (running && sent < limit) {
        sent++;
        await fetch(`${url}/?n=${sent}`).then((r) => r.arrayBuffer()).catch(() => undefined);
      }
    }),
  );
  return { sent: () => sent, stop: async () => ((running = false), await done) };
}

async function newPage(width: number, height: number): Promise<{ page: Page; errors: string[] }> {
  const page = await browser!.newPage({ viewport: { width, height } });
  const errors: string[] = [];
  page.on("pageerror", (error) => errors.push(error.message));
  page.on("console", (message) => message.type() === "error" && errors.push(message.text()));
  return { page, errors };
}

const idOf = (b: TestBackend) => new URL(b.url).host;
const stateOf = (page: Page, b: TestBackend) => page.locator(`[data-backend="${idOf(b)}"] [data-state]`);
/** Waits (polling in the page) until the backend's row shows that state. */
const waitForState = (page: Page, b: TestBackend, state: string, timeout = 5000) =>
  page.waitForSelector(`[data-backend="${idOf(b)}"] [data-state="${state}"]`, { timeout });

describe("dashboard", () => {
  test("shows the pool live, follows a backend going down, drains, and fits a phone", async () => {
    const a = backend("a");
    const b = backend("b");
    const lb = await lbFor([a.url, b.url]);
    const load = traffic(lb.url);
    cleanup.push(load.stop);
    await waitFor(() => load.sent() > 100, "some traffic through lb");

    const { page, errors } = await newPage(1280, 800);
    await page.goto(`${lb.lb.adminUrl!.origin}/`);
    await waitForState(page, a, "healthy");
    await waitForState(page, b, "healthy");
    expect(await stateOf(page, a).textContent()).toContain("healthy");
    expect(await page.locator("#t-backends").textContent()).toBe("2");
    expect(await page.locator("#t-version").textContent()).toEndWith("(source)");
    await page.waitForFunction(() => document.querySelector("#conn")?.getAttribute("data-conn") === "live");
    // Traffic shows up in the rates within a poll or two.
    await page.waitForFunction(() => Number(document.querySelector("#t-rps")?.textContent?.replace(/[^\d.]/g, "")) > 0);
    await expectReadableText(page);

    // b dies: its row turns red within a few health intervals, and the log says so.
    await b.stop();
    await waitForState(page, b, "unhealthy", 5000);
    await page.waitForSelector(`#events li[data-event-backend="${idOf(b)}"].st-unhealthy`, { timeout: 3000 });
    expect(await page.locator(`[data-backend="${idOf(b)}"]`).evaluate((n) => getComputedStyle(n).borderLeftColor)).toBe("rgb(220, 38, 38)");

    // Each card says how its last check went.
    expect(await page.locator(`[data-backend="${idOf(a)}"] .check-text`).textContent()).toBe("pass · status 200");
    // Weight… asks for a number (the browser's prompt) and sets it; the card shows it.
    page.once("dialog", (dialog) => void dialog.accept("4"));
    await page.click(`[data-backend="${idOf(a)}"] button.weight`);
    await page.waitForFunction((id) => document.querySelector(`[data-backend="${id}"] .m-weight`)?.textContent === "4", idOf(a), { timeout: 3000 });
    expect(lb.lb.pool.find(idOf(a))!.weight).toBe(4);
    // Disable a from its card; Enable puts it back.
    await page.click(`[data-backend="${idOf(a)}"] button.disable`);
    await waitForState(page, a, "disabled", 3000);
    await page.click(`[data-backend="${idOf(a)}"] button.enable`);
    await waitForState(page, a, "healthy", 3000);
    // Drain a from its card; Enable puts it back.
    await page.click(`[data-backend="${idOf(a)}"] button.drain`);
    await waitForState(page, a, "draining", 3000);
    await page.click(`[data-backend="${idOf(a)}"] button.enable`);
    await waitForState(page, a, "healthy", 3000);
    await page.click(`[data-backend="${idOf(b)}"] button.drain`);
    await waitForState(page, b, "draining", 3000);
    // The action's toast goes away when clicked; keep it out of the picture.
    if (await page.locator("#notice").isVisible()) await page.click("#notice");
    await page.waitForSelector("#notice", { state: "hidden", timeout: 1000 });
    await page.screenshot({ path: `${ARTIFACTS}/dashboard.png`, fullPage: true });

    // Phone: nothing wider than the screen.
    await page.setViewportSize({ width: 375, height: 812 });
    await page.waitForFunction(() => document.documentElement.scrollWidth <= 375, undefined, { timeout: 2000 }).catch(() => undefined);
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
    await expectReadableText(page);
    await page.screenshot({ path: `${ARTIFACTS}/dashboard-phone.png`, fullPage: true });

    await load.stop();
    // Remove asks first (the browser's confirm), drains b, and its card goes.
    page.once("dialog", (dialog) => void dialog.accept());
    await page.click(`[data-backend="${idOf(b)}"] button.remove`);
    await page.waitForSelector(`[data-backend="${idOf(b)}"]`, { state: "detached", timeout: 5000 });
    expect(lb.lb.pool.find(idOf(b))).toBeUndefined();
    expect(errors).toEqual([]);

    // lb goes away: the page says so instead of showing stale numbers as if they were live.
    await lb.stop();
    await page.waitForSelector('#conn[data-conn="down"]', { timeout: 4000 });
    expect(await page.locator("#banner").textContent()).toContain("Disconnected");
    await page.close();
  }, 20_000);

  test("shows each [[tcp]] listener's open connections and bytes", async () => {
    const echo = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data: (socket, bytes) => void socket.write(bytes) } });
    cleanup.push(() => echo.stop(true));
    const listen = `127.0.0.1:${deadPort()}`;
    const lb = await lbFor([backend("a").url], { pools: { echo: { backends: [`tcp://127.0.0.1:${echo.port}`] } }, tcp: [{ listen, pool: "echo" }] });
    const [host, port] = listen.split(":");
    let echoed = "";
    const client = await Bun.connect({ hostname: host!, port: Number(port), socket: { data: (_s, bytes) => void (echoed += bytes.toString()) } });
    cleanup.push(() => client.end());
    client.write("hello");
    await waitFor(() => echoed === "hello" || undefined, "the echo through lb");
    const { page, errors } = await newPage(1280, 800);
    await page.goto(`${lb.lb.adminUrl!.origin}/`);
    const row = page.locator(`#tcp li[data-listen="${listen}"]`);
    await row.waitFor({ timeout: 5000 });
    expect(await row.textContent()).toBe(`1 open${listen} · 1 connections · in 5 B · out 5 B`);
    expect(errors).toEqual([]);
    await page.close();
  });

  test("asks for the admin token, then uses it for stats and actions", async () => {
    const a = backend("a");
    const lb = await lbFor([a.url], { "admin-token": "s3cret-token" });
    const { page, errors } = await newPage(1280, 800);
    await page.goto(`${lb.lb.adminUrl!.origin}/`);

    await page.waitForSelector('#conn[data-conn="auth"]', { timeout: 3000 });
    expect(await page.locator("#banner").textContent()).toContain("requires an admin token");

    await page.fill("#token", "s3cret-token");
    await page.click("#token-form button[type=submit]");
    await waitForState(page, a, "healthy", 3000);
    expect(await page.evaluate(() => localStorage.getItem("lb.adminToken"))).toBe("s3cret-token");
    expect(await page.locator("#banner").isHidden()).toBe(true);

    await page.click(`[data-backend="${idOf(a)}"] button.drain`);
    await waitForState(page, a, "draining", 3000);
    // The 401s before the token are the browser's console errors for failed fetches; nothing else may go wrong.
    expect(errors.filter((e) => !/401/.test(e))).toEqual([]);
    await page.close();
  }, 10_000);

  test("a page from another origin cannot change the pool: no-cors fetch and form posts are refused", async () => {
    const a = backend("a");
    const lb = await lbFor([a.url]);
    const admin = lb.lb.adminUrl!.origin;
    const id = idOf(a);
    // The attacker's page, on another port of the same machine (same site, another origin), as in a browser tab.
    const page = `<!doctype html><body><form id="f" method="POST" action="${admin}/api/backends/${id}/disable"></form><script>
      fetch("${admin}/api/backends", { method: "POST", mode: "no-cors", headers: { "content-type": "text/plain" },
        body: JSON.stringify({ url: "http://127.0.0.1:9", weight: 1000 }) }).finally(() => document.getElementById("f").submit());
    </script></body>`;
    const attacker = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response(page, { headers: { "content-type": "text/html" } }) });
    cleanup.push(async () => attacker.stop(true));
    const { page: tab } = await newPage(800, 600);
    await tab.goto(`http://127.0.0.1:${attacker.port}/`);
    // The form's post navigates the tab to the admin API's answer.
    await tab.waitForURL(`${admin}/api/backends/${id}/disable`, { timeout: 5000 });
    expect(await tab.locator("body").textContent()).toContain("the admin API takes changes from its own page");
    expect(lb.lb.pool.backends.map((b) => [b.name, b.admin])).toEqual([[id, "active"]]);
    expect(lb.logs.filter((l) => l.includes("admin 127.0.0.1: refused POST"))).not.toEqual([]);
    await tab.close();
  }, 10_000);
});

/** Every visible piece of text is at least 14px. */
async function expectReadableText(page: Page) {
  const small = await page.evaluate(() => {
    const found: string[] = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const parent = node.parentElement;
      if (!parent || !node.textContent?.trim() || !parent.checkVisibility()) continue;
      if (parent.closest(".sr-only, template, noscript, script, style")) continue;
      const size = parseFloat(getComputedStyle(parent).fontSize);
      if (size < 14) found.push(`${size}px: ${node.textContent.trim().slice(0, 40)}`);
    }
    return found;
  });
  expect(small).toEqual([]);
}
