// Drives click-to-dial in Debian's Chromium for cti-server/tests/browser_click_to_dial.rs:
// the agent calls a lead from the work list (the trunk is sipp, echoing the audio), holds,
// resumes, hangs up, wraps up with "do not call again", and then finds the number refused.
// Each step prints one JSON line ({"step": ...}) and, where the Rust test measures what the
// customer hears, waits for a line on stdin before going on. Screenshots go to $SHOTS.
//
// Env: BASE, AGENT, PASSWORD, LEAD_NAME, DNC_NUMBER (the lead's number as an agent would
// type it), WAV (the agent's fake microphone), SHOTS.
import { env, say, next, launch, watch, shot as shotOf } from './common.mjs';

const problems = [];
const browser = await launch(env.WAV);
try {
  const page = await browser.newPage();
  watch(page, 'agent', problems);
  const stats = () => page.evaluate(() => window.softphoneStats());
  const shot = (name) => shotOf(page, name);

  await page.goto(`${env.BASE}/agent/?raw`);
  await page.fill('#login input[name=user]', env.AGENT);
  await page.fill('#login input[name=password]', env.PASSWORD);
  await page.click('#login button');
  await page.waitForSelector('#link.on', { timeout: 20000 });

  // The lead is on the work list (its first contact is due): call it from there.
  const row = `#worklist tr:has-text("${env.LEAD_NAME}") button.call-lead`;
  await page.waitForSelector(row, { timeout: 15000 });
  await shot('dial-worklist');
  await page.click(row);
  await page.waitForFunction((name) => document.querySelector('#pop').textContent.includes(name), env.LEAD_NAME, { timeout: 10000 });
  const pop = await page.textContent('#pop');
  await page.waitForSelector('.line.talking', { timeout: 20000 });
  await page.waitForTimeout(2500);
  // Book a showroom visit from the pop: tomorrow at 10:00.
  const t = new Date(Date.now() + 24 * 3600 * 1000);
  const pad = (n) => String(n).padStart(2, '0');
  const at = `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())}T10:00`;
  await page.fill('#pop .book-visit input[name=at]', at);
  await page.fill('#pop .book-visit input[name=place]', 'Showroom Mitte');
  await page.click('#pop .book-visit button');
  await page.waitForSelector('#pop .booked', { timeout: 5000 });
  const booked = await page.textContent('#pop .booked');
  await shot('dial-talking');
  say('talking', { pop, booked, stats: await stats() });
  await next();

  await page.click('.line.talking .hold');
  await page.waitForSelector('.line .pill.wait', { timeout: 5000 });
  say('held', { line: await page.textContent('.line') });
  await next();
  await page.click('.line .hold');
  await page.waitForSelector('.line .pill.on', { timeout: 5000 });
  say('resumed');
  await next();

  await page.keyboard.press('Alt+h'); // the hang-up shortcut
  await page.waitForSelector('#wrapup-panel:not([hidden])', { timeout: 10000 });
  const status = await page.textContent('#phone-status');
  await page.selectOption('#wrapup select[name=result]', 'do_not_call');
  await page.fill('#wrapup textarea[name=note]', 'please no more calls');
  await shot('dial-wrapup');
  await page.click('#wrapup button[type=submit]');
  await page.waitForSelector('#wrapup-panel[hidden]', { state: 'attached', timeout: 10000 });

  // The number is on the do-not-call list now: typed in by hand, it is refused.
  await page.fill('#dial input[name=number]', env.DNC_NUMBER);
  await page.click('#dial button');
  await page.waitForFunction(() => document.querySelector('#error').textContent.includes('do-not-call'), null, { timeout: 10000 });
  const refusal = await page.textContent('#error');
  await shot('dial-refused');

  // The customer came: the handover to the direct-sales person, from the visits table.
  const visit = '#appointments tr:has-text("Showroom Mitte")';
  await page.waitForSelector(`${visit} button.shown`, { timeout: 10000 });
  await page.fill(`${visit} input.receiver`, 'Max Verkauf');
  await page.click(`${visit} button.shown`);
  await page.waitForFunction((sel) => {
    const row = document.querySelector('#appointments tbody tr');
    return row && row.querySelector('.state').textContent === 'shown to Max Verkauf';
  }, visit, { timeout: 10000 });
  await shot('dial-handover');
  say('done', { status, refusal, problems });
} catch (e) {
  say('failed', { error: String(e && e.stack || e), problems });
  process.exitCode = 1;
} finally {
  await browser.close();
}
