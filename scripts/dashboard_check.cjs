// Checks the live dashboard of a running `tideflow run --ui` in a real browser: Debian's
// chromium, headless, driven by playwright-core (run it with scripts/browser-tools.sh check).
//
//   dashboard_check.cjs URL SCREENSHOT.png PID_FILE [--snapshots] [--processes N] [--settle S] [--error TEXT] KIND...
//
// It opens URL and checks that the job graph shows the operators KIND... in order, that the
// rate chart's values change between two moments, with --snapshots that the snapshots table
// fills, with --processes N that the processes table shows N processes (a cluster's process 0),
// --settle S waits S seconds more before the screenshot (for a picture with longer charts),
// --error TEXT prints "ready" once those checks pass, then waits for the page to show the job's
// error, containing TEXT (the test makes the job fail when it reads "ready"),
// and that the console shows no error; it saves a screenshot of the page to
// SCREENSHOT.png and the browser's process id to PID_FILE (so that a test can stop it by its
// id whatever happens here). It prints what it saw as one JSON line; exit code 1 and one line
// on standard error when a check fails.
"use strict";
const fs = require("fs");
const { chromium } = require("playwright-core");

/** How long each wait may take: a guard against a hang, not a measure of speed. */
const GUARD_MS = 120000;

async function main() {
  const args = process.argv.slice(2);
  const snapshots = args.includes("--snapshots");
  const at = args.indexOf("--processes");
  const processes = at >= 0 ? Number(args.splice(at, 2)[1]) : 0;
  const settleAt = args.indexOf("--settle");
  const settle = settleAt >= 0 ? Number(args.splice(settleAt, 2)[1]) : 0;
  const errorAt = args.indexOf("--error");
  const expectedError = errorAt >= 0 ? args.splice(errorAt, 2)[1] : null;
  const [url, screenshot, pidFile, ...kinds] = args.filter((a) => a !== "--snapshots");
  if (!url || !screenshot || !pidFile || kinds.length === 0) {
    throw new Error("usage: dashboard_check.cjs URL SCREENSHOT.png PID_FILE [--snapshots] [--processes N] [--settle S] [--error TEXT] KIND...");
  }
  // A new, empty profile: Playwright gives the browser a temporary --user-data-dir.
  const server = await chromium.launchServer({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const pid = server.process().pid;
  const stop = () => {
    try { process.kill(pid, "SIGKILL"); } catch (e) { /* already gone */ }
  };
  process.on("SIGTERM", () => { stop(); process.exit(143); });
  fs.writeFileSync(pidFile, String(pid));
  try {
    const browser = await chromium.connect(server.wsEndpoint());
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const errors = [];
    page.on("console", (message) => {
      if (message.type() === "error") errors.push(message.text());
    });
    page.on("pageerror", (error) => errors.push(String(error)));
    page.setDefaultTimeout(GUARD_MS);
    await page.goto(url);
    await page.waitForFunction((n) => document.querySelectorAll("#graph .node").length >= n, kinds.length);
    const shown = await page.$$eval("#graph .node", (nodes) => nodes.map((n) => n.dataset.kind));
    if (JSON.stringify(shown) !== JSON.stringify(kinds)) {
      throw new Error(`the graph shows ${JSON.stringify(shown)}, the plan has ${JSON.stringify(kinds)}`);
    }
    // Two moments: the rate chart's values once it has a point, then once it has another.
    const chart = () => page.evaluate(() => {
      const data = window.tideflowDashboard.charts["chart-rates"].data;
      return { points: data[0].length, values: JSON.stringify(data) };
    });
    await page.waitForFunction(() => (window.tideflowDashboard.charts["chart-rates"] || { data: [[]] }).data[0].length >= 1);
    const first = await chart();
    await page.waitForFunction((n) => window.tideflowDashboard.charts["chart-rates"].data[0].length > n, first.points);
    const second = await chart();
    if (first.values === second.values) throw new Error("the rate chart's values did not change");
    let snapshotRows = 0;
    if (snapshots) {
      await page.waitForFunction(() => document.querySelectorAll("#snapshots tbody tr").length >= 1);
      snapshotRows = await page.$$eval("#snapshots tbody tr", (rows) => rows.length);
    }
    if (processes) {
      await page.waitForFunction((n) => document.querySelectorAll("#processes tbody tr").length === n, processes);
    }
    let errorShown = null;
    if (expectedError !== null) {
      console.log("ready");
      await page.waitForFunction(() => !document.getElementById("error").hidden);
      errorShown = await page.$eval("#error-message", (e) => e.textContent);
      if (!errorShown.includes(expectedError)) throw new Error(`the page shows the error ${JSON.stringify(errorShown)}`);
      const status = await page.$eval("#status", (e) => e.textContent);
      if (status !== "failed") throw new Error(`the page's status is ${status}, not failed`);
    }
    if (settle) await page.waitForTimeout(settle * 1000);
    const live = await page.$$eval("#graph .node .live", (nodes) => nodes.map((n) => n.textContent));
    await page.screenshot({ path: screenshot, fullPage: true });
    if (errors.length) throw new Error("the console shows errors: " + JSON.stringify(errors));
    console.log(JSON.stringify({ graph: shown, live, points: [first.points, second.points], snapshotRows, errorShown }));
  } finally {
    await server.close().catch(stop);
  }
}

main().catch((error) => {
  console.error("dashboard_check: " + String(error.message || error).split("\n")[0]);
  process.exit(1);
});
