// Drives the agent console in Debian's Chromium for cti-server/tests/browser_softphone.rs.
// Each step prints one JSON line ({"step": ...}) and, where the Rust test measures what the
// caller hears, waits for a line on stdin before going on. Screenshots go to $SHOTS.
//
// Env: BASE (http://127.0.0.1:PORT), AGENT, PASSWORD, LEAD_NAME, WAV (the agent's fake
// microphone), SUPERVISOR, SUPERVISOR_PASSWORD, SUPERVISOR_WAV, SHOTS.
import { env, say, next, launch, watch } from './common.mjs';

const problems = [];

// One browser per person: each has its own fake microphone.
const browser = await launch(env.WAV);
const supBrowser = await launch(env.SUPERVISOR_WAV);
try {
  const page = await browser.newPage();
  watch(page, 'agent', problems);
  const stats = () => page.evaluate(() => window.softphoneStats());
  const shot = (name, p = page) => p.screenshot({ path: `${env.SHOTS}/${name}.png`, fullPage: true });

  // Raw audio (no echo cancellation, noise suppression or gain): the test measures a tone.
  await page.goto(`${env.BASE}/agent/?raw`);
  await page.fill('#login input[name=user]', env.AGENT);
  await page.fill('#login input[name=password]', 'wrong password');
  await page.click('#login button');
  await page.waitForSelector('#error:not([hidden])');
  const refused = await page.textContent('#error');
  await shot('agent-login-refused');
  problems.splice(0); // the 401 of the wrong password is logged by the browser, as it should
  await page.fill('#login input[name=password]', env.PASSWORD);
  await page.click('#login button');
  await page.waitForSelector('#link.on', { timeout: 20000 });
  await page.waitForSelector('#login', { state: 'hidden' });
  await page.click('button[data-state=available]');
  await page.waitForFunction(() => document.querySelector('#state').textContent.startsWith('available'));
  await shot('agent-ready');

  // The supervisor's console, on the floor view.
  const sup = await supBrowser.newPage();
  watch(sup, 'supervisor', problems);
  const supStats = () => sup.evaluate(() => window.softphoneStats());
  await sup.goto(`${env.BASE}/agent/?raw`);
  await sup.fill('#login input[name=user]', env.SUPERVISOR);
  await sup.fill('#login input[name=password]', env.SUPERVISOR_PASSWORD);
  await sup.click('#login button');
  await sup.waitForSelector('#link.on', { timeout: 20000 });
  await sup.waitForSelector('#wall-panel:not([hidden])');
  say('ready', { refused });
  await next();

  await page.waitForSelector('.line.ringing', { timeout: 60000 });
  await page.waitForFunction((name) => document.querySelector('#pop').textContent.includes(name), env.LEAD_NAME, { timeout: 10000 });
  const pop = await page.textContent('#pop');
  await shot('agent-ringing');
  await page.keyboard.press('Alt+a'); // the answer shortcut
  await page.waitForSelector('.line.talking', { timeout: 10000 });
  await page.waitForTimeout(1500);
  say('talking', { pop, stats: await stats() });
  await next();
  await shot('agent-talking');

  await page.click('.line .hold');
  await page.waitForSelector('.line .pill.wait', { timeout: 5000 });
  say('held', { stats: await stats() });
  await next();

  await page.click('.line .hold');
  await page.waitForSelector('.line .pill.on', { timeout: 5000 });
  say('resumed', { stats: await stats() });
  await next();

  // The supervisor listens from the floor view, then barges in, then stops.
  await sup.waitForSelector('#wall-calls .monitor-listen', { timeout: 10000 });
  await shot('supervisor-floor', sup);
  await sup.click('#wall-calls .monitor-listen');
  await sup.waitForFunction(() => document.querySelector('#monitor-status').textContent.startsWith('listen on'), null, { timeout: 10000 });
  await sup.waitForTimeout(1500);
  say('listening', { stats: await supStats(), status: await sup.textContent('#monitor-status') });
  await next();
  await shot('supervisor-listening', sup);
  await sup.click('#wall-calls .monitor-barge');
  await sup.waitForFunction(() => document.querySelector('#monitor-status').textContent.startsWith('barge'), null, { timeout: 10000 });
  say('barging', { stats: await supStats() });
  await next();
  await sup.click('#monitor-stop');
  await sup.waitForFunction(() => document.querySelector('#monitor-status').textContent.startsWith('Not monitoring'), null, { timeout: 10000 });
  // Today's skill-group report on screen, and as an XLSX download.
  await sup.click('#report-form button[value=json]');
  await sup.waitForSelector('#report tbody tr', { timeout: 10000 });
  const report = await sup.textContent('#report');
  const [download] = await Promise.all([
    sup.waitForEvent('download', { timeout: 10000 }),
    sup.click('#report-form button[value=xlsx]'),
  ]);
  const xlsx = `${env.SHOTS}/supervisor-report.xlsx`;
  await download.saveAs(xlsx);
  await shot('supervisor-report', sup);
  say('stopped', { report, xlsx });
  await next();

  await page.reload();
  await page.waitForSelector('#link.on', { timeout: 20000 });
  await page.waitForSelector('.line.talking', { timeout: 10000 });
  await page.waitForTimeout(1500);
  say('reattached', { stats: await stats() });
  await next();

  // A second caller dials the agent directly: a second line. Answering it puts the first
  // call on hold; hanging it up and resuming goes back to the first.
  await page.waitForSelector('.line.ringing', { timeout: 30000 });
  await page.click('.line.ringing .answer');
  await page.waitForFunction(() => document.querySelectorAll('.line').length === 2
    && document.querySelectorAll('.line .pill.wait').length === 1
    && document.querySelectorAll('.line .pill.on').length === 1, null, { timeout: 10000 });
  await shot('agent-two-lines');
  say('second_line');
  await next();
  await page.click('.line:has(.pill.on) .hangup');
  await page.waitForFunction(() => document.querySelectorAll('.line').length === 1, null, { timeout: 10000 });
  await page.waitForSelector('#wrapup-panel:not([hidden])', { timeout: 10000 });
  await page.click('#wrapup button[type=submit]');
  await page.waitForSelector('#wrapup-panel[hidden]', { state: 'attached', timeout: 10000 });
  await page.click('.line .hold');
  await page.waitForSelector('.line .pill.on', { timeout: 5000 });
  say('first_again');
  await next();

  await page.keyboard.press('Alt+h'); // the hang-up shortcut
  await page.waitForSelector('#wrapup-panel:not([hidden])', { timeout: 10000 });
  await page.selectOption('#wrapup select[name=result]', 'callback');
  await page.fill('#wrapup input[name=next]', env.NEXT_DATE);
  await page.fill('#wrapup textarea[name=note]', 'wants a call back about the offer');
  await shot('agent-wrapup');
  await page.click('#wrapup button[type=submit]');
  await page.waitForSelector('#wrapup-panel[hidden]', { state: 'attached', timeout: 10000 });
  await shot('agent-after-call');
  say('done', { problems });
} catch (e) {
  say('failed', { error: String(e && e.stack || e), problems });
  process.exitCode = 1;
} finally {
  await browser.close();
  await supBrowser.close();
}
