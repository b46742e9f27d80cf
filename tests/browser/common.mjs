// What the browser scripts share: Debian's Chromium with a fake microphone, the JSON step
// lines the Rust tests read, "go on" lines from the test, and console errors collected.
import { chromium } from 'playwright-core';
import readline from 'node:readline';

export const env = process.env;

// One JSON line per step: {"step": ..., ...extra}.
export const say = (step, extra = {}) => console.log(JSON.stringify({ step, ...extra }));

// Waits for a line on stdin (the Rust test measured what it needed to).
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
export const next = async () => { await lines.next(); };

// Chromium as the tests drive it; `wav`, when given, is the fake microphone's sound;
// `extra`: more command-line flags.
export const launch = (wav, extra = []) => chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: [
    '--no-sandbox',
    '--use-fake-ui-for-media-stream',
    '--use-fake-device-for-media-stream',
    '--allow-loopback-in-peer-connection',
    '--autoplay-policy=no-user-gesture-required',
    '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run',
    ...(wav ? [`--use-file-for-fake-audio-capture=${wav}`] : []),
    ...extra,
  ],
});

// Console errors and page errors of `page` go to `problems`, named by `who`.
export const watch = (page, who, problems) => {
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`${who} console: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`${who} page error: ${e.message}`));
};

// A full-page screenshot into $SHOTS.
export const shot = (page, name) => page.screenshot({ path: `${env.SHOTS}/${name}.png`, fullPage: true });
