// Drives a progressive outbound campaign in Debian's Chromium for
// cti-server/tests/browser_campaign.rs: the agent logs in, goes available and joins the
// campaign; the server dials its leads for them. The first call meets a busy customer, the
// second lead is on the do-not-call list; the retry reaches the customer, the agent sees
// the lead and the script as it dials, talks, hangs up and records the result. Each step
// prints one JSON line ({"step": ...}) and waits for a line on stdin where the Rust test
// acts (the trunk's second answer, the customer's ears). Screenshots go to $SHOTS.
//
// Env: BASE, AGENT, PASSWORD, CAMPAIGN (its name), LEAD_NAME, RESULT (the code to record),
// WAV (the agent's fake microphone), SHOTS.
import { env, say, next, launch, watch, shot as shotOf } from './common.mjs';

const problems = [];
const browser = await launch(env.WAV);
try {
  const page = await browser.newPage();
  watch(page, 'agent', problems);
  const shot = (name) => shotOf(page, name);
  const text = (sel) => page.textContent(sel);

  await page.goto(`${env.BASE}/agent/?raw`);
  await page.fill('#login input[name=user]', env.AGENT);
  await page.fill('#login input[name=password]', env.PASSWORD);
  await page.click('#login button');
  await page.waitForSelector('#link.on', { timeout: 20000 });
  await page.click('button[data-state=available]');
  await page.waitForFunction(() => document.querySelector('#state').textContent.startsWith('available'));

  // Join: from now on the server dials for the agent.
  const row = `#campaigns tr:has-text("${env.CAMPAIGN}")`;
  await page.waitForSelector(`${row} button.campaign-join`, { timeout: 15000 });
  await shot('campaign-join');
  await page.click(`${row} button.campaign-join`);
  await page.waitForSelector(`${row} td.state:has-text("(joined)")`, { timeout: 10000 });

  // The first attempt: the customer is busy.
  await page.waitForFunction(() => document.querySelector('#campaign-status').textContent.includes('busy'), null, { timeout: 30000 });
  const busy = await text('#campaign-status');
  await shot('campaign-busy');
  say('busy', { status: busy });
  await next();

  // The retry reaches the customer: the lead and the script are on the screen as it dials.
  await page.waitForSelector('.line.talking', { timeout: 60000 });
  const lead = await text('#campaign-lead');
  await page.waitForTimeout(2000);
  await shot('campaign-talking');
  say('talking', { lead });
  await next();

  await page.keyboard.press('Alt+h');
  await page.waitForSelector('#wrapup-panel:not([hidden])', { timeout: 10000 });
  await page.selectOption('#wrapup select[name=result]', env.RESULT);
  await page.fill('#wrapup textarea[name=note]', 'renewal agreed');
  await page.click('#wrapup button[type=submit]');
  await page.waitForSelector('#wrapup-panel[hidden]', { state: 'attached', timeout: 10000 });
  await page.waitForSelector(`${row}:has-text("1 reached")`, { timeout: 15000 });
  const counts = await text(row);
  await page.click(`${row} button.campaign-leave`);
  await page.waitForSelector(`${row} button.campaign-join`, { timeout: 10000 });
  await shot('campaign-done');
  say('done', { counts, problems });
} catch (e) {
  say('failed', { error: String(e && e.stack || e), problems });
  process.exitCode = 1;
} finally {
  await browser.close();
}
