'use strict';
// zgrid head dashboard: polls the head's JSON API and renders it with plain DOM calls.
// Session ids, service names and owners come from users, so server data only ever
// reaches the page through textContent and attributes, never through innerHTML.
(function () {
  const POLL_MS = 1000;
  const MIN_GAP_MS = 500; // rounds start at most every 500 ms, however fast the user clicks
  const NODE_PAGE = 100, SESSION_PAGE = 50, MAX_EVENTS = 200;
  const CHART_SECONDS = 300, CHART_HEIGHT = 160;
  const ETA_ALPHA = 0.3; // weight of the newest rate sample; damps jitter between polls
  const TOKEN_KEY = 'zgridToken';
  const BAD_KINDS = new Set(['node_lost', 'node_quarantined', 'client_removed', 'journal_unhealthy']);
  const GOOD_KINDS = new Set(['session_complete', 'journal_recovered']);
  const WARN_KINDS = new Set(['takeover']); // the head took over from a failed active head
  const STATS = ['nodes', 'workers', 'sessions', 'queued', 'running', 'done', 'faulted'];

  const state = {
    token: '', instance: null, series: [], eventsSince: 0, lastSeq: -1,
    eta: new Map(), // session id -> {p, t, rate}
    timer: null, inFlight: false, again: false, lastStart: 0,
  };
  // One entry per paged table: current offset, last known total and the reused rows.
  const pages = {
    nodes: { offset: 0, total: 0, size: NODE_PAGE, rows: new Map() },
    sessions: { offset: 0, total: 0, size: SESSION_PAGE, rows: new Map() },
  };
  // Read by browser tests to wait for fresh data.
  const dash = window.zgridDashboard = { lastUpdate: 0, polls: 0 };
  const $ = (id) => document.getElementById(id);
  class AuthError extends Error {}

  // Only write when the text changed, so unchanged cells are not laid out again.
  function setText(node, value) {
    const s = value == null ? '' : String(value);
    if (node.textContent !== s) node.textContent = s;
  }
  function num(v) { return v == null ? '-' : String(v); }
  function pad2(n) { return String(n).padStart(2, '0'); }
  function clock(ms) {
    const d = new Date(ms);
    return pad2(d.getHours()) + ':' + pad2(d.getMinutes()) + ':' + pad2(d.getSeconds());
  }
  function duration(sec) {
    const s = Math.max(0, Math.round(sec)), m = Math.floor(s / 60), h = Math.floor(m / 60);
    if (s < 60) return s + 's';
    if (m < 60) return m + 'm ' + pad2(s % 60) + 's';
    return h < 24 ? h + 'h ' + pad2(m % 60) + 'm' : Math.floor(h / 24) + 'd ' + (h % 24) + 'h';
  }
  function fmtRate(v) {
    if (typeof v !== 'number' || !isFinite(v)) return '-';
    return v >= 100 ? String(Math.round(v)) : v.toFixed(1);
  }
  // Class names built from server strings must not contain spaces (classList throws).
  function cssName(s) { return String(s == null ? '' : s).replace(/[^A-Za-z0-9_-]/g, ''); }
  function el(tag, cls, text, kids) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    for (const k of kids || []) e.appendChild(k);
    return e;
  }

  function saveToken(t) {
    state.token = t;
    try { sessionStorage.setItem(TOKEN_KEY, t); } catch (e) { /* storage may be disabled */ }
  }
  function initToken() {
    try { state.token = sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { /* disabled */ }
    const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
    if (!m) return;
    try { saveToken(decodeURIComponent(m[1])); } catch (e) { saveToken(m[1]); } // bad %-escape
    // Keep the secret out of the address bar, history and screenshots.
    history.replaceState(null, '', location.pathname + location.search);
  }

  async function api(path) {
    const headers = state.token ? { Authorization: 'Bearer ' + state.token } : {};
    // A request that hangs must not stop the polling for good.
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), 5000);
    let res;
    try {
      res = await fetch(path, { headers: headers, cache: 'no-store', signal: ctl.signal });
    } finally {
      clearTimeout(timer);
    }
    if (res.status === 401) throw new AuthError('access token required');
    if (!res.ok) throw new Error(path.split('?')[0] + ': HTTP ' + res.status);
    return res.json();
  }
  async function poll() {
    if (state.inFlight) return;
    state.inFlight = true;
    state.lastStart = Date.now();
    const paths = ['/api/status',
      '/api/nodes?offset=' + pages.nodes.offset + '&limit=' + NODE_PAGE,
      '/api/sessions?offset=' + pages.sessions.offset + '&limit=' + SESSION_PAGE,
      '/api/events?since=' + state.eventsSince];
    // One request at a time: a dashboard holds at most one of the listener's
    // connections. Every request is settled (not just up to the first
    // failure) so rounds never overlap.
    const results = [];
    for (const p of paths) results.push(await api(p).then((v) => ({ v }), (e) => ({ e })));
    try {
      const failed = results.find((r) => r.e);
      if (results.some((r) => r.e instanceof AuthError)) lock();
      else if (failed) fail(failed.e.message);
      else render(results[0].v, results[1].v, results[2].v, results[3].v);
    } catch (e) {
      fail(String((e && e.message) || e));
      console.error(e);
    }
    state.inFlight = false;
    schedule(state.again ? 0 : POLL_MS);
    state.again = false;
  }
  function schedule(delay) {
    clearTimeout(state.timer);
    state.timer = setTimeout(poll, Math.max(delay, MIN_GAP_MS - (Date.now() - state.lastStart)));
  }
  // Used after user actions; never starts a second round while one is running.
  function pollSoon() {
    if (state.inFlight) state.again = true; else schedule(0);
  }
  function setDot(ok, why) {
    $('status-dot').className = 'dot ' + (ok ? 'ok' : 'fail');
    $('status-dot').title = ok ? 'live' : why;
  }
  function fail(why) {
    setDot(false, why);
    if (!dash.polls) setText($('updated'), 'no connection');
  }
  // Without a valid token the page must show nothing the grid told us, so drop it all.
  function lock() {
    const wasLocked = !$('auth-notice').hidden;
    $('content').hidden = true;
    $('auth-notice').hidden = false;
    $('auth-rejected').hidden = !state.token;
    for (const name of Object.keys(pages)) {
      for (const tr of pages[name].rows.values()) tr.remove();
      pages[name].rows.clear();
      setText($(name + '-summary'), '');
    }
    clearEvents();
    state.eta.clear();
    for (const k of STATS.concat(['rate', 'journal', 'role', 'epoch'])) setText($('stat-' + k), '-');
    $('role-box').hidden = $('epoch-box').hidden = $('standby-notice').hidden = true;
    setText($('updated'), 'locked');
    setDot(false, 'access token required');
    if (!wasLocked) $('token-input').focus();
  }

  function render(status, nodes, sessions, events) {
    $('auth-notice').hidden = true;
    $('content').hidden = false;
    const g = status.grid || {};
    // A restarted head starts a new event sequence: start the list over.
    if (state.instance !== null && g.instance !== state.instance) { clearEvents(); pollSoon(); }
    else renderEvents(events);
    state.instance = g.instance;
    renderHeader(g);
    state.series = Array.isArray(status.throughput) ? status.throughput : [];
    drawChart();
    const wall = status.snapshot && status.snapshot.wall_ms ? status.snapshot.wall_ms : Date.now();
    renderNodes(nodes, status.nodes_by_state || {}, wall);
    renderSessions(sessions, status.sessions_by_state || {});
    const now = Date.now();
    setText($('updated'), 'updated ' + clock(now));
    setDot(true, '');
    dash.lastUpdate = now;
    dash.polls += 1;
  }
  function renderHeader(g) {
    for (const k of STATS) setText($('stat-' + k), num(g[k]));
    setText($('stat-rate'), fmtRate(g.rate));
    const j = g.journal == null ? '-' : String(g.journal);
    setText($('stat-journal'), g.data_loss ? j + ', data loss' : j);
    $('stat-journal').classList.toggle('bad', !['ok', 'none', '-'].includes(j) || !!g.data_loss);
    renderRole(g);
  }
  // Failover: role ("active", "standby"; "single" for a head without a
  // --data-dir, which shows nothing) and lease epoch; the tooltip has the
  // takeover count and, on a standby, where the active head serves.
  function renderRole(g) {
    const role = g.role == null ? '' : String(g.role);
    const paired = role !== '' && role !== 'single';
    $('role-box').hidden = $('epoch-box').hidden = !paired;
    const active = g.active ? String(g.active) : '';
    $('standby-notice').hidden = role !== 'standby';
    setText($('standby-active'), active ? 'The active head serves clients on ' + active + '.'
      : 'No head is active: a takeover is under way.');
    if (!paired) return;
    const dd = $('stat-role'), cls = 'role-' + cssName(role);
    setText(dd, role);
    if (dd.className !== cls) dd.className = cls;
    dd.title = (role === 'standby' ? 'active head: ' + (active || 'none') + '; ' : '') +
      'takeovers by this head: ' + num(g.takeovers);
    setText($('stat-epoch'), num(g.epoch));
  }

  // Reuse one <tr> per id and move it only when its position changed: no flicker,
  // text selection survives refreshes, and only changed cells are touched.
  // Also updates the pager; returns the set of ids shown.
  function renderPage(name, res, items, keyOf, create, update) {
    const pg = pages[name], tbody = $(name + '-body'), seen = new Set();
    let cursor = tbody.firstElementChild;
    for (const item of items) {
      const key = keyOf(item);
      if (seen.has(key)) continue; // a duplicate id would steal the row
      seen.add(key);
      let tr = pg.rows.get(key);
      if (!tr) pg.rows.set(key, (tr = create(key)));
      update(tr, item);
      if (tr === cursor) cursor = cursor.nextElementSibling;
      else tbody.insertBefore(tr, cursor);
    }
    for (const [key, tr] of pg.rows) if (!seen.has(key)) { tr.remove(); pg.rows.delete(key); }
    const total = (pg.total = Number(res.total) || 0), offset = Number(res.offset) || 0;
    const count = items.length;
    $(name + '-pager').hidden = total <= pg.size;
    setText($(name + '-range'), (count ? offset + 1 : 0) + '–' + (offset + count) + ' of ' + total);
    $(name + '-prev').disabled = offset <= 0;
    $(name + '-next').disabled = offset + pg.size >= total;
    // The list shrank under the current page: jump to the last page that exists.
    if (!count && pg.offset > 0) {
      pg.offset = total > 0 ? Math.floor((total - 1) / pg.size) * pg.size : 0;
      pollSoon();
    }
    return seen;
  }
  // A row of empty cells; `extra` maps a cell index to the child elements it starts with.
  function newRow(cls, attr, key, cellClasses, extra) {
    const tr = el('tr', cls);
    tr.setAttribute(attr, key);
    cellClasses.forEach((c, i) => tr.appendChild(el('td', c, null, extra[i])));
    return tr;
  }

  function createNodeRow(key) {
    const bar = el('div', 'load', null, [el('span', 'load-fill')]);
    return newRow('node-row', 'data-node-id', key, ['mono', 'state', '', 'num', 'load-cell',
      'num', 'num', 'num'], { 4: [bar, el('span', 'load-text')] });
  }
  function updateNodeRow(tr, n, wall) {
    const st = cssName(n.state);
    const cls = 'node-row state-' + st + (st === 'quarantined' || st === 'draining' ? ' node-attn' : '');
    if (tr.className !== cls) tr.className = cls;
    const c = tr.cells;
    setText(c[0], n.node_id);
    // The API gives services as one comma-separated string.
    c[0].title = n.services ? 'services: ' + String(n.services).split(',').join(', ') : '';
    setText(c[1], n.state);
    setText(c[2], n.host);
    const stuck = n.stuck === true ? 'stuck' : n.stuck + ' stuck'; // a count, or a flag
    setText(c[3], num(n.workers) + (n.stuck ? ' (' + stuck + ')' : ''));
    const cap = Number(n.capacity) || 0, inflight = Number(n.inflight) || 0;
    const width = (cap > 0 ? Math.min(100, (inflight / cap) * 100) : 0).toFixed(1) + '%';
    const fill = c[4].querySelector('.load-fill');
    if (fill.style.width !== width) fill.style.width = width;
    c[4].classList.toggle('full', cap > 0 && inflight >= cap);
    setText(c[4].lastElementChild, inflight + '/' + cap);
    setText(c[5], num(n.done));
    setText(c[6], num(n.faulted));
    c[6].classList.toggle('bad', Number(n.faulted) > 0);
    // The head may report a heartbeat age or a unix-ms timestamp; tell them apart by size.
    const hb = n.last_heartbeat_ms == null ? NaN : Number(n.last_heartbeat_ms);
    const age = hb > 1e12 ? wall - hb : hb;
    setText(c[7], isFinite(age) ? duration(age / 1000) + ' ago' : '-');
  }
  function renderNodes(res, byState, wall) {
    const list = Array.isArray(res.nodes) ? res.nodes : [];
    const parts = ['ok', 'draining', 'quarantined', 'lost'].map((k) => (byState[k] || 0) + ' ' + k);
    setText($('nodes-summary'), (Number(res.total) || 0) + ' nodes: ' + parts.join(', '));
    renderPage('nodes', res, list, (n) => String(n.node_id), createNodeRow,
      (tr, n) => updateNodeRow(tr, n, wall));
  }

  function createSessionRow(key) {
    const prog = el('progress', 'session-progress');
    prog.value = 0;
    return newRow('session-row', 'data-session-id', key, ['mono', '', '', 'col-owner', 'state',
      'progress-cell', 'num', 'num', 'num', 'num eta'], { 5: [prog, el('span', 'pct')] });
  }
  // ETA from the smoothed change of finished tasks between two polls of this session.
  function estimate(s, p, total, now) {
    const id = String(s.session_id), prev = state.eta.get(id);
    let rate = null; // tasks per ms; unknown after the first sighting or a step backwards
    if (prev && p >= prev.p && now > prev.t) {
      const sample = (p - prev.p) / (now - prev.t);
      rate = prev.rate == null ? sample : prev.rate + ETA_ALPHA * (sample - prev.rate);
    }
    state.eta.set(id, { p: p, t: now, rate: rate });
    if (s.complete) return 'done';
    return rate > 0 && total > p ? duration((total - p) / rate / 1000) : '-';
  }
  function updateSessionRow(tr, s, now) {
    const c = tr.cells;
    const cls = 'session-row state-' + cssName(s.state) + (s.complete ? ' complete' : '');
    if (tr.className !== cls) tr.className = cls;
    setText(c[0], s.session_id);
    setText(c[1], s.service);
    setText(c[2], s.durable ? 'durable' : 'interactive');
    setText(c[3], s.owner || '');
    setText(c[4], s.state);
    const total = Number(s.total) || 0;
    const p = (Number(s.done) || 0) + (Number(s.faulted) || 0) + (Number(s.removed) || 0);
    const prog = c[5].firstElementChild, max = Math.max(total, 1); // <progress> needs max > 0
    if (prog.max !== max) prog.max = max;
    if (prog.value !== Math.min(p, max)) prog.value = Math.min(p, max);
    setText(c[5].lastElementChild, (total > 0 ? Math.floor((100 * p) / total) : 0) + '%');
    setText(c[6], num(s.done));
    setText(c[7], num(s.faulted));
    c[7].classList.toggle('bad', Number(s.faulted) > 0);
    setText(c[8], num(s.removed));
    setText(c[9], estimate(s, p, total, now));
  }
  function renderSessions(res, byState) {
    const list = Array.isArray(res.sessions) ? res.sessions : [];
    const parts = Object.keys(byState).filter((k) => byState[k]).map((k) => byState[k] + ' ' + k);
    setText($('sessions-summary'), (Number(res.total) || 0) + ' sessions' +
      (parts.length ? ': ' + parts.join(', ') : ''));
    // The owner column is noise on grids without owners; show it only when used.
    $('sessions-table').classList.toggle('no-owner', !list.some((s) => s.owner));
    const now = Date.now();
    const seen = renderPage('sessions', res, list, (s) => String(s.session_id), createSessionRow,
      (tr, s) => updateSessionRow(tr, s, now));
    // Forget ETA state of sessions no longer on screen so memory stays bounded.
    for (const id of Array.from(state.eta.keys())) if (!seen.has(id)) state.eta.delete(id);
  }

  function clearEvents() {
    $('events-list').textContent = '';
    $('events-empty').hidden = false;
    state.eventsSince = 0;
    state.lastSeq = -1;
  }
  function eventItem(ev) {
    const kind = String(ev.kind || '');
    const li = el('li', 'event');
    li.setAttribute('data-seq', String(ev.seq));
    li.setAttribute('data-kind', kind);
    const tone = BAD_KINDS.has(kind) ? ' tag-bad' : GOOD_KINDS.has(kind) ? ' tag-good'
      : WARN_KINDS.has(kind) ? ' tag-warn' : '';
    li.appendChild(el('time', 'ev-time', ev.time_ms ? clock(ev.time_ms) : '-'));
    li.appendChild(el('span', 'tag' + tone, kind));
    li.appendChild(el('span', 'ev-msg', ev.message || ev.subject || ''));
    if (ev.subject) li.title = String(ev.subject);
    return li;
  }
  function renderEvents(res) {
    const list = $('events-list'), next = Number(res.next);
    // A sequence going backwards means the head restarted; refetch from the start.
    if (isFinite(next) && next < state.eventsSince) {
      clearEvents();
      return pollSoon();
    }
    // Only the newest MAX_EVENTS can stay on the page anyway.
    for (const ev of (Array.isArray(res.events) ? res.events : []).slice(-MAX_EVENTS)) {
      const seq = Number(ev.seq);
      if (seq <= state.lastSeq) continue; // overlap with an earlier answer
      state.lastSeq = seq;
      list.insertBefore(eventItem(ev), list.firstElementChild);
    }
    while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
    if (isFinite(next)) state.eventsSince = next;
    $('events-empty').hidden = list.children.length > 0;
  }

  // Round the axis maximum up to 1, 2, 2.5 or 5 times a power of ten.
  function niceCeil(v) {
    if (!(v > 0)) return 1;
    const e = Math.pow(10, Math.floor(Math.log10(v)));
    return [1, 2, 2.5, 5, 10].find((m) => m * e >= v) * e;
  }
  function drawChart() {
    const canvas = $('throughput-chart'), w = canvas.clientWidth;
    if (!w) return; // hidden; drawn again once visible
    const h = CHART_HEIGHT, dpr = window.devicePixelRatio || 1;
    // Size the bitmap to the element so lines stay crisp at any width and pixel ratio.
    if (canvas.width !== Math.round(w * dpr)) canvas.width = Math.round(w * dpr);
    if (canvas.height !== Math.round(h * dpr)) canvas.height = Math.round(h * dpr);
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const L = 6, T = 18, pw = w - 12, ph = h - 36, base = T + ph;
    // Grid lines at the axis max and at zero, then the time labels.
    Object.assign(ctx, { font: '11px system-ui, sans-serif', lineWidth: 1, strokeStyle: '#e5e7eb' });
    ctx.beginPath();
    for (const gy of [T + 0.5, base + 0.5]) { ctx.moveTo(L, gy); ctx.lineTo(L + pw, gy); }
    ctx.stroke();
    Object.assign(ctx, { fillStyle: '#6b7280', textAlign: 'right' });
    ctx.fillText('now', L + pw, h - 4);
    ctx.textAlign = 'left';
    ctx.fillText('-5 min', L, h - 4);
    const pts = state.series.filter((p) => Array.isArray(p) && isFinite(p[0]) && isFinite(p[1]));
    if (!pts.length) return ctx.fillText('no data yet', L + pw / 2 - 28, T + ph / 2);
    const end = Number(pts[pts.length - 1][0]), start = end - CHART_SECONDS;
    const top = niceCeil(Math.max.apply(null, pts.map((p) => Number(p[1]))));
    ctx.fillText('max ' + fmtRate(top).replace(/\.0$/, '') + ' /s', L, T - 5);
    const x = (t) => L + ((Math.max(t, start) - start) / CHART_SECONDS) * pw;
    const y = (v) => base - (Math.max(0, v) / top) * ph;
    ctx.beginPath(); // filled area under the curve
    ctx.moveTo(x(pts[0][0]), base);
    for (const p of pts) ctx.lineTo(x(p[0]), y(p[1]));
    ctx.lineTo(x(end), base);
    ctx.fillStyle = 'rgba(37, 99, 235, 0.15)';
    ctx.fill();
    ctx.beginPath(); // the line itself
    pts.forEach((p, i) => (i ? ctx.lineTo(x(p[0]), y(p[1])) : ctx.moveTo(x(p[0]), y(p[1]))));
    Object.assign(ctx, { strokeStyle: '#2563eb', lineWidth: 1.5, fillStyle: '#2563eb' });
    ctx.stroke();
    if (pts.length === 1) ctx.fillRect(x(end) - 2, y(pts[0][1]) - 2, 4, 4); // a lone point has no line
  }

  // Paging only moves the offset; the next round fetches that page.
  for (const name of Object.keys(pages)) {
    const pg = pages[name];
    const go = (dir) => () => {
      const o = pg.offset + dir * pg.size;
      if (o >= 0 && o < pg.total) pg.offset = o;
      pollSoon();
    };
    $(name + '-prev').addEventListener('click', go(-1));
    $(name + '-next').addEventListener('click', go(1));
  }
  $('token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    saveToken($('token-input').value.trim());
    $('token-input').value = '';
    pollSoon();
  });
  window.addEventListener('resize', drawChart);
  // A #token=… pasted into an open tab changes only the fragment: no reload.
  window.addEventListener('hashchange', () => { initToken(); pollSoon(); });
  initToken();
  poll();
})();
