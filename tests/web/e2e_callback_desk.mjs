// Browser half of the callback-task tests in tests/e2e_web.rs: the agent
// desk's "回访任务 Callback tasks" panel and its preview dialing. Prints JSON
// lines like e2e_web.mjs; the Rust test reacts to them:
//
//   {"event":"ready"}                  desk open, logged in (and ready, FLOW=full)
//   {"event":"tasks_seen","rows":[…]}  the open tasks as the panel shows them
// FLOW=refused (what runs without POST /api/callback-tasks/{id}/call):
//   {"event":"call_refused",…}         clicking Call shows the server's error in the row
// FLOW=full (needs /call and /survey):
//   {"event":"calling_agent"}          the row says the agent's phone is being called
//   {"event":"dialling_customer"}      callback_dialing: the customer is being dialled
//   {"event":"connected",…}            call_answered: screen pop with the customer
//   {"event":"survey_saved",…}         the survey form was submitted
//   {"event":"settled",…}              callback_result reached the desk
//   {"event":"done"}                   or {"event":"error","message":…}
//
// Environment: HOTLINE_URL, AGENT_ID, AGENT_PW, TASK (the task to call),
// EXPECT_TASKS (rows to wait for), CUSTOMER_NAME, FLOW (refused | full),
// PHONE (sip: the agent has a SIP phone | browser: the desk's browser phone,
// answering by itself, with MIC_WAV as the agent's voice), ARTIFACTS,
// CHROMIUM, STEP_TIMEOUT_MS (helpers in common.mjs).

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { env, fakeMicrophone, say, session } from './common.mjs';

const FLOW = env('FLOW', 'refused');
const TASK = env('TASK');
const BROWSER_PHONE = env('PHONE', 'sip') === 'browser';
const t = await session({ args: BROWSER_PHONE ? fakeMicrophone(env('MIC_WAV')) : [] });

const text = async (loc) => ((await loc.count()) ? (await loc.first().textContent()).trim() : null);

try {
  const page = await t.page(env('AGENT_ID'));
  await t.login(page, BROWSER_PHONE ? '/desk?phone=1&autoanswer=1' : '/desk', env('AGENT_ID'), env('AGENT_PW'));
  await page.waitForSelector('#my-state .badge');
  if (BROWSER_PHONE) await page.waitForSelector('#phone-status[data-state="registered"]');
  if (FLOW === 'full') {
    await page.click('#btn-ready');
    await page.locator('#my-state [data-state="ready"]').waitFor();
  }
  say('ready');

  // The open tasks, as imported through POST /api/work-orders.
  const want = Number(env('EXPECT_TASKS', '1'));
  await page.waitForFunction((n) => document.querySelectorAll('#tasks tr.task').length >= n, want);
  const rows = [];
  for (const tr of await page.locator('#tasks tr.task').all()) {
    rows.push({
      task: await tr.getAttribute('data-task'),
      state: await tr.getAttribute('data-state'),
      customer: await text(tr.locator('.task-customer')),
      phone: await text(tr.locator('.task-phone')),
      region: await text(tr.locator('.task-region')),
      order: await text(tr.locator('.task-order')),
      kind: await text(tr.locator('.task-kind')),
      attempts: await text(tr.locator('.task-attempts')),
      call_buttons: await tr.locator('button.call-task').count(),
      call_enabled: await tr.locator('button.call-task').isEnabled(),
    });
  }
  await t.shot(page, 'c1-desk-callback-tasks');
  say('tasks_seen', { rows, mode: await text(page.locator('#tasks-mode')) });

  const row = page.locator(`#tasks tr.task[data-task="${TASK}"]`);
  if (FLOW === 'refused') {
    // 2. Without the call endpoint (or with the agent not ready, or no
    // campaign), the server's JSON error shows in the row.
    await row.locator('button.call-task').click();
    const alert = row.locator('[role="alert"]');
    await alert.waitFor();
    await page.waitForFunction((t) => !document.querySelector(`tr.task[data-task="${t}"] button.call-task`).disabled, TASK);
    await t.shot(page, 'c2-desk-call-refused');
    say('call_refused', {
      task: TASK,
      message: await text(alert),
      button_enabled: await row.locator('button.call-task').isEnabled(),
      survey_form: await page.locator('#survey-form').count(),
    });
  } else {
    // 2. Preview dialing: the agent's phone first, then the customer.
    await row.locator('button.call-task').click();
    // The row tells each step; with an auto-answering phone "calling your
    // phone" may already have given way to the next one.
    await row.locator('.task-msg', { hasText: /正在呼叫|通话中/ }).waitFor();
    say('calling_agent', { message: await text(row.locator('.task-msg')) });
    await page.locator('#survey-form').waitFor();
    // The phases pass quickly with auto-answering phones: the trail shows
    // the customer was dialled (callback_dialing) after the agent answered.
    await page.locator('#callback-status[data-seen~="customer"]').waitFor();
    say('dialling_customer', { seen: await page.locator('#callback-status').getAttribute('data-seen') });
    // 3. The customer answered: the screen pop shows them.
    await page.locator('#pop-phase', { hasText: '通话中' }).waitFor();
    await page.locator('#pop-customer-name', { hasText: env('CUSTOMER_NAME') }).waitFor();
    const callId = await page.locator('#survey-form').getAttribute('data-call');
    await t.shot(page, 'c3-desk-callback-connected');
    say('connected', {
      call_id: callId,
      pop_customer: await text(page.locator('#pop-customer-name')),
      phone_seen: BROWSER_PHONE ? await page.getAttribute('#phone-status', 'data-seen') : null,
    });
    // 4. The survey: satisfied with the technician, 不太满意 overall (a case).
    const answers = { attitude: 1, cleaned: 1, fees_ok: 2, satisfaction: 4 };
    for (const [k, v] of Object.entries(answers)) await page.check(`#q-${k}-${v}`);
    const remarks = `多收了材料费 ${Date.now()}`;
    await page.fill('#survey-remarks', remarks);
    await page.click('#survey-submit');
    await page.locator('#survey-msg.ok', { hasText: '已记录' }).waitFor();
    await t.shot(page, 'c4-desk-survey-saved');
    say('survey_saved', { call_id: callId, answers, remarks, message: await text(page.locator('#survey-msg')) });
    // 5. The attempt is settled (callback_result).
    await page.locator('#callback-status', { hasText: '结果' }).waitFor();
    await t.shot(page, 'c5-desk-callback-settled');
    if (BROWSER_PHONE) await page.waitForFunction(() => document.querySelector('#phone-status').dataset.seen.split(' ').includes('ended'));
    say('settled', {
      status: await text(page.locator('#callback-status')),
      rows_left: await page.locator(`#tasks tr.task[data-task="${TASK}"]`).count(),
      phone_seen: BROWSER_PHONE ? await page.getAttribute('#phone-status', 'data-seen') : null,
    });
  }

  writeFileSync(join(env('ARTIFACTS'), 'console-errors.txt'), t.errors.join('\n'));
  say('done', { screenshots: t.shots, console_errors: t.errors });
} catch (e) {
  await t.fail(e, 'c');
} finally {
  await t.browser.close();
}
