// Shared by the browser scripts (tests/web/*.mjs): settings from the
// environment, JSON lines for the Rust test, screenshots, Chromium, pages
// that collect script errors, and the login form.

import { chromium } from 'playwright-core';
import { mkdirSync, writeFileSync } from 'node:fs';
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
 * Chromium switches for a browser phone: the microphone plays `wav` (looped)
 * and received audio may play without a user gesture. The fake devices are
 * "Fake Default Audio Input", "Fake Audio Input 1" and "… 2", all playing
 * `wav`. Every page may use the microphone, unless `perContext`: then only
 * contexts made with `{ permissions: ['microphone'] }` may, and the others
 * are refused it (as when an agent blocked it).
 */
export const fakeMicrophone = (wav, { perContext = false } = {}) => [
  ...(perContext ? [] : ['--use-fake-ui-for-media-stream']),
  '--use-fake-device-for-media-stream',
  `--use-file-for-fake-audio-capture=${wav}`,
  '--autoplay-policy=no-user-gesture-required',
];

/** Blocks the microphone for `origin` in the page's context (the agent clicked "Block"). */
export async function denyMicrophone(page, origin) {
  const cdp = await page.context().newCDPSession(page);
  const { targetInfo } = await cdp.send('Target.getTargetInfo');
  await cdp.send('Browser.setPermission', {
    permission: { name: 'microphone' }, setting: 'denied', origin, browserContextId: targetInfo.browserContextId,
  });
}

/** Keeps every RTCPeerConnection the page makes in window.__pcs (to listen in). */
export const trackPeerConnections = (page) => page.addInitScript(() => {
  const Original = window.RTCPeerConnection;
  window.__pcs = [];
  window.RTCPeerConnection = class extends Original {
    constructor(...a) { super(...a); window.__pcs.push(this); }
  };
});

/**
 * Starts recording what the page receives on its latest RTCPeerConnection
 * (8 kHz mono, once connected). Resolves to the start time (Date.now()).
 */
export const startHearing = (page) => page.evaluate(async () => {
  const pc = window.__pcs.at(-1);
  if (!pc) throw new Error('no RTCPeerConnection to listen to');
  for (let i = 0; i < 100 && pc.connectionState !== 'connected'; i++) await new Promise((r) => setTimeout(r, 100));
  const track = pc.getReceivers().map((r) => r.track).find((t) => t && t.kind === 'audio');
  if (!track) throw new Error('the call has no received audio track');
  const ctx = new AudioContext({ sampleRate: 8000 });
  await ctx.resume();
  const source = ctx.createMediaStreamSource(new MediaStream([track]));
  const proc = ctx.createScriptProcessor(1024, 1, 1);
  const chunks = [];
  proc.onaudioprocess = (e) => chunks.push(new Float32Array(e.inputBuffer.getChannelData(0)));
  source.connect(proc);
  proc.connect(ctx.destination);
  window.__hearing = { ctx, chunks, started: Date.now() };
  return window.__hearing.started;
});

/** Stops the recording of startHearing and writes it to `path` as a 16-bit WAV. */
export async function stopHearing(page, path) {
  const b64 = await page.evaluate(async () => {
    const h = window.__hearing;
    await h.ctx.close();
    const n = h.chunks.reduce((a, c) => a + c.length, 0);
    const pcm = new Int16Array(n);
    let o = 0;
    for (const c of h.chunks) for (const x of c) pcm[o++] = Math.max(-32768, Math.min(32767, Math.round(x * 32767)));
    const bytes = new Uint8Array(pcm.buffer);
    let bin = '';
    for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(bin);
  });
  const data = Buffer.from(b64, 'base64');
  const header = Buffer.alloc(44);
  header.write('RIFF', 0);
  header.writeUInt32LE(36 + data.length, 4);
  header.write('WAVEfmt ', 8);
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(1, 22); // mono
  header.writeUInt32LE(8000, 24);
  header.writeUInt32LE(16000, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write('data', 36);
  header.writeUInt32LE(data.length, 40);
  writeFileSync(path, Buffer.concat([header, data]));
}

/** The codec (e.g. "audio/PCMA") the page sends on its latest RTCPeerConnection. */
export const sentCodec = (page) => page.evaluate(async () => {
  const stats = await window.__pcs.at(-1).getStats();
  const out = [...stats.values()].find((r) => r.type === 'outbound-rtp' && r.kind === 'audio');
  return out?.codecId ? stats.get(out.codecId)?.mimeType ?? null : null;
});

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
