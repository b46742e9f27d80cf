// A third-party browser SIP client, JsSIP (npm), in Debian's Chromium for
// cti-server/tests/browser_jssip.rs: it registers over WSS with the server's self-signed
// certificate, trusted by its public key only (as an admin who checked the fingerprint
// would), takes a call, and reports its WebRTC statistics; then hangs up.
// Each step prints one JSON line ({"step": ...}); where the Rust test measures, the script
// waits for a line on stdin. Screenshots go to $SHOTS.
//
// Env: HTTPS (https://localhost:PORT), CERT (the server's certificate, PEM), EXT, PASSWORD,
// DOMAIN, WAV (the fake microphone), SHOTS.
import { env, say, next, launch, watch, shot } from './common.mjs';
import { X509Certificate, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
// JsSIP ships CommonJS: bundled for the page.
const bundle = join(tmpdir(), `jssip-${process.pid}.js`);
await esbuild.build({
  entryPoints: [join(here, 'node_modules/jssip/lib/JsSIP.js')],
  bundle: true, format: 'iife', globalName: 'JsSIP', platform: 'browser', outfile: bundle, logLevel: 'error',
});

// Chromium trusts exactly the server's certificate: its public key's SHA-256.
const cert = new X509Certificate(readFileSync(env.CERT));
const pin = createHash('sha256').update(cert.publicKey.export({ type: 'spki', format: 'der' })).digest('base64');

const problems = [];
const browser = await launch(env.WAV, [`--ignore-certificate-errors-spki-list=${pin}`]);
try {
  const page = await browser.newPage();
  watch(page, 'jssip', problems);
  // JSSIP_DEBUG=1: JsSIP's own log on stderr.
  if (env.JSSIP_DEBUG) page.on('console', (m) => process.stderr.write(`page: ${m.text()}\n`));
  // A page of the server's own origin (a secure context: the microphone is allowed).
  const r = await page.goto(`${env.HTTPS}/agent/?raw`);
  if (!r.ok()) throw new Error(`GET /agent/ over HTTPS: ${r.status()}`);
  await page.addScriptTag({ path: bundle });
  const wss = env.HTTPS.replace(/^https:/, 'wss:') + '/sip';
  await page.evaluate(({ wss, ext, password, domain, debug }) => {
    if (debug) JsSIP.debug.enable('JsSIP:*');
    const st = window.sip = { registered: false, incoming: 0, confirmed: false, ended: null, error: null };
    const ua = new JsSIP.UA({
      sockets: [new JsSIP.WebSocketInterface(wss)],
      uri: `sip:${ext}@${domain}`,
      password,
      register: true,
      session_timers: false,
    });
    ua.on('registered', () => { st.registered = true; });
    ua.on('registrationFailed', (e) => { st.error = 'registration failed: ' + e.cause; });
    ua.on('newRTCSession', ({ session, originator }) => {
      if (originator !== 'remote') return;
      st.incoming += 1;
      window.session = session;
      session.on('peerconnection', ({ peerconnection }) => {
        window.pc = peerconnection;
        peerconnection.addEventListener('track', (ev) => {
          const a = new Audio();
          a.srcObject = ev.streams[0] || new MediaStream([ev.track]);
          a.play().catch(() => {});
        });
      });
      session.on('confirmed', () => { st.confirmed = true; });
      session.on('ended', (e) => { st.ended = 'ended: ' + e.cause; });
      session.on('failed', (e) => { st.ended = 'failed: ' + e.cause; });
      session.answer({
        mediaConstraints: { audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false }, video: false },
        pcConfig: { iceServers: [] },
      });
    });
    window.ua = ua;
    ua.start();
    window.rtpStats = async () => {
      const out = { sent: 0, received: 0, level: 0 };
      if (!window.pc) return out;
      (await window.pc.getStats()).forEach((s) => {
        if (s.type === 'outbound-rtp' && s.kind === 'audio') out.sent += s.packetsSent || 0;
        if (s.type === 'inbound-rtp' && s.kind === 'audio') {
          out.received += s.packetsReceived || 0;
          out.level = Math.max(out.level, s.audioLevel || 0);
        }
      });
      return out;
    };
  }, { wss, ext: env.EXT, password: env.PASSWORD, domain: env.DOMAIN, debug: !!env.JSSIP_DEBUG });

  await page.waitForFunction(() => window.sip.registered || window.sip.error, null, { timeout: 20000 });
  const afterRegister = await page.evaluate(() => window.sip);
  if (!afterRegister.registered) throw new Error(afterRegister.error);
  say('registered');

  // The Rust test calls now; JsSIP answers.
  await page.waitForFunction(() => window.sip.confirmed || window.sip.ended, null, { timeout: 30000 });
  const answered = await page.evaluate(() => window.sip);
  if (!answered.confirmed) throw new Error('the call did not come up: ' + answered.ended);
  await page.waitForTimeout(3000);
  await shot(page, 'jssip-talking');
  say('talking', { stats: await page.evaluate(() => window.rtpStats()) });
  await next();

  // JsSIP hangs up (BYE over WSS).
  const before = await page.evaluate(() => window.rtpStats());
  await page.evaluate(() => window.session.terminate());
  await page.waitForFunction(() => window.sip.ended, null, { timeout: 10000 });
  say('ended', { cause: await page.evaluate(() => window.sip.ended), stats: before });
  await page.evaluate(() => window.ua.stop());
  await page.waitForTimeout(500);
  say('done', { problems });
} catch (e) {
  say('error', { message: String(e && e.stack || e), problems });
} finally {
  await browser.close();
}
