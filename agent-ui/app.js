// The agent console: a softphone (WebRTC to the server, signalling on the CTI WebSocket),
// the caller's lead when a call rings, wrap-up, state and queue figures, the work list.
// Plain JavaScript, no build step.
'use strict';

const $ = (sel) => document.querySelector(sel);
const state = {
  // The session is an HttpOnly cookie; the CSRF token goes with every change (X-CSRF-Token).
  csrf: null,
  me: null,
  ws: null,
  pc: null,
  mic: null,
  calls: new Map(), // call id -> {id, state, caller, held, muted, pop}
  // call id -> offer event; kept in the tab's storage so a reload mid-call keeps the lead.
  pops: new Map(JSON.parse(sessionStorage.getItem('pops') || '[]')),
  wrapup: null, // the call being wrapped up
  ringer: null,
  retry: 0,
};

function showError(text) {
  const e = $('#error');
  e.textContent = text;
  e.hidden = !text;
}

async function api(method, path, body) {
  const r = await fetch(path, {
    method,
    headers: Object.assign({ 'Content-Type': 'application/json' }, csrfHeader(method)),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { /* not JSON */ }
  if (!r.ok) {
    const why = (json && json.error) || text || r.statusText;
    if (r.status === 401 && path !== '/api/login') logout(false);
    throw new Error(why);
  }
  return json;
}

// The session's CSRF token for a request that changes something.
function csrfHeader(method) {
  return method !== 'GET' && state.csrf ? { 'X-CSRF-Token': state.csrf } : {};
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function fmtTime(ms) {
  return ms ? new Date(ms).toLocaleString() : '';
}

// ---- login -------------------------------------------------------------------------------

$('#login').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  try {
    const r = await api('POST', '/api/login', { user: f.get('user'), password: f.get('password') });
    state.csrf = r.csrf;
    // Only a marker: the session itself is the HttpOnly cookie.
    sessionStorage.setItem('session', '1');
    showError('');
    await start();
  } catch (e) {
    showError('Login failed: ' + e.message);
  }
});

$('#logout').addEventListener('click', () => logout(true));

function logout(tellServer) {
  if (tellServer && state.me) api('POST', '/api/logout').catch(() => {});
  state.csrf = null;
  state.me = null;
  sessionStorage.removeItem('session');
  if (state.ws) state.ws.close();
  if (state.pc) state.pc.close();
  state.ws = null;
  state.pc = null;
  $('#console').hidden = true;
  $('#logout').hidden = true;
  $('#login').hidden = false;
  $('#who').textContent = '';
}

async function start() {
  try {
    state.me = await api('GET', '/api/me');
    if (state.me.csrf) state.csrf = state.me.csrf;
  } catch (e) {
    $('#login').hidden = false;
    return;
  }
  $('#login').hidden = true;
  $('#console').hidden = false;
  $('#logout').hidden = false;
  $('#who').textContent = state.me.user + ' (' + state.me.role + ')';
  $('#wall-panel').hidden = state.me.role === 'agent';
  $('#admin-panel').hidden = state.me.role !== 'admin';
  if (state.me.role === 'admin') refreshAdmin();
  const title = { agent: 'Agent console', supervisor: 'Supervisor console', admin: 'Admin console' }[state.me.role];
  $('h1').textContent = title || 'Console';
  document.title = $('h1').textContent;
  await listDevices();
  state.codes = await api('GET', '/api/dispositions').catch(() => null);
  connect();
  refresh();
  setInterval(refresh, 3000);
}

// ---- the socket and the softphone ------------------------------------------------------

function connect() {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  // The session cookie comes along with the handshake.
  const ws = new WebSocket(proto + '//' + location.host + '/api/events');
  state.ws = ws;
  ws.onmessage = (m) => onEvent(JSON.parse(m.data));
  ws.onclose = () => {
    if (state.ws !== ws) return;
    setLink('off', 'offline');
    if (state.pc) state.pc.close();
    state.pc = null;
    if (state.me) setTimeout(connect, Math.min(5000, 500 * ++state.retry));
  };
}

function send(msg) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(msg));
}

function setLink(cls, text) {
  const l = $('#link');
  l.className = 'pill ' + cls;
  l.textContent = text;
}

async function microphone() {
  const id = $('#mic').value;
  // `?raw` turns the browser's voice processing off (measurements, studio microphones).
  const processed = !new URLSearchParams(location.search).has('raw');
  const audio = {
    echoCancellation: processed,
    noiseSuppression: processed,
    autoGainControl: processed,
  };
  if (id) audio.deviceId = { exact: id };
  const stream = await navigator.mediaDevices.getUserMedia({ audio });
  meter(stream);
  return stream;
}

async function startPhone() {
  setLink('wait', 'connecting audio');
  try {
    state.mic = await microphone();
  } catch (e) {
    showError('No microphone: ' + e.message);
    setLink('off', 'no microphone');
    return;
  }
  const pc = new RTCPeerConnection({ iceServers: [] });
  state.pc = pc;
  for (const t of state.mic.getAudioTracks()) pc.addTrack(t, state.mic);
  pc.ontrack = (ev) => {
    const audio = $('#remote');
    audio.srcObject = ev.streams[0] || new MediaStream([ev.track]);
    audio.play().catch(() => {});
  };
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === 'connected') {
      setLink('on', 'phone ready');
      state.retry = 0;
    } else if (pc.connectionState === 'failed') {
      setLink('off', 'audio failed');
    }
  };
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  await gathered(pc);
  send({ op: 'webrtc', sdp: pc.localDescription.sdp });
}

function gathered(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState === 'complete') resolve();
    };
    pc.addEventListener('icegatheringstatechange', done);
    setTimeout(resolve, 2000);
  });
}

function onEvent(ev) {
  switch (ev.type) {
    case 'hello':
      startPhone();
      break;
    case 'webrtc':
      if (state.pc) state.pc.setRemoteDescription({ type: 'answer', sdp: ev.sdp }).catch((e) => showError('Audio: ' + e.message));
      break;
    case 'offer':
      state.pops.set(ev.call, ev);
      savePops();
      showPop(ev);
      break;
    case 'call':
      onCall(ev);
      break;
    case 'monitor':
      onMonitor(ev);
      break;
    case 'error':
      showError((ev.op ? ev.op + ': ' : '') + ev.error);
      break;
    case 'placed':
      showError('');
      break;
    case 'hot_lead':
      refreshHotLeads();
      break;
    case 'campaign_call':
      showCampaignLead(ev, false);
      $('#campaign-status').textContent = 'Calling ' + ev.lead.lead_name + ' for ' + ev.name + '...';
      break;
    case 'campaign_attempt':
      $('#campaign-status').textContent = 'Last campaign call: ' + ev.outcome.replace(/_/g, ' ') + (ev.error ? ' (' + ev.error + ')' : '');
      refreshCampaigns();
      break;
  }
}

function savePops() {
  // The last few calls' pops are enough: a wrap-up is for the call just ended.
  const keep = [...state.pops.entries()].slice(-5);
  sessionStorage.setItem('pops', JSON.stringify(keep));
}

function onCall(ev) {
  let c = state.calls.get(ev.call);
  if (!c) {
    c = { id: ev.call, caller: ev.caller, held: false, muted: false };
    state.calls.set(ev.call, c);
  }
  if (ev.caller) c.caller = ev.caller;
  switch (ev.state) {
    case 'dialing':
      c.state = 'dialing';
      c.outbound = true;
      c.ringing = !!ev.ringing;
      if (state.pops.has(ev.call)) showPop(state.pops.get(ev.call));
      break;
    case 'ringing':
      c.state = 'ringing';
      ring(true);
      if (state.pops.has(ev.call)) showPop(state.pops.get(ev.call));
      break;
    case 'connected':
      c.state = 'talking';
      c.held = !!ev.held;
      ring(false);
      if (state.pops.has(ev.call)) showPop(state.pops.get(ev.call));
      break;
    case 'held':
      c.held = !!ev.held;
      break;
    case 'transfer':
      showError(ev.done && !String(ev.status).startsWith('200') ? 'Transfer: ' + ev.status : '');
      break;
    case 'cancelled':
      state.calls.delete(ev.call);
      ring([...state.calls.values()].some((x) => x.state === 'ringing'));
      break;
    case 'ended':
      state.calls.delete(ev.call);
      ring([...state.calls.values()].some((x) => x.state === 'ringing'));
      $('#phone-status').textContent = 'Call ' + (c.outbound ? 'to ' : 'from ') + (c.caller || '?') + ': ' + (ev.reason || 'ended');
      // A call that was answered gets its wrap-up; so does a call out that nobody took
      // (the lead's result: no answer, busy).
      if (c.state === 'talking' || (c.outbound && state.pops.has(ev.call))) startWrapup(ev.call);
      break;
  }
  renderLines();
}

function renderLines() {
  const box = $('#lines');
  box.replaceChildren();
  if (state.calls.size === 0) {
    box.append(el('p', { class: 'muted' }, 'No call.'));
    return;
  }
  for (const c of state.calls.values()) {
    const line = el('div', { class: 'line ' + c.state, 'data-call': c.id });
    line.append(el('strong', {}, c.caller || 'unknown caller'), ' ');
    if (c.state === 'dialing') {
      line.append(el('span', { class: 'pill wait' }, c.ringing ? 'ringing' : 'calling'), ' ');
      line.append(el('button', { class: 'hangup', onclick: () => send({ op: 'hangup', call: c.id }) }, 'Hang up'));
    } else if (c.state === 'ringing') {
      line.append(el('span', { class: 'pill wait' }, 'ringing'), ' ');
      line.append(el('button', { class: 'answer', onclick: () => answer(c.id) }, 'Answer'));
      line.append(el('button', { class: 'decline', onclick: () => send({ op: 'decline', call: c.id }) }, 'Decline'));
    } else {
      line.append(el('span', { class: 'pill ' + (c.held ? 'wait' : 'on') }, c.held ? 'on hold' : 'talking'), ' ');
      line.append(el('button', { class: 'hangup', onclick: () => send({ op: 'hangup', call: c.id }) }, 'Hang up'));
      line.append(el('button', { class: 'hold', onclick: () => send({ op: c.held ? 'resume' : 'hold', call: c.id }) }, c.held ? 'Resume' : 'Hold'));
      line.append(el('button', { class: 'mute', onclick: () => mute(c) }, c.muted ? 'Unmute' : 'Mute'));
      if (!c.outbound) {
        const num = el('input', { class: 'transfer-to', size: 8, inputmode: 'tel' });
        line.append(el('label', {}, 'to ', num), el('button', { class: 'transfer', onclick: () => num.value && send({ op: 'transfer', call: c.id, number: num.value }) }, 'Transfer'));
      }
    }
    box.append(line);
  }
}

// Click-to-dial: the server checks the calling hours and the do-not-call list, then the
// call goes out from this console's phone (its events come as `dialing`, `connected`, ...).
function dial(what) {
  $('#phone-status').textContent = '';
  for (const c of state.calls.values()) {
    if (c.state === 'talking' && !c.held) send({ op: 'hold', call: c.id });
  }
  send(Object.assign({ op: 'dial' }, what));
}

$('#dial').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const n = new FormData(ev.target).get('number').trim();
  if (n) dial({ number: n });
});

function answer(id) {
  // One call talks at a time: the one talking now goes on hold (a second line).
  for (const c of state.calls.values()) {
    if (c.id !== id && c.state === 'talking' && !c.held) send({ op: 'hold', call: c.id });
  }
  send({ op: 'answer', call: id });
}

function mute(c) {
  c.muted = !c.muted;
  if (state.mic) for (const t of state.mic.getAudioTracks()) t.enabled = !c.muted;
  renderLines();
}

function current(kind) {
  return [...state.calls.values()].find((c) => c.state === kind && !c.held);
}

document.addEventListener('keydown', (ev) => {
  if (!ev.altKey) return;
  const k = ev.key.toLowerCase();
  if (k === 'a') {
    const c = current('ringing');
    if (c) answer(c.id);
  } else if (k === 'h') {
    const c = current('talking') || current('dialing');
    if (c) send({ op: 'hangup', call: c.id });
  } else if (k === 'm') {
    const c = current('talking');
    if (c) mute(c);
  } else return;
  ev.preventDefault();
});

for (const b of document.querySelectorAll('#keypad button')) {
  b.addEventListener('click', () => {
    const c = current('talking');
    if (c) send({ op: 'dtmf', call: c.id, digit: b.textContent });
  });
}

// A ring the agent hears on their speaker: two tones, made here (no sound file to fetch).
function ring(on) {
  if (!on) {
    if (state.ringer) clearInterval(state.ringer.timer);
    state.ringer = null;
    return;
  }
  if (state.ringer) return;
  const ctx = new AudioContext();
  const burst = () => {
    const o = ctx.createOscillator();
    const g = ctx.createGain();
    o.frequency.value = 440;
    g.gain.value = 0.1;
    o.connect(g).connect(ctx.destination);
    o.start();
    o.stop(ctx.currentTime + 0.8);
  };
  burst();
  state.ringer = { timer: setInterval(burst, 2000), ctx };
}

// ---- the caller's lead ---------------------------------------------------------------------

async function showPop(offer) {
  const box = $('#pop');
  box.replaceChildren();
  const out = offer.direction === 'outbound';
  box.append(el('p', {}, out ? 'Calling ' : 'Call from ', el('strong', {}, offer.caller), offer.queue ? ' in queue ' + offer.queue : ''));
  if (offer.ivr_path && offer.ivr_path.length) box.append(el('p', { class: 'muted' }, 'Path: ' + offer.ivr_path.join(' → ')));
  if (!offer.leads.length) {
    box.append(el('p', {}, 'No lead has this number.'));
    box.append(newLeadForm(offer));
    return;
  }
  if (offer.leads.length > 1) box.append(el('p', {}, offer.leads.length + ' leads have this number: choose one.'));
  for (const l of offer.leads) {
    const card = el('div', { class: 'lead', 'data-lead': l.id });
    card.append(
      el('h3', {}, l.name || '(no name)', ' ', el('span', { class: 'grade' }, l.grade || '?')),
      el('p', {}, [l.company, l.status, l.owner_agent ? 'owner ' + l.owner_agent : null].filter(Boolean).join(' · ')),
      el('p', { class: 'muted' }, 'Next follow-up: ' + (fmtTime(l.next_follow_up_ms) || 'none')),
    );
    card.append(bookingForm(l, offer), hotLeadForm(l, offer));
    box.append(card);
    loadTimeline(l.id, card);
  }
}

// Book a showroom visit for the lead from the call.
function bookingForm(lead, offer) {
  const f = el('form', { class: 'book-visit' });
  f.append(
    el('label', {}, 'Visit ', el('input', { name: 'at', type: 'datetime-local', required: '' })),
    el('label', {}, 'Where ', el('input', { name: 'place', size: 14 })),
    el('button', { type: 'submit' }, 'Book visit'),
  );
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const d = new FormData(f);
    try {
      const a = await api('POST', '/api/leads/' + lead.id + '/appointments', {
        at_ms: new Date(d.get('at')).getTime(),
        place: d.get('place') || null,
        call: offer.call,
      });
      f.replaceWith(el('p', { class: 'booked' }, 'Visit booked for ' + fmtTime(a.at_ms) + (a.place ? ' at ' + a.place : '') + '.'));
      refreshAppointments();
    } catch (e) {
      showError('Visit not booked: ' + e.message);
    }
  });
  return f;
}

// Report the lead hot: what the customer said for each of the five criteria.
const HOT_CRITERIA = [
  ['timeline', 'Timeline', 'text'],
  ['selection_team', 'Selection team', 'text'],
  ['owner', 'Owner', 'text'],
  ['go_live', 'Go-live', 'date'],
  ['fit', 'Fits the product', 'text'],
];

function hotLeadForm(lead, offer) {
  const f = el('form', { class: 'hot-lead' });
  const box = el('details', {}, el('summary', {}, 'Report hot lead'), f);
  f.append(...HOT_CRITERIA.map(([name, label, type]) =>
    el('label', {}, label + ' ', el('input', { name, type, required: '', size: 28 }))),
  el('button', { type: 'submit' }, 'Report hot lead'));
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const d = new FormData(f);
    const criteria = Object.fromEntries(HOT_CRITERIA.map(([name]) => [name, d.get(name) || '']));
    try {
      const h = await api('POST', '/api/leads/' + lead.id + '/hot', { criteria, call: offer.call });
      box.replaceWith(el('p', { class: 'booked' }, 'Reported hot; the answer is due by ' + fmtTime(h.review_by_ms) + '.'));
      refreshHotLeads();
    } catch (e) {
      showError('Hot lead not reported: ' + e.message);
    }
  });
  return box;
}

// Hot-lead reports: pending ones with the sales manager's Accept / Reject, then the answers.
async function refreshHotLeads() {
  try {
    const { hot_leads: reports } = await api('GET', '/api/hot-leads');
    const decides = state.me.role !== 'agent';
    $('#hot-leads tbody').replaceChildren(...reports.slice().reverse().map((h) => {
      const actions = el('td', {});
      if (h.state === 'pending' && decides && h.reported_by !== state.me.user) {
        const reason = el('input', { class: 'reason', size: 12, placeholder: 'reason to reject' });
        const decide = (decision) => async () => {
          try {
            await api('POST', '/api/hot-leads/' + h.id + '/decision', { decision, reason: reason.value || null });
            refreshHotLeads();
          } catch (e) { showError('Hot lead: ' + e.message); }
        };
        actions.append(reason, el('button', { class: 'accept', onclick: decide('accept') }, 'Accept'),
          el('button', { class: 'reject', onclick: decide('reject') }, 'Reject'));
      }
      const said = HOT_CRITERIA.map(([name, label]) => label + ': ' + ((h.criteria || {})[name] || '')).join('\n');
      const answer = h.state === 'pending' ? 'pending, due ' + fmtTime(h.review_by_ms)
        : h.state + (h.decided_by ? ' by ' + h.decided_by : ' (no answer in time)') + (h.reason ? ': ' + h.reason : '');
      return el('tr', { 'data-hot-lead': h.id }, el('td', {}, fmtTime(h.reported_at_ms)),
        el('td', { title: said }, h.lead_name), el('td', {}, h.reported_by),
        el('td', { class: 'state' }, answer), actions);
    }));
  } catch (_) { /* not available */ }
}

// ---- outbound campaigns -------------------------------------------------------------------

// The lead a campaign gives the agent, with the script; in preview with Call and Skip.
function showCampaignLead(c, preview) {
  const box = $('#campaign-lead');
  box.hidden = false;
  const l = c.lead;
  box.replaceChildren(
    el('h3', {}, c.name + ': ' + l.lead_name + ' ', el('span', { class: 'muted' }, l.phone || '')),
    el('p', { class: 'muted' }, 'Attempt ' + (l.attempts + 1) + (l.last_outcome ? ', last: ' + l.last_outcome.replace(/_/g, ' ') : '')),
    el('pre', { class: 'script' }, c.script || '(no script)'),
  );
  if (preview) {
    const done = () => { box.hidden = true; refreshCampaigns(); };
    box.append(
      el('button', { class: 'campaign-call answer', onclick: async () => {
        try {
          await api('POST', '/api/campaigns/' + c.campaign + '/leads/' + l.lead_id + '/dial');
          $('#campaign-status').textContent = 'Calling ' + l.lead_name + '...';
          box.querySelectorAll('button').forEach((b) => b.remove());
        } catch (e) { showError('Campaign call: ' + e.message); refreshCampaigns(); }
      } }, 'Call'),
      el('button', { class: 'campaign-skip', onclick: async () => {
        try { await api('POST', '/api/campaigns/' + c.campaign + '/leads/' + l.lead_id + '/skip'); done(); } catch (e) { showError('Skip: ' + e.message); }
      } }, 'Skip'),
    );
  }
}

async function refreshCampaigns() {
  let campaigns;
  try { ({ campaigns } = await api('GET', '/api/campaigns')); } catch (_) { return; }
  const runs = state.me.role !== 'agent';
  $('#campaign-form').hidden = !runs;
  $('#campaigns tbody').replaceChildren(...campaigns.map((c) => {
    const actions = el('td', {});
    const act = (label, cls, fn) => el('button', { class: cls, onclick: async () => {
      try { await fn(); refreshCampaigns(); } catch (e) { showError(c.name + ': ' + e.message); }
    } }, label);
    if (c.state === 'running' && !runs) {
      if (c.mode === 'preview') {
        actions.append(act('Next lead', 'campaign-next', async () => {
          const n = await api('POST', '/api/campaigns/' + c.id + '/next');
          if (n.lead) showCampaignLead(n, true);
          else $('#campaign-status').textContent = 'No lead of ' + c.name + ' is due now.';
        }));
      } else if (c.joined) {
        actions.append(act('Leave', 'campaign-leave', () => api('POST', '/api/campaigns/' + c.id + '/leave')));
      } else {
        actions.append(act('Join', 'campaign-join', () => api('POST', '/api/campaigns/' + c.id + '/join')));
      }
    }
    if (runs && c.state !== 'finished') {
      const to = (st) => () => api('POST', '/api/campaigns/' + c.id + '/state', { state: st });
      if (c.state !== 'running') actions.append(act('Start', 'campaign-start', to('running')));
      if (c.state === 'running') actions.append(act('Pause', 'campaign-pause', to('paused')));
      actions.append(act('Finish', 'campaign-finish', to('finished')));
    }
    if (runs) {
      for (const format of ['csv', 'xlsx']) {
        actions.append(act(format.toUpperCase(), 'campaign-report', async () => {
          const r = await fetch('/api/campaigns/' + c.id + '/report?format=' + format, {});
          if (!r.ok) throw new Error(r.statusText);
          const a = el('a', { href: URL.createObjectURL(await r.blob()), download: 'campaign-' + c.id + '.' + format });
          document.body.append(a);
          a.click();
          a.remove();
        }));
      }
    }
    const counts = c.leads + ' (' + c.reached + ' reached, ' + c.waiting + ' waiting, ' + c.exhausted + ' exhausted' + (c.excluded ? ', ' + c.excluded + ' excluded' : '') + ')';
    return el('tr', { 'data-campaign': c.id }, el('td', {}, c.name), el('td', {}, c.mode), el('td', {}, counts),
      el('td', { class: 'state' }, c.state + (c.joined ? ' (joined)' : '')), actions);
  }));
}

$('#campaign-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  try {
    const c = await api('POST', '/api/campaigns', {
      name: f.get('name'), mode: f.get('mode'), skill: f.get('skill'), script: f.get('script'),
      retries: Number(f.get('retries')), retry_after_s: Number(f.get('retry_min')) * 60,
    });
    const filter = {};
    if (f.get('grade')) filter.grade = f.get('grade');
    if (f.get('source')) filter.source = f.get('source');
    if (Object.keys(filter).length) {
      const r = await api('POST', '/api/campaigns/' + c.id + '/leads', filter);
      $('#campaign-status').textContent = c.name + ': ' + r.added + ' leads added.';
    }
    ev.target.reset();
    refreshCampaigns();
  } catch (e) {
    showError('Campaign: ' + e.message);
  }
});

// The visits expected from today on; how each went is recorded here (the handover).
async function refreshAppointments() {
  try {
    const { appointments } = await api('GET', '/api/appointments');
    $('#appointments tbody').replaceChildren(...appointments.map((a) => {
      const actions = el('td', {});
      if (a.state === 'booked') {
        const who = el('input', { class: 'receiver', size: 10, placeholder: 'received by' });
        const outcome = (o) => async () => {
          try {
            await api('POST', '/api/appointments/' + a.id + '/outcome', { outcome: o, receiver: who.value || null });
            refreshAppointments();
          } catch (e) { showError('Visit: ' + e.message); }
        };
        actions.append(who, el('button', { class: 'shown', onclick: outcome('shown') }, 'Shown'),
          el('button', { class: 'no-show', onclick: outcome('no_show') }, 'No-show'),
          el('button', { class: 'cancel', onclick: outcome('cancelled') }, 'Cancel'));
      }
      return el('tr', { 'data-appointment': a.id }, el('td', {}, fmtTime(a.at_ms)), el('td', {}, a.lead_name),
        el('td', {}, a.place || ''), el('td', {}, a.booked_by),
        el('td', { class: 'state' }, a.state.replace('_', '-') + (a.receiver ? ' to ' + a.receiver : '')), actions);
    }));
  } catch (_) { /* not available */ }
}

async function loadTimeline(id, card) {
  try {
    const lead = await api('GET', '/api/leads/' + id);
    const list = el('ul', { class: 'timeline' });
    for (const e of (lead.timeline || []).slice(-8).reverse()) {
      const rec = e.detail && e.detail.recordings && e.detail.recordings.length ? ' (recorded)' : '';
      list.append(el('li', {}, fmtTime(e.at_ms) + ' ' + e.kind + (e.actor ? ' by ' + e.actor : '') + rec));
    }
    card.append(list);
  } catch (e) {
    card.append(el('p', { class: 'muted' }, 'Timeline: ' + e.message));
  }
}

function newLeadForm(offer) {
  const f = el('form', { class: 'new-lead' });
  const phone = (offer.new_lead && offer.new_lead.phones && offer.new_lead.phones[0]) || offer.caller;
  f.append(
    el('label', {}, 'Name ', el('input', { name: 'name', required: '' })),
    el('label', {}, 'Phone ', el('input', { name: 'phone', value: phone })),
    el('button', { type: 'submit' }, 'Create lead'),
  );
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const d = new FormData(f);
    try {
      const r = await api('POST', '/api/leads', { name: d.get('name'), phones: [d.get('phone')], source: 'inbound_call', owner: state.me.user });
      offer.leads = [{ id: r.id, name: d.get('name'), grade: r.grade, status: r.status }];
      showPop(offer);
    } catch (e) {
      showError('New lead: ' + e.message);
    }
  });
  return f;
}

// ---- wrap-up ---------------------------------------------------------------------------------

function startWrapup(call) {
  const offer = state.pops.get(call);
  const leads = (offer && offer.leads) || [];
  state.wrapup = call;
  state.disposed = false;
  const sel = $('#wrapup-lead');
  sel.replaceChildren(...leads.map((l) => el('option', { value: l.id }, l.name || '#' + l.id)));
  if (!leads.length) sel.append(el('option', { value: '' }, '(no lead)'));
  // The call's queue's result codes (from the pop), else the server's default ones.
  const codes = (offer && offer.dispositions && offer.dispositions.length)
    ? offer.dispositions : ((state.codes && state.codes.default) || ['reached']);
  $('#wrapup select[name=result]').replaceChildren(...codes.map((c) => el('option', { value: c }, c.replace(/_/g, ' '))));
  $('#wrapup-required').hidden = !(offer && offer.disposition_required);
  $('#wrapup-panel').hidden = false;
}

$('#wrapup').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const d = new FormData(ev.target);
  const lead = d.get('lead');
  try {
    if (!state.disposed) {
      const body = { code: d.get('result'), note: d.get('note') || null, lead: lead ? Number(lead) : null };
      if (d.get('next')) body.next_follow_up_ms = new Date(d.get('next') + 'T09:00:00').getTime();
      await api('POST', '/api/calls/' + state.wrapup + '/disposition', body);
      state.disposed = true;
    }
    // The customer asked not to be called again: their number goes on the list.
    const offer = state.pops.get(state.wrapup);
    if (d.get('result') === 'do_not_call' && offer && offer.caller) {
      await api('POST', '/api/dnc', { number: offer.caller, reason: 'asked on a call' + (d.get('note') ? ': ' + d.get('note') : '') });
    }
    await setState('available');
    $('#wrapup-panel').hidden = true;
    ev.target.reset();
    state.pops.delete(state.wrapup);
    savePops();
    state.wrapup = null;
    showError('');
  } catch (e) {
    showError('Wrap-up not saved: ' + e.message);
  }
});

// ---- state, queues, work list -------------------------------------------------------------

for (const b of document.querySelectorAll('#state-panel button[data-state]')) {
  b.addEventListener('click', () => setState(b.dataset.state).catch((e) => showError(e.message)));
}

async function setState(s) {
  // Available from logged out is a login (the queues take the agent back).
  if (s === 'available' && state.agentState === 'logged_out') s = 'login';
  const body = { state: s };
  if (s === 'break') body.reason = $('#break-reason').value;
  const a = await api('POST', '/api/agents/' + state.me.user + '/state', body);
  showState(a);
}

function showState(a) {
  state.agentState = a.state;
  $('#state').textContent = a.state.replace('_', ' ') + (a.reason ? ' (' + a.reason + ')' : '');
  $('#state-since').textContent = a.since_s != null ? 'for ' + a.since_s + ' s' : '';
}

async function refresh() {
  if (!state.me) return;
  try {
    if (state.me.role !== 'admin') showState(await api('GET', '/api/agents/' + state.me.user));
  } catch (_) { /* not an ACD agent */ }
  const rows = [];
  for (const q of state.me.queues || []) {
    try {
      const s = await api('GET', '/api/queues/' + q);
      rows.push(el('tr', {}, el('td', {}, q), el('td', {}, String(s.waiting.length)),
        el('td', {}, s.longest_wait_s != null ? s.longest_wait_s + ' s' : '–'),
        el('td', {}, String(s.agents.available)), el('td', {}, String(s.agents.on_call)),
        el('td', {}, s.today.service_level == null ? '–' : Math.round(100 * s.today.service_level) + ' % in ' + s.today.service_level_s + ' s'),
        el('td', {}, s.today.abandoned + ' of ' + s.today.left)));
    } catch (_) { /* queue gone */ }
  }
  $('#queues tbody').replaceChildren(...rows);
  if (state.me.role !== 'agent') await refreshWall();
  try {
    const w = await api('GET', '/api/worklist');
    $('#worklist tbody').replaceChildren(...w.items.map((l) => el('tr', { 'data-lead': l.id },
      el('td', {}, l.name || '#' + l.id), el('td', {}, l.grade || ''),
      el('td', {}, fmtTime(l.why === 'first_contact' ? l.first_contact_due_ms : l.next_follow_up_ms)),
      el('td', {}, l.why.replace('_', ' ')),
      el('td', {}, el('button', { class: 'call-lead', onclick: () => dial({ lead: l.id }) }, 'Call')))));
  } catch (_) { /* no work list */ }
  // Not while somebody types a receiver's name into the table.
  const typing = document.activeElement && document.activeElement.classList;
  if (!typing || !typing.contains('receiver')) refreshAppointments();
  if (!typing || !typing.contains('reason')) refreshHotLeads();
  refreshCampaigns();
}

// ---- the supervisor's floor: calls, agents, monitoring, recordings ----------------------

function since(ms) {
  if (!ms) return '';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 60 ? s + ' s' : Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
}

async function refreshWall() {
  try {
    const { calls } = await api('GET', '/api/calls');
    // Rows are rebuilt only when the calls change, so a button is never replaced under the
    // supervisor's click; the times tick in place.
    const sig = JSON.stringify(calls.map((c) => [c.id, c.state, c.agent, c.queue, c.connected, c.monitors]));
    if (sig !== state.wallSig) {
      state.wallSig = sig;
      $('#wall-calls tbody').replaceChildren(...calls.map((c) => {
        const buttons = el('td', {});
        if (c.connected && c.agent) {
          for (const mode of ['listen', 'whisper', 'barge']) {
            buttons.append(el('button', { class: 'monitor-' + mode, onclick: () => monitor(c.id, mode) }, mode[0].toUpperCase() + mode.slice(1)));
          }
        }
        return el('tr', { 'data-call': c.id }, el('td', {}, c.caller), el('td', {}, c.agent || ''),
          el('td', {}, c.queue || ''), el('td', {}, c.state + (c.monitors.length ? ' (monitored)' : '')),
          el('td', { class: 'since' }), buttons);
      }));
    }
    for (const c of calls) {
      const cell = document.querySelector(`#wall-calls tr[data-call="${c.id}"] .since`);
      if (cell) cell.textContent = since(c.connected_at_ms || c.offered_at_ms);
    }
  } catch (e) { showError('Calls: ' + e.message); }
  try {
    const a = await api('GET', '/api/agents');
    $('#wall-agents tbody').replaceChildren(...a.agents.map((x) => el('tr', {},
      el('td', {}, x.extension), el('td', {}, x.state.replace('_', ' ') + (x.reason ? ' (' + x.reason + ')' : '') + (x.reachable ? '' : ', unreachable')),
      el('td', {}, x.since_s != null ? x.since_s + ' s' : ''), el('td', {}, String(x.answered_today)))));
  } catch (e) { showError('Agents: ' + e.message); }
  try {
    const { recordings } = await api('GET', '/api/recordings');
    $('#wall-recordings tbody').replaceChildren(...recordings.slice(0, 10).map((x) => el('tr', {},
      el('td', {}, fmtTime(x.started_at_ms)), el('td', {}, x.agent || ''), el('td', {}, x.from_uri || ''),
      el('td', {}, Math.round((x.duration_ms || 0) / 1000) + ' s'),
      el('td', {}, x.deleted_at_ms ? 'deleted' : el('button', { onclick: () => play(x.id) }, 'Play')))));
  } catch (e) { showError('Recordings: ' + e.message); }
}

function monitor(call, mode) {
  if (state.monitoring && state.monitoring.call === call) send({ op: 'monitor_mode', mode });
  else send({ op: 'monitor', call, mode });
}

function onMonitor(ev) {
  const status = $('#monitor-status');
  if (ev.state === 'over') {
    state.monitoring = null;
    status.textContent = 'Not monitoring (' + ev.reason + ').';
    $('#monitor-stop').hidden = true;
    return;
  }
  state.monitoring = { call: ev.call, mode: ev.mode };
  status.textContent = (ev.state === 'started' || ev.state === 'mode' ? '' : 'Joining: ') + ev.mode + ' on ' + ev.agent + "'s call";
  status.className = 'monitoring';
  $('#monitor-stop').hidden = false;
}

$('#monitor-stop').addEventListener('click', () => send({ op: 'monitor_stop' }));

{
  const today = new Date().toISOString().slice(0, 10);
  $('#report-form input[name=from]').value = today;
  $('#report-form input[name=to]').value = today;
}

$('#report-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const format = ev.submitter ? ev.submitter.value : 'json';
  const path = '/api/reports/' + f.get('name') + '?from=' + f.get('from') + '&to=' + f.get('to') + '&format=' + format;
  try {
    const r = await fetch(path, {});
    if (!r.ok) throw new Error((await r.json().catch(() => ({}))).error || r.statusText);
    if (format === 'json') {
      const t = await r.json();
      $('#report thead').replaceChildren(el('tr', {}, ...t.columns.map((c) => el('th', {}, c.replace(/_/g, ' ')))));
      $('#report tbody').replaceChildren(...t.rows.map((row) => el('tr', {}, ...t.columns.map((c) => el('td', {}, row[c] == null ? '' : String(row[c]))))));
    } else {
      const a = el('a', { href: URL.createObjectURL(await r.blob()), download: f.get('name') + '-' + f.get('from') + '.' + format });
      document.body.append(a);
      a.click();
      a.remove();
    }
    showError('');
  } catch (e) {
    showError('Report: ' + e.message);
  }
});

// The audio needs the session token: fetched, then played from memory.
function play(id) {
  return playFrom('/api/recordings/' + id + '/audio');
}

async function playFrom(path) {
  try {
    const r = await fetch(path, {});
    if (!r.ok) throw new Error(r.status + ' ' + r.statusText);
    const a = $('#playback');
    if (a.src) URL.revokeObjectURL(a.src);
    a.src = URL.createObjectURL(await r.blob());
    a.hidden = false;
    a.play().catch(() => {});
  } catch (e) {
    showError('Recording: ' + e.message);
  }
}

// ---- admin: IVR flows and prompts ------------------------------------------------------------

async function refreshAdmin() {
  try {
    const { flows } = await api('GET', '/api/ivr/flows');
    $('#flows tbody').replaceChildren(...flows.map((f) => el('tr', { 'data-flow': f.name },
      el('td', {}, f.name), el('td', {}, f.description), el('td', {}, String(f.nodes.length)),
      el('td', {}, el('button', { class: 'view-flow', onclick: () => {
        const pre = $('#flow-source');
        pre.textContent = f.source;
        pre.hidden = false;
      } }, 'View')))));
  } catch (e) { showError('Flows: ' + e.message); }
  try {
    const { prompts } = await api('GET', '/api/prompts');
    $('#prompts tbody').replaceChildren(...prompts.map((p) => el('tr', { 'data-prompt': p.name },
      el('td', {}, p.name), el('td', {}, p.error ? 'unreadable: ' + p.error : (p.duration_ms / 1000).toFixed(1) + ' s'),
      el('td', {}, el('button', { onclick: () => playFrom('/api/prompts/' + p.name) }, 'Play')))));
  } catch (e) { showError('Prompts: ' + e.message); }
}

$('#flows-reload').addEventListener('click', async () => {
  const out = $('#flows-result');
  const r = await fetch('/api/ivr/reload', { method: 'POST', headers: csrfHeader('POST') });
  const body = await r.json().catch(() => ({}));
  if (r.ok) {
    out.className = 'ok';
    out.textContent = 'Reloaded: ' + body.flows.join(', ');
    refreshAdmin();
  } else {
    out.className = 'bad';
    out.replaceChildren(el('p', {}, body.error || r.statusText), el('ul', {}, ...(body.errors || []).map((e) => el('li', {}, e))));
  }
});

$('#prompt-upload').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const name = f.get('name');
  try {
    const r = await fetch('/api/prompts/' + encodeURIComponent(name), {
      method: 'PUT',
      headers: Object.assign({ 'Content-Type': 'audio/wav' }, csrfHeader('PUT')),
      body: f.get('file'),
    });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.error || r.statusText);
    showError('');
    $('#flows-result').className = 'ok';
    $('#flows-result').textContent = 'Stored ' + body.name + ' (' + (body.duration_ms / 1000).toFixed(1) + ' s)';
    ev.target.reset();
    refreshAdmin();
  } catch (e) {
    showError('Upload: ' + e.message);
  }
});

// ---- headset ---------------------------------------------------------------------------------

async function listDevices() {
  let devices = [];
  try {
    devices = await navigator.mediaDevices.enumerateDevices();
  } catch (_) { return; }
  const fill = (sel, kind) => {
    const keep = sel.value;
    sel.replaceChildren(...devices.filter((d) => d.kind === kind).map((d, i) => el('option', { value: d.deviceId }, d.label || kind + ' ' + (i + 1))));
    if (keep) sel.value = keep;
  };
  fill($('#mic'), 'audioinput');
  fill($('#speaker'), 'audiooutput');
}

$('#mic').addEventListener('change', async () => {
  if (!state.pc) return;
  try {
    const stream = await microphone();
    const track = stream.getAudioTracks()[0];
    for (const s of state.pc.getSenders()) if (s.track && s.track.kind === 'audio') await s.replaceTrack(track);
    if (state.mic) for (const t of state.mic.getTracks()) t.stop();
    state.mic = stream;
  } catch (e) {
    showError('Microphone: ' + e.message);
  }
});

$('#speaker').addEventListener('change', () => {
  const a = $('#remote');
  if (a.setSinkId) a.setSinkId($('#speaker').value).catch((e) => showError('Speaker: ' + e.message));
});

function meter(stream) {
  const ctx = new AudioContext();
  const an = ctx.createAnalyser();
  an.fftSize = 512;
  ctx.createMediaStreamSource(stream).connect(an);
  const buf = new Float32Array(an.fftSize);
  const tick = () => {
    an.getFloatTimeDomainData(buf);
    let peak = 0;
    for (const v of buf) peak = Math.max(peak, Math.abs(v));
    $('#level').value = peak;
    requestAnimationFrame(tick);
  };
  tick();
}

// For tests and the curious: the audio figures of the softphone.
window.softphoneStats = async () => {
  if (!state.pc) return null;
  const out = { sent: 0, received: 0, level: 0, state: state.pc.connectionState };
  (await state.pc.getStats()).forEach((r) => {
    if (r.type === 'outbound-rtp' && r.kind === 'audio') out.sent = r.packetsSent;
    if (r.type === 'inbound-rtp' && r.kind === 'audio') {
      out.received = r.packetsReceived;
      out.level = r.audioLevel || 0;
    }
  });
  return out;
};

renderLines();
// A page reloaded while logged in carries on with its session cookie.
if (sessionStorage.getItem('session')) start();
else $('#login').hidden = false;
