// Browser half of the monitoring + attended-transfer test in tests/e2e_web.rs.
//
// A supervisor with a registered softphone listens to a live call from the
// wallboard, barges in and stops; a second supervisor without a phone gets
// the server's refusal shown. Then the agent consults a colleague on the desk
// and completes the transfer; the colleague's desk pops the call. Prints JSON
// lines like e2e_web.mjs:
//   {"event":"ready"}            pages open and logged in; place the call
//   {"event":"monitored",...}    listen, barge, stop done on the wallboard
//   {"event":"consulted",...}    the attended transfer completed on the desk
//   {"event":"done",...}         or {"event":"error","message":...}
// Environment: HOTLINE_URL, SUP_ID/SUP_PW (has a phone), SUP2_ID/SUP2_PW (no
// phone), AGENT_ID/AGENT_PW (takes the call), AGENT2_ID/AGENT2_PW (consulted),
// CALLER, ARTIFACTS, CHROMIUM, STEP_TIMEOUT_MS.

import { chromium } from 'playwright-core';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const env = (k, d) => {
  const v = process.env[k] ?? d;
  if (v === undefined) throw new Error(`missing environment variable ${k}`);
  return v;
};
const BASE = env('HOTLINE_URL');
const ART = env('ARTIFACTS');
const STEP = Number(env('STEP_TIMEOUT_MS', '60000'));
const CALLER = env('CALLER');
const AGENT2 = env('AGENT2_ID');
mkdirSync(ART, { recursive: true });

const say = (event, extra = {}) => process.stdout.write(`${JSON.stringify({ event, ...extra })}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const shots = [];
async function shot(page, name) {
  const path = join(ART, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  shots.push(path);
}

const browser = await chromium.launch({
  executablePath: env('CHROMIUM', '/usr/bin/chromium'),
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const errors = [];
const pages = [];
async function open(who, path, id, pw) {
  const ctx = await browser.newContext({ viewport: { width: 1500, height: 1000 }, locale: 'zh-CN' });
  const page = await ctx.newPage();
  page.setDefaultTimeout(STEP);
  page.on('pageerror', (e) => errors.push(`${who}: ${e.message}`));
  // Refused API calls (the 409 shown to the user) are logged by Chromium as
  // "Failed to load resource"; only script errors count.
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(`${who}: ${m.text()}`);
  });
  pages.push([who, page]);
  await page.goto(`${BASE}${path}`);
  await page.fill('#login-id', id);
  await page.fill('#login-password', pw);
  await page.click('#login-submit');
  await page.waitForSelector('#conn.live');
  return page;
}

const text = async (loc) => ((await loc.textContent()) || '').trim();

try {
  const wall = await open('wallboard', '/wallboard', env('SUP_ID'), env('SUP_PW'));
  const wall2 = await open('wallboard-no-phone', '/wallboard', env('SUP2_ID'), env('SUP2_PW'));
  const desk = await open('desk', '/desk', env('AGENT_ID'), env('AGENT_PW'));
  const desk2 = await open('desk2', '/desk', AGENT2, env('AGENT2_PW'));
  say('ready');

  // 1. The call is answered by the agent: monitor buttons on the wallboard.
  const row = wall.locator('tr.live-call[data-state="answered"]', { hasText: CALLER });
  await row.waitFor();
  const callId = await row.getAttribute('data-call');
  const cell = row.locator('td.monitor');
  await cell.locator('button[data-mode="listen"]').waitFor();
  await shot(wall, 'm1-wallboard-call-answered');

  // A supervisor without a registered phone: the refusal is on screen.
  const row2 = wall2.locator(`tr.live-call[data-call="${callId}"][data-state="answered"]`);
  await row2.locator('td.monitor button[data-mode="listen"]').click();
  const refusal = await text(row2.locator('.monitor-msg.err'));
  await shot(wall2, 'm2-wallboard-no-phone-refused');

  // Listen: the phone is called in; the mode shows once it answered.
  await cell.locator('button[data-mode="listen"]').click();
  await cell.locator('.monitor-mode[data-mode="listen"]').waitFor();
  const listenShown = await text(cell.locator('.monitor-mode'));
  // The other supervisor's wallboard sees who is listening.
  await row2.locator('td.monitor', { hasText: env('SUP_ID') }).waitFor();
  const seenByOther = await text(row2.locator('td.monitor'));
  await shot(wall, 'm3-wallboard-listening');
  await sleep(2000);

  // Barge: a switch (the phone stays in the call).
  await cell.locator('button[data-mode="barge"]').click();
  await cell.locator('.monitor-mode[data-mode="barge"]').waitFor();
  const bargeShown = await text(cell.locator('.monitor-mode'));
  await shot(wall, 'm4-wallboard-barge');
  await sleep(2000);

  // Stop: the phone leaves; no mode shown any more.
  await cell.locator('button[data-mode="stop"]').click();
  await cell.locator('.monitor-msg.ok', { hasText: '已结束' }).waitFor();
  const modeAfterStop = await cell.locator('.monitor-mode').count();
  await shot(wall, 'm5-wallboard-stopped');
  say('monitored', {
    call_id: callId, refusal, listen_shown: listenShown, barge_shown: bargeShown,
    seen_by_other: seenByOther, mode_after_stop: modeAfterStop, errors,
  });

  // 2. Attended transfer on the desk: consult, then complete.
  await desk.locator('#pop-phase', { hasText: '通话中' }).waitFor();
  await desk.locator('#consult:not([disabled])').waitFor();
  const note = `客户空调不制冷,已重启两次,请安排上门 ${Date.now()}`;
  await desk.selectOption('#consult-to', AGENT2);
  await desk.fill('#consult-note', note);
  await desk.click('#consult');
  await desk.locator('#consult-state[data-phase="talking"]').waitFor();
  const consultState = await text(desk.locator('#consult-state'));
  // The colleague's desk pops the call while they talk.
  await desk2.locator('#pop-phase', { hasText: '同事咨询' }).waitFor();
  await wall.locator(`tr.live-call[data-call="${callId}"] .consulting`, { hasText: AGENT2 }).waitFor();
  await shot(desk, 'c1-desk-consulting');
  await shot(desk2, 'c2-desk2-consulted');
  await shot(wall, 'c3-wallboard-consulting');
  await sleep(2000);

  await desk.click('#consult-complete');
  await desk.locator('#consult-msg.ok').waitFor();
  const completeMsg = await text(desk.locator('#consult-msg'));
  await desk.locator('#pop-phase', { hasText: '已结束' }).waitFor();
  await desk2.locator('#pop-phase', { hasText: '通话中' }).waitFor();
  const shownNote = await text(desk2.locator('#pop-transfer-note'));
  await wall.locator(`tr.live-call[data-call="${callId}"][data-state="answered"] td.agent`, { hasText: AGENT2 }).waitFor();
  await shot(desk, 'c4-desk-transferred');
  await shot(desk2, 'c5-desk2-talking');
  await shot(wall, 'c6-wallboard-after-transfer');
  say('consulted', { call_id: callId, note, consult_state: consultState, complete_msg: completeMsg, shown_note: shownNote, errors });

  writeFileSync(join(ART, 'console-errors.txt'), errors.join('\n'));
  say('done', { screenshots: shots, console_errors: errors });
} catch (e) {
  for (const [who, page] of pages) {
    try { await page.screenshot({ path: join(ART, `failed-${who}.png`), fullPage: true }); } catch { /* gone */ }
  }
  say('error', { message: String(e && e.stack || e), console_errors: errors });
  process.exitCode = 1;
} finally {
  await browser.close();
}
