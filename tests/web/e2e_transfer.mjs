// Browser half of the transfer test in tests/e2e_web.rs: agent A takes the
// call on the desk and transfers it to agent B with a note; B's desk pops the
// call with the note. Prints JSON lines like e2e_web.mjs:
//   {"event":"ready"}, {"event":"transferred",...}, {"event":"done"} or {"event":"error"}.
// Environment: HOTLINE_URL, AGENT_ID/AGENT_PW (A), AGENT2_ID/AGENT2_PW (B),
// CUSTOMER_NAME, ARTIFACTS, CHROMIUM, STEP_TIMEOUT_MS.

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const env = (k, d) => {
  const v = process.env[k] ?? d;
  if (v === undefined) throw new Error(`missing environment variable ${k}`);
  return v;
};
const BASE = env('HOTLINE_URL');
const ART = env('ARTIFACTS');
const STEP = Number(env('STEP_TIMEOUT_MS', '60000'));
mkdirSync(ART, { recursive: true });
const say = (event, extra = {}) => process.stdout.write(`${JSON.stringify({ event, ...extra })}\n`);

const browser = await chromium.launch({
  executablePath: env('CHROMIUM', '/usr/bin/chromium'),
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const errors = [];
const pages = [];
async function desk(id, pw) {
  const ctx = await browser.newContext({ viewport: { width: 1400, height: 1000 }, locale: 'zh-CN' });
  const page = await ctx.newPage();
  page.setDefaultTimeout(STEP);
  page.on('pageerror', (e) => errors.push(`${id}: ${e.message}`));
  pages.push([id, page]);
  await page.goto(`${BASE}/desk`);
  await page.fill('#login-id', id);
  await page.fill('#login-password', pw);
  await page.click('#login-submit');
  await page.waitForSelector('#conn.live');
  return page;
}

try {
  const a = await desk(env('AGENT_ID'), env('AGENT_PW'));
  const b = await desk(env('AGENT2_ID'), env('AGENT2_PW'));
  say('ready');

  await a.locator('#pop-phase', { hasText: '通话中' }).waitFor();
  await a.locator('#pop-customer-name', { hasText: env('CUSTOMER_NAME') }).waitFor();
  const note = `客户已报型号 KFR-35GW,外机噪音,请直接安排维修 ${Date.now()}`;
  await a.selectOption('#transfer-to', `agent:${env('AGENT2_ID')}`);
  await a.fill('#transfer-note', note);
  await a.click('#transfer');
  await a.locator('#transfer-msg.ok').waitFor();
  await a.locator('#pop-phase', { hasText: '已结束' }).waitFor();
  await a.screenshot({ path: join(ART, 't1-desk-a-transferred.png'), fullPage: true });

  await b.locator('#pop-phase', { hasText: '通话中' }).waitFor();
  await b.locator('#pop-customer-name', { hasText: env('CUSTOMER_NAME') }).waitFor();
  const shownNote = (await b.locator('#pop-transfer-note').textContent()).trim();
  const callId = (await b.locator('#wrap-call').textContent()).split('·').pop().trim();
  await b.screenshot({ path: join(ART, 't2-desk-b-screen-pop-with-note.png'), fullPage: true });
  say('transferred', { note, shown_note: shownNote, call_id: callId, errors });
  say('done');
} catch (e) {
  for (const [who, page] of pages) {
    try { await page.screenshot({ path: join(ART, `t-failed-${who}.png`), fullPage: true }); } catch { /* gone */ }
  }
  say('error', { message: String(e && e.stack || e), console_errors: errors });
  process.exitCode = 1;
} finally {
  await browser.close();
}
