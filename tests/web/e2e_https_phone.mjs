// The desk over HTTPS (self-signed certificate): the browser phone
// registers over wss:/sip. Driven by tests/e2e_https.rs.
//
// Prints JSON lines: registered {url, seen}, done.

import { env, say, session } from './common.mjs';

const s = await session({
  args: ['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream'],
});
try {
  const page = await s.page('agent', { ignoreHTTPSErrors: true });
  await s.login(page, '/desk?phone=1', env('AGENT_ID'), env('AGENT_PW'));
  await page.waitForSelector('#phone-status[data-state="registered"]', { timeout: 30000 });
  await s.shot(page, 'registered-over-wss');
  say('registered', {
    url: page.url(),
    seen: await page.getAttribute('#phone-status', 'data-seen'),
    secure: await page.evaluate(() => window.isSecureContext),
  });
  if (s.errors.length) throw new Error(`script errors: ${s.errors.join('; ')}`);
  say('done');
} catch (e) {
  await s.fail(e, 'https');
} finally {
  await s.browser.close();
}
