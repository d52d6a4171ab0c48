// Browser half of tests/e2e_web.rs: drives Debian's chromium with
// playwright-core through the supervisor wallboard, the agent desk and the
// reports page of a running hotline. The Rust test starts the server and the
// SIP peers and reacts to the JSON lines this script prints on stdout:
//
//   {"event":"ready"}             pages open and logged in; place the call
//   {"event":"waiting_seen",...}  the caller is on the wallboard's waiting list
//   {"event":"answered_seen",...} wallboard shows it answered, desk has the pop
//   {"event":"disposition_saved",...}
//   {"event":"report",...}        the inbound CSV as downloaded + its range
//   {"event":"done"}              or {"event":"error","message":...}
//
// Settings come from the environment: HOTLINE_URL, SUP_ID, SUP_PW,
// AGENT_ID, AGENT_PW, CALLER, CUSTOMER_NAME, ARTIFACTS (screenshot dir),
// CHROMIUM (default /usr/bin/chromium), STEP_TIMEOUT_MS.

import { chromium } from 'playwright-core';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
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
mkdirSync(ART, { recursive: true });

const say = (event, extra = {}) => process.stdout.write(`${JSON.stringify({ event, ...extra })}\n`);
const shots = [];
async function shot(page, name) {
  const path = join(ART, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  shots.push(path);
}

const browser = await chromium.launch({
  executablePath: env('CHROMIUM', '/usr/bin/chromium'),
  headless: true,
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
    '--autoplay-policy=no-user-gesture-required', '--allow-loopback-in-peer-connection',
    '--disable-features=WebRtcHideLocalIpsWithMdns',
  ],
});

const consoleErrors = [];
const pages = [];
async function newPage(who) {
  const ctx = await browser.newContext({ viewport: { width: 1400, height: 1000 }, acceptDownloads: true, locale: 'zh-CN' });
  const page = await ctx.newPage();
  page.setDefaultTimeout(STEP);
  page.on('pageerror', (e) => consoleErrors.push(`${who}: ${e.message}`));
  // HTTP errors the page handles itself (e.g. a 409 retried) are logged by
  // Chromium as "Failed to load resource"; only script errors count.
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) consoleErrors.push(`${who}: ${m.text()}`);
  });
  pages.push([who, page]);
  return page;
}

async function login(page, path, id, pw) {
  await page.goto(`${BASE}${path}`);
  await page.fill('#login-id', id);
  await page.fill('#login-password', pw);
  await page.click('#login-submit');
  await page.waitForSelector('#conn.live');
}

try {
  // 1. Supervisor on the wallboard, agent on the desk (both live).
  const wall = await newPage('wallboard');
  await login(wall, '/wallboard', env('SUP_ID'), env('SUP_PW'));
  await wall.waitForSelector('[data-queue="install"]');
  await shot(wall, '01-wallboard-idle');
  const desk = await newPage('desk');
  await login(desk, '/desk', env('AGENT_ID'), env('AGENT_PW'));
  await desk.waitForSelector('#my-state .badge');
  // Not ready with a reason, seen on the wallboard; then ready again.
  await desk.selectOption('#nr-reason', '午餐 lunch');
  await desk.click('#btn-not-ready');
  await desk.locator('#my-state [data-state="not_ready"]', { hasText: '午餐' }).waitFor();
  const agentRow = wall.locator(`tr[data-agent="${env('AGENT_ID')}"]`);
  await agentRow.locator('[data-state="not_ready"]', { hasText: '午餐' }).waitFor();
  await shot(wall, '02-wallboard-agent-not-ready');
  await desk.click('#btn-ready');
  await desk.locator('#my-state [data-state="ready"]').waitFor();
  await agentRow.locator('[data-state="ready"]').waitFor();
  await shot(desk, '02-desk-logged-in');
  say('ready', { not_ready_reason: '午餐 lunch', wallboard_saw_not_ready: true });

  // 2. The customer's call waits in the queue.
  const waiting = wall.locator('tr.waiting-call', { hasText: CALLER });
  await waiting.waitFor();
  const callId = await waiting.getAttribute('data-call');
  const waitingQueue = (await waiting.locator('td').nth(1).textContent()).trim();
  const waitingCount = (await wall.locator('[data-queue="install"] .q-waiting').textContent()).trim();
  await shot(wall, '03-wallboard-waiting');
  // A wallboard opened now (here: reloaded) lists the caller from the snapshot.
  await wall.reload();
  await wall.waitForSelector('#conn.live');
  await wall.locator(`tr.waiting-call[data-call="${callId}"]`).waitFor();
  const waitingAfterReload = true;
  say('waiting_seen', { call_id: callId, queue: waitingQueue, waiting_count: waitingCount, after_reload: waitingAfterReload });

  // 3. The agent's softphone answers: live on the wallboard, pop on the desk.
  const live = wall.locator(`tr.live-call[data-call="${callId}"][data-state="answered"]`);
  await live.waitFor();
  const liveAgent = (await live.locator('td.agent').textContent()).trim();
  await wall.locator(`tr[data-agent="${env('AGENT_ID')}"] [data-state="on_call"]`).waitFor();
  const waitingGone = (await wall.locator(`tr.waiting-call[data-call="${callId}"]`).count()) === 0;
  await shot(wall, '04-wallboard-answered');

  await desk.locator('#pop-phase', { hasText: '通话中' }).waitFor();
  await desk.locator('#pop-customer-name', { hasText: env('CUSTOMER_NAME') }).waitFor();
  const pop = {
    caller: (await desk.locator('#pop-caller').textContent()).trim(),
    customer: (await desk.locator('#pop-customer-name').textContent()).trim(),
    orders: await desk.locator('#pop-orders tbody tr[data-order]').evaluateAll((rows) => rows.map((r) => r.dataset.order)),
    case_owners: await desk.locator('#pop-cases .case-owner').allTextContents(),
    previous_calls: await desk.locator('#pop-calls tbody tr[data-call]').count(),
    recording_links: await desk.locator('#pop-calls .recording-link').count(),
    script_title: (await desk.locator('#script-title').textContent()).trim(),
    recording_seconds: await (async () => {
      await desk.click('#pop-calls .recording-link');
      const audio = desk.locator('#pop-calls audio.recording');
      await audio.waitFor();
      return audio.evaluate((a) => new Promise((resolve) => {
        if (a.readyState >= 1) resolve(a.duration);
        else a.addEventListener('loadedmetadata', () => resolve(a.duration), { once: true });
      }));
    })(),
    my_state: await desk.locator('#my-state .badge').getAttribute('data-state'),
  };
  // Reloading the desk mid-call brings the pop back (from the snapshot).
  await desk.reload();
  await desk.locator('#pop-customer-name', { hasText: env('CUSTOMER_NAME') }).waitFor();
  await desk.locator('#pop-phase', { hasText: '通话中' }).waitFor();
  await shot(desk, '05-desk-screen-pop');
  // A complaint registered during the call (owned by this agent, 5 working days).
  const complaint = `外机噪音仍未解决 ${Date.now()}`;
  await desk.fill('#complaint-dept', '安装部');
  await desk.fill('#complaint-text', complaint);
  await desk.click('#complaint');
  await desk.locator('#complaint-msg.ok').waitFor();
  const openCases = await desk.locator('#pop-cases tbody tr[data-case]').count();
  say('answered_seen', { call_id: callId, agent: liveAgent, waiting_gone: waitingGone, pop, complaint, open_cases: openCases });

  // 4. After the customer hangs up the agent records the outcome.
  await desk.locator('#pop-phase', { hasText: '已结束' }).waitFor();
  await desk.selectOption('#disposition', 'repair_booked');
  const notes = `网页坐席台备注 ${Date.now()}`;
  await desk.fill('#notes', notes);
  await desk.click('#save-disposition');
  await desk.locator('#disposition-msg.ok', { hasText: '已保存' }).waitFor();
  await shot(desk, '06-desk-disposition-saved');
  // The wallboard saw the end too.
  await wall.locator(`tr.live-call[data-call="${callId}"][data-state="ended"]`).waitFor();
  say('disposition_saved', { call_id: callId, disposition: 'repair_booked', notes });

  // 5. Reports: the inbound CSV as a supervisor downloads it.
  const rep = wall;
  await rep.goto(`${BASE}/reports?kind=inbound`);
  await rep.waitForSelector('#report[data-loaded="inbound"] #report-table');
  const json = await rep.evaluate(async () => {
    const s = JSON.parse(sessionStorage.getItem('hotline.session'));
    const r = await fetch('/api/reports/inbound', { headers: { Authorization: `Bearer ${s.token}` } });
    return r.json();
  });
  const [download] = await Promise.all([rep.waitForEvent('download'), rep.click('#csv')]);
  const csvPath = join(ART, 'inbound.csv');
  await download.saveAs(csvPath);
  const csv = readFileSync(csvPath, 'utf8');
  await shot(rep, '07-reports-inbound');
  await rep.emulateMedia({ media: 'print' });
  await shot(rep, '08-reports-inbound-print');
  await rep.emulateMedia({ media: 'screen' });
  // The daily callback report, as shown and as downloaded.
  await rep.click('#tab-daily');
  await rep.waitForSelector('#report[data-loaded="daily"] #report-table');
  await shot(rep, '09-reports-daily');
  const daily = await rep.evaluate(async () => {
    const s = JSON.parse(sessionStorage.getItem('hotline.session'));
    const r = await fetch('/api/reports/daily', { headers: { Authorization: `Bearer ${s.token}` } });
    return r.json();
  });
  const [dailyDownload] = await Promise.all([rep.waitForEvent('download'), rep.click('#csv')]);
  const dailyPath = join(ART, 'daily.csv');
  await dailyDownload.saveAs(dailyPath);
  for (const k of ['weekly', 'monthly', 'complaints']) {
    await rep.click(`#tab-${k}`);
    await rep.waitForSelector(`#report[data-loaded="${k}"] #report-table`);
    await shot(rep, `10-reports-${k}`);
  }
  say('report', {
    csv, from: json.from, to: json.to, suggested: download.suggestedFilename(),
    daily_csv: readFileSync(dailyPath, 'utf8'), daily_from: daily.from, daily_to: daily.to,
  });

  writeFileSync(join(ART, 'console-errors.txt'), consoleErrors.join('\n'));
  say('done', { screenshots: shots, console_errors: consoleErrors });
} catch (e) {
  for (const [who, page] of pages) {
    try { await shot(page, `failed-${who}`); } catch { /* page gone */ }
  }
  say('error', { message: String(e && e.stack || e), console_errors: consoleErrors });
  process.exitCode = 1;
} finally {
  await browser.close();
}
