// The browser agent of the soak (bench/browser_soak.py): one Chromium desk
// page, kept for the whole run. Chromium's fake microphone plays MIC_WAV;
// the desk is opened with ?phone=1&autoanswer=1, so it registers over /sip
// and answers every offered call by itself.
//
// Commands arrive as JSON lines on stdin, one call at a time:
//   {"cmd": "call", "n": 7, "hangup": "customer"|"agent", "talk_ms": 2000}
//       arm for call n (replied `armed` at once): wait for the next call to
//       reach `incall`, and for "agent" click #phone-hangup after talk_ms;
//       then wait until it has ended
//   {"cmd": "quit"}
// and are answered with JSON lines on stdout (tests/web/common.mjs `say`):
//   registered
//   armed {n}
//   in_call {n, at}                   at: Date.now() when incall was seen
//   ended {n, at, seen, text}         seen: the call's data-seen trail
//   call_failed {n, stage, seen, text} no incall / no end within the limit
//   done {pcs, console_errors}        pcs: RTCPeerConnections the page made;
//                                     console_errors: the page's script errors
//   error {message}                   the script failed (exit code 1)
//
// Calls are told apart by counting transitions of #phone-status data-state
// into `incall` and `ended` (a MutationObserver), not by the trail alone:
// a new call resets data-seen, so a trail can be mistaken for the last one's.

import { createInterface } from 'node:readline';
import { env, fakeMicrophone, say, session } from '../tests/web/common.mjs';

const STEP_MS = Number(env('SOAK_STEP_MS', '30000'));

const s = await session({ args: fakeMicrophone(env('MIC_WAV')) });

/** Counts the page's calls: transitions into incall / ended, and peer connections. */
const installCounters = (page) => page.evaluate(() => {
  const box = document.querySelector('#phone-status');
  const c = { incall: 0, ended: 0, last: box.dataset.state };
  window.__soak = c;
  new MutationObserver(() => {
    const st = box.dataset.state;
    if (st === c.last) return;
    c.last = st;
    if (st === 'incall') c.incall += 1;
    if (st === 'ended') c.ended += 1;
  }).observe(box, { attributes: true, attributeFilter: ['data-state'] });
});

const counters = (page) => page.evaluate(() => ({ incall: window.__soak.incall, ended: window.__soak.ended }));
const status = async (page) => ({
  seen: await page.getAttribute('#phone-status', 'data-seen'),
  text: await page.textContent('#phone-status'),
});

/** Waits until counter `key` is above `base`; false after STEP_MS. */
const above = (page, key, base) => page.waitForFunction(
  ([k, b]) => window.__soak[k] > b, [key, base], { timeout: STEP_MS, polling: 50 },
).then(() => true, () => false);

async function call(page, cmd) {
  const base = await counters(page);
  say('armed', { n: cmd.n });
  if (!(await above(page, 'incall', base.incall))) {
    say('call_failed', { n: cmd.n, stage: 'incall', ...(await status(page)) });
    return;
  }
  say('in_call', { n: cmd.n, at: Date.now() });
  if (cmd.hangup === 'agent') {
    await page.waitForTimeout(cmd.talk_ms);
    await page.click('#phone-hangup', { timeout: STEP_MS });
  }
  if (!(await above(page, 'ended', base.ended))) {
    say('call_failed', { n: cmd.n, stage: 'ended', ...(await status(page)) });
    return;
  }
  say('ended', { n: cmd.n, at: Date.now(), ...(await status(page)) });
}

try {
  const page = await s.page('agent');
  await page.addInitScript(() => {
    const Original = window.RTCPeerConnection;
    window.__pcs = 0;
    window.RTCPeerConnection = class extends Original {
      constructor(...a) { super(...a); window.__pcs += 1; }
    };
  });
  await s.login(page, '/desk?phone=1&autoanswer=1', env('AGENT_ID'), env('AGENT_PW'));
  await page.waitForSelector('#phone-status[data-state="registered"]', { timeout: 30000 });
  await installCounters(page);
  say('registered');
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (!line.trim()) continue;
    const cmd = JSON.parse(line);
    if (cmd.cmd === 'quit') break;
    if (cmd.cmd === 'call') await call(page, cmd);
  }
  await s.shot(page, 'soak-end');
  say('done', { pcs: await page.evaluate(() => window.__pcs), console_errors: s.errors });
} catch (e) {
  await s.fail(e, 'soak');
} finally {
  await s.browser.close();
}
