// The agent desk's browser softphone in Chromium, driven for
// tests/e2e_browser_phone.rs. Chromium's fake microphone plays MIC_WAV (the
// agent's voice); the desk is opened with ?phone=1&autoanswer=1, so it
// registers over /sip and answers offered calls by itself.
//
// Prints JSON lines the Rust test waits on:
//   registered                           the phone is registered
//   in_call {n, caller, peak_hz}         call n answered; peak_hz: the loudest
//                                        frequency the page heard from the call
//   ended {n, seen}                      call n ended by the customer
//   held {n} / resumed {n}               hold and resume through the desk
//   hung_up {n, seen}                    the agent hung up call n from the desk
//   crashed {n, at}                      the page crashed in call n (Date.now())
//   done
//
// Call 1: the customer hangs up. Call 2: the agent holds, resumes, presses 5
// on the keypad and hangs up. Call 3: the page crashes mid-call (no BYE).

import { env, fakeMicrophone, say, session, trackPeerConnections } from './common.mjs';

const s = await session({ args: fakeMicrophone(env('MIC_WAV')) });

/** Resolves once #phone-status has data-state `state` (for lasting states). */
const stateIs = (page, state, timeout) =>
  page.waitForSelector(`#phone-status[data-state="${state}"]`, { timeout });

/** Resolves once this call's trail (data-seen) has passed through `state`. */
const passed = (page, state, timeout) => page.waitForFunction(
  (st) => (document.querySelector('#phone-status')?.dataset.seen ?? '').split(' ').includes(st),
  state, { timeout });

/**
 * The loudest frequency (Hz) of what the page receives on its latest call,
 * over `ms`, once the connection is up.
 */
const peakHeard = (page, ms) => page.evaluate(async (ms) => {
  const pc = window.__pcs.at(-1);
  if (!pc) return null;
  for (let i = 0; i < 100 && pc.connectionState !== 'connected'; i++) await new Promise((r) => setTimeout(r, 100));
  const track = pc.getReceivers().map((r) => r.track).find((t) => t && t.kind === 'audio');
  if (!track) return null;
  const ctx = new AudioContext();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 8192;
  ctx.createMediaStreamSource(new MediaStream([track])).connect(analyser);
  const bins = new Float32Array(analyser.frequencyBinCount);
  const sum = new Float32Array(analyser.frequencyBinCount);
  const end = Date.now() + ms;
  while (Date.now() < end) {
    await new Promise((r) => setTimeout(r, 100));
    analyser.getFloatFrequencyData(bins);
    for (let i = 0; i < bins.length; i++) sum[i] += Math.pow(10, bins[i] / 10);
  }
  let best = 1;
  for (let i = 2; i < sum.length; i++) if (sum[i] > sum[best]) best = i;
  await ctx.close();
  return (best * ctx.sampleRate) / analyser.fftSize;
}, ms);

try {
  const page = await s.page('agent');
  await trackPeerConnections(page);
  await s.login(page, '/desk?phone=1&autoanswer=1', env('AGENT_ID'), env('AGENT_PW'));
  await stateIs(page, 'registered', 30000);
  await s.shot(page, '1-registered');
  say('registered');

  // Call 1: answered automatically; the customer hangs up.
  await stateIs(page, 'incall', 90000);
  let caller = await page.textContent('#phone-status');
  const peak1 = await peakHeard(page, 3000);
  await s.shot(page, '2-in-call');
  say('in_call', { n: 1, caller, peak_hz: peak1 });
  await passed(page, 'ended', 90000);
  say('ended', { n: 1, seen: await page.getAttribute('#phone-status', 'data-seen') });

  // Call 2: hold, resume, a key, and the agent hangs up.
  await stateIs(page, 'incall', 90000);
  caller = await page.textContent('#phone-status');
  say('in_call', { n: 2, caller, peak_hz: await peakHeard(page, 2000) });
  await page.click('#phone-hold');
  await page.waitForSelector('#phone-hold:has-text("恢复")');
  say('held', { n: 2 });
  await page.waitForTimeout(2500);
  await s.shot(page, '3-held');
  await page.click('#phone-hold');
  await page.waitForSelector('#phone-hold:has-text("保持")');
  say('resumed', { n: 2 });
  await page.click('#phone-keypad button:has-text("5")');
  await page.waitForTimeout(1500);
  await page.click('#phone-hangup');
  await passed(page, 'ended', 30000);
  await s.shot(page, '4-hung-up');
  say('hung_up', { n: 2, seen: await page.getAttribute('#phone-status', 'data-seen') });
  if (s.errors.length) throw new Error(`script errors: ${s.errors.join('; ')}`);

  // Call 3: the agent's page crashes: no BYE, the renderer and its
  // RTCPeerConnection are gone at once.
  await stateIs(page, 'incall', 90000);
  say('in_call', { n: 3, caller: await page.textContent('#phone-status'), peak_hz: await peakHeard(page, 2000) });
  await page.waitForTimeout(2000);
  const cdp = await page.context().newCDPSession(page);
  const at = Date.now();
  cdp.send('Page.crash').catch(() => { /* no answer from a crashed page */ });
  say('crashed', { n: 3, at });
  await new Promise((r) => setTimeout(r, 1000));
  say('done');
} catch (e) {
  await s.fail(e, 'phone');
} finally {
  await s.browser.close();
}
