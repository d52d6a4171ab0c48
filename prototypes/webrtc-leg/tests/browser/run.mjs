// Drives headless Chromium through the test page(s) and prints one JSON line
// per page: `RESULT {...}`. Usage: node run.mjs MIC_WAV URL [URL...]
// Exits non-zero only when the browser itself cannot be driven; the Rust
// test judges the results.
import { chromium } from 'playwright-core';

const [mic, ...urls] = process.argv.slice(2);
if (!mic || urls.length === 0) {
  console.error('usage: node run.mjs MIC_WAV URL [URL...]');
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
    `--use-file-for-fake-audio-capture=${mic}`,
    '--autoplay-policy=no-user-gesture-required',
    '--allow-loopback-in-peer-connection',
    '--disable-features=WebRtcHideLocalIpsWithMdns',
  ],
});
try {
  for (const url of urls) {
    const context = await browser.newContext({ permissions: ['microphone'] });
    const page = await context.newPage();
    page.on('console', m => console.error(`[page] ${m.text()}`));
    page.on('pageerror', e => console.error(`[page error] ${e}`));
    await page.goto(url);
    try {
      await page.waitForFunction(
        () => window.result && (window.result.phase === 'done' || window.result.phase === 'error'),
        null, { timeout: 30000 });
    } catch (e) {
      console.error(`timeout on ${url}: ${e}`);
    }
    const result = await page.evaluate(() => window.result);
    console.log('RESULT ' + JSON.stringify({ url, ...result }));
    await context.close();
  }
} finally {
  await browser.close();
}
