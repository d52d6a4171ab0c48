// Shared by the browser scripts (tests/web/*.mjs): settings from the
// environment, JSON lines for the Rust test, screenshots, Chromium, pages
// that collect script errors, and the login form.

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

/** An environment variable, or `d`; throws when neither. */
export const env = (k, d) => {
  const v = process.env[k] ?? d;
  if (v === undefined) throw new Error(`missing environment variable ${k}`);
  return v;
};

/** One JSON line on stdout for the Rust side: {"event": ..., ...extra}. */
export const say = (event, extra = {}) => process.stdout.write(`${JSON.stringify({ event, ...extra })}\n`);

/**
 * Chromium switches for a browser phone: the microphone plays `wav` (looped),
 * no permission prompt, and received audio may play without a user gesture.
 */
export const fakeMicrophone = (wav) => [
  '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream',
  `--use-file-for-fake-audio-capture=${wav}`,
  '--autoplay-policy=no-user-gesture-required',
];

/**
 * Chromium plus what a test keeps: screenshots (in ARTIFACTS), script
 * errors of every page, the pages (for a screenshot when failing).
 * `args`: extra Chromium switches (a fake microphone, say).
 */
export async function session({ args = [] } = {}) {
  const art = env('ARTIFACTS');
  mkdirSync(art, { recursive: true });
  const browser = await chromium.launch({
    executablePath: env('CHROMIUM', '/usr/bin/chromium'),
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', ...args],
  });
  const s = {
    browser,
    shots: [],
    errors: [],
    pages: [],
    async shot(page, name) {
      const path = join(art, `${name}.png`);
      await page.screenshot({ path, fullPage: true });
      s.shots.push(path);
    },
    /**
     * A fresh context's page; script errors are collected as `who: message`.
     * `options`: more browser-context options (e.g. ignoreHTTPSErrors).
     */
    async page(who, options = {}) {
      const ctx = await browser.newContext({ viewport: { width: 1400, height: 1000 }, locale: 'zh-CN', ...options });
      const page = await ctx.newPage();
      page.setDefaultTimeout(Number(env('STEP_TIMEOUT_MS', '60000')));
      page.on('pageerror', (e) => s.errors.push(`${who}: ${e.message}`));
      // Refused requests are logged by Chromium as "Failed to load resource";
      // only script errors count.
      page.on('console', (m) => {
        if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) s.errors.push(`${who}: ${m.text()}`);
      });
      s.pages.push([who, page]);
      return page;
    },
    /** Log in on `path` (the login form of common.js) and wait for live events. */
    async login(page, path, id, pw) {
      await page.goto(`${env('HOTLINE_URL')}${path}`);
      await page.fill('#login-id', id);
      await page.fill('#login-password', pw);
      await page.click('#login-submit');
      await page.waitForSelector('#conn.live');
    },
    /** After a failure: a screenshot of every page and the error line. */
    async fail(e, prefix) {
      for (const [who, page] of s.pages) {
        try { await s.shot(page, `${prefix}-failed-${who}`); } catch { /* page gone */ }
      }
      say('error', { message: String(e && e.stack || e), console_errors: s.errors });
      process.exitCode = 1;
    },
  };
  return s;
}
