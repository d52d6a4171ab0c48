// The browser phone's other controls, driven for tests/e2e_browser_desk.rs:
// a microphone the agent blocked, a supervisor on the wallboard listening,
// whispering and barging in on a browser agent, mute, choosing another
// microphone during a call, and a blind transfer with a note from the desk.
//
// Chromium's fake microphones all play MIC_WAV (the agent's voice). Only
// the agent's context may use them; the other desk's context is refused
// the microphone, as when an agent clicked "Block".
//
// Prints JSON lines the Rust test waits on (times are Date.now() in ms):
//   ready                              wallboard and the blocked desk are up
//   mic_denied {state, seen, error, text}
//                                      the blocked desk's answer failed
//   in_call {caller, codec, hearing_from}
//                                      the agent answered call 1; what the
//                                      page receives is recorded from then on
//   monitored {listen_at, whisper_at, barge_at, stop_at}
//   muted {at, until, status}          the agent muted, then unmuted
//   mic_chosen {label, device_id, sent_label, at}
//   heard {path, from}                 what the agent heard in call 1 (WAV)
//   ended {n, seen}                    call 1 ended (the customer hung up)
//   transferred {note, seen, status}   call 2 handed to TRANSFER_TO; the
//                                      agent's phone was hung up by hotline
//   consulted {note, from, consult_at, complete_at, path, seen}
//                                      call 3: the agent consulted TRANSFER_TO
//                                      on the desk, then handed the caller
//                                      over; what the agent heard (WAV)
//   consulted_in {seen}                call 4: a colleague's customer handed
//                                      to this browser agent after a
//                                      consultation; the call has ended
//   done

import { join } from 'node:path';
import {
  denyMicrophone, env, fakeMicrophone, say, sentCodec, session, startHearing, stopHearing,
  trackPeerConnections,
} from './common.mjs';

const BASE = env('HOTLINE_URL');
const s = await session({ args: fakeMicrophone(env('MIC_WAV'), { perContext: true }) });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const stateIs = (page, state, timeout) =>
  page.waitForSelector(`#phone-status[data-state="${state}"]`, { timeout });
const seen = (page) => page.getAttribute('#phone-status', 'data-seen');
const passed = (page, state, timeout) => page.waitForFunction(
  (st) => (document.querySelector('#phone-status')?.dataset.seen ?? '').split(' ').includes(st),
  state, { timeout });
const text = async (loc) => ((await loc.textContent()) || '').trim();

try {
  // The supervisor's wallboard (their phone is a baresip of the Rust side).
  const wall = await s.page('wallboard');
  await s.login(wall, '/wallboard', env('SUP_ID'), env('SUP_PW'));

  // A desk whose microphone is blocked; its phone answers by itself.
  const blocked = await s.page('blocked');
  await denyMicrophone(blocked, new URL(BASE).origin);
  await s.login(blocked, '/desk?phone=1&autoanswer=1', env('BLOCKED_ID'), env('BLOCKED_PW'));
  await stateIs(blocked, 'registered', 30000);

  // The agent's desk, logged in with the phone still off.
  const agent = await s.page('agent', { permissions: ['microphone'] });
  await trackPeerConnections(agent);
  await s.login(agent, '/desk?autoanswer=1', env('AGENT_ID'), env('AGENT_PW'));
  say('ready');

  // Call 1 rings the blocked desk: answering fails with a clear message and
  // the call keeps ringing.
  await stateIs(blocked, 'ringing', 60000);
  const micError = blocked.locator('#phone-mic-error:not(.hidden)');
  await micError.waitFor();
  await sleep(500);
  await s.shot(blocked, '1-microphone-blocked');
  say('mic_denied', {
    state: await blocked.getAttribute('#phone-status', 'data-state'),
    seen: await seen(blocked),
    error: await micError.getAttribute('data-error'),
    text: await text(micError),
  });

  // The agent switches the phone on; the blocked agent rejects the call and
  // switches theirs off, so the call goes to the agent.
  await agent.check('#phone-enable');
  await stateIs(agent, 'registered', 30000);
  await blocked.click('#phone-reject');
  await blocked.uncheck('#phone-enable');
  await stateIs(agent, 'incall', 60000);
  const caller = await agent.textContent('#phone-status');
  const hearingFrom = await startHearing(agent);
  say('in_call', { caller, codec: await sentCodec(agent), hearing_from: hearingFrom });

  // The supervisor listens, whispers, barges in and stops, 4 s each.
  const row = wall.locator('tr.live-call[data-state="answered"]', { hasText: env('CALLER1') });
  const cell = row.locator('td.monitor');
  const mode = async (m) => {
    await cell.locator(`button[data-mode="${m}"]`).click();
    await cell.locator(`.monitor-mode[data-mode="${m}"]`).waitFor();
    return Date.now();
  };
  const listenAt = await mode('listen');
  await sleep(4000);
  const whisperAt = await mode('whisper');
  await sleep(4000);
  await s.shot(wall, '2-wallboard-whisper');
  const bargeAt = await mode('barge');
  await sleep(4000);
  await cell.locator('button[data-mode="stop"]').click();
  await cell.locator('.monitor-msg.ok', { hasText: '已结束' }).waitFor();
  const stopAt = Date.now();
  say('monitored', { listen_at: listenAt, whisper_at: whisperAt, barge_at: bargeAt, stop_at: stopAt });
  await sleep(1500);

  // Mute for 3 s.
  await agent.click('#phone-mute');
  await agent.waitForSelector('#phone-mute:has-text("取消静音")');
  const mutedAt = Date.now();
  const status = await agent.textContent('#phone-status');
  await s.shot(agent, '3-muted');
  await sleep(3000);
  await agent.click('#phone-mute');
  await agent.waitForSelector('#phone-mute:has-text("静音 Mute")');
  say('muted', { at: mutedAt, until: Date.now(), status });
  await sleep(1500);

  // Another microphone, chosen in the panel during the call.
  const LABEL = 'Fake Audio Input 2';
  await agent.waitForFunction((l) => [...document.querySelectorAll('#phone-mic option')].some((o) => o.textContent === l), LABEL);
  const deviceId = await agent.$eval('#phone-mic', (sel, l) => [...sel.options].find((o) => o.textContent === l).value, LABEL);
  await agent.selectOption('#phone-mic', deviceId);
  await agent.waitForFunction((id) => window.__pcs.at(-1).getSenders()
    .some((x) => x.track?.kind === 'audio' && x.track.getSettings().deviceId === id), deviceId);
  const chosenAt = Date.now();
  const sentLabel = await agent.evaluate(() => window.__pcs.at(-1).getSenders().find((x) => x.track?.kind === 'audio').track.label);
  say('mic_chosen', { label: LABEL, device_id: deviceId, sent_label: sentLabel, at: chosenAt });
  await sleep(4000);

  const heardPath = join(env('ARTIFACTS'), 'agent-heard-1.wav');
  await stopHearing(agent, heardPath);
  say('heard', { path: heardPath, from: hearingFrom });
  await passed(agent, 'ended', 60000);
  say('ended', { n: 1, seen: await seen(agent) });

  // Call 2: a blind transfer with a note from the desk.
  await stateIs(agent, 'incall', 90000);
  await agent.locator('#pop-phase', { hasText: '通话中' }).waitFor();
  const note = `客户的热水器漏水,已拍照,请上门 ${Date.now()}`;
  await agent.selectOption('#transfer-to', `agent:${env('TRANSFER_TO')}`);
  await agent.fill('#transfer-note', note);
  await sleep(2000);
  await agent.click('#transfer');
  await agent.locator('#transfer-msg.ok').waitFor();
  await passed(agent, 'ended', 30000);
  await s.shot(agent, '4-transferred');
  say('transferred', { note, seen: await seen(agent), status: await agent.textContent('#phone-status') });

  // Call 3: an attended transfer: consult the colleague, then hand over.
  await stateIs(agent, 'incall', 90000);
  await agent.locator('#pop-phase', { hasText: '通话中' }).waitFor();
  await agent.locator('#consult:not([disabled])').waitFor();
  const from3 = await startHearing(agent);
  await sleep(2000);
  const consultNote = `客户要求改约周六上午安装 ${Date.now()}`;
  await agent.selectOption('#consult-to', env('TRANSFER_TO'));
  await agent.fill('#consult-note', consultNote);
  await agent.click('#consult');
  await agent.locator('#consult-state[data-phase="talking"]').waitFor();
  const consultAt = Date.now();
  await s.shot(agent, '5-consulting');
  await sleep(4000);
  await agent.click('#consult-complete');
  await agent.locator('#consult-msg.ok').waitFor();
  const completeAt = Date.now();
  await passed(agent, 'ended', 30000);
  const heard3 = join(env('ARTIFACTS'), 'agent-heard-3.wav');
  await stopHearing(agent, heard3);
  say('consulted', {
    note: consultNote, from: from3, consult_at: consultAt, complete_at: completeAt, path: heard3, seen: await seen(agent),
  });

  // Call 4: a colleague consults this agent (the phone rings and answers by
  // itself) and hands the customer over; the customer hangs up.
  await stateIs(agent, 'incall', 120000);
  await passed(agent, 'ended', 120000);
  say('consulted_in', { seen: await seen(agent) });
  if (s.errors.length) throw new Error(`script errors: ${s.errors.join('; ')}`);
  say('done');
} catch (e) {
  await s.fail(e, 'desk');
} finally {
  await s.browser.close();
}
