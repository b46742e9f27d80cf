// Drives the admin's console in Debian's Chromium for cti-server/tests/browser_admin.rs:
// views a flow, uploads a prompt and plays it, tries a broken upload, reloads the flows
// (fine, then broken on disk). Prints one JSON line per step; screenshots go to $SHOTS.
//
// Env: BASE, ADMIN, PASSWORD, PROMPT_WAV (a good file), BAD_FILE (not audio), SHOTS.
import { env, say, next, launch, watch, shot as shotOf } from './common.mjs';

const problems = [];
const browser = await launch();
try {
  const page = await browser.newPage();
  watch(page, 'admin', problems);
  const shot = (name) => shotOf(page, name);

  await page.goto(`${env.BASE}/agent/`);
  await page.fill('#login input[name=user]', env.ADMIN);
  await page.fill('#login input[name=password]', env.PASSWORD);
  await page.click('#login button');
  await page.waitForSelector('#admin-panel:not([hidden])', { timeout: 20000 });
  await page.waitForSelector('#flows tbody tr');
  const flows = await page.$$eval('#flows tbody tr td:first-child', (tds) => tds.map((t) => t.textContent));
  await page.click('#flows tr[data-flow="menu"] .view-flow');
  const source = await page.textContent('#flow-source');
  await shot('admin-flows');
  say('flows', { flows, source });

  await page.fill('#prompt-upload input[name=name]', 'spring-offer');
  await page.setInputFiles('#prompt-upload input[name=file]', env.PROMPT_WAV);
  await page.click('#prompt-upload button');
  await page.waitForSelector('#prompts tr[data-prompt="spring-offer"]', { timeout: 10000 });
  const stored = await page.textContent('#flows-result');
  const row = await page.textContent('#prompts tr[data-prompt="spring-offer"]');
  await page.click('#prompts tr[data-prompt="spring-offer"] button');
  await page.waitForFunction(() => {
    const a = document.querySelector('#playback');
    return a && !a.hidden && a.src.startsWith('blob:') && a.duration > 0;
  }, null, { timeout: 10000 });
  const duration = await page.evaluate(() => document.querySelector('#playback').duration);
  await shot('admin-prompt-uploaded');
  say('uploaded', { stored, row, duration });

  const before = problems.length;
  await page.fill('#prompt-upload input[name=name]', 'broken');
  await page.setInputFiles('#prompt-upload input[name=file]', env.BAD_FILE);
  await page.click('#prompt-upload button');
  await page.waitForSelector('#error:not([hidden])');
  const refused = await page.textContent('#error');
  const brokenListed = await page.$('#prompts tr[data-prompt="broken"]') !== null;
  problems.splice(before); // the browser logs the 400 it was given, as it should
  say('refused', { refused, brokenListed });

  await page.click('#flows-reload');
  await page.waitForSelector('#flows-result.ok', { timeout: 10000 });
  const reloaded = await page.textContent('#flows-result');
  say('reloaded', { reloaded });
  await next(); // the test breaks a flow file on disk
  const before2 = problems.length;
  await page.click('#flows-reload');
  await page.waitForSelector('#flows-result.bad', { timeout: 10000 });
  const errors = await page.textContent('#flows-result');
  problems.splice(before2); // the 422
  await shot('admin-reload-refused');
  say('done', { errors, problems });
} catch (e) {
  say('failed', { error: String(e && e.stack || e), problems });
  process.exitCode = 1;
} finally {
  await browser.close();
}
