// bhavstore web console: one page, hash routes, no dependencies. Every value from the server is
// put on the page as text (textContent / SVG attributes), never as HTML.
'use strict';

const TOKEN_KEY = 'bhavstore.token';
const SVG = 'http://www.w3.org/2000/svg';
const main = document.getElementById('main');
let live = null; // the open stream reader, closed when the page changes

// ---------------------------------------------------------------- helpers

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, String(v));
  }
  for (const c of children.flat()) if (c) e.append(c);
  return e;
}

function token() { return sessionStorage.getItem(TOKEN_KEY) || ''; }

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, opts = {}) {
  const headers = { Accept: 'application/json' };
  if (token()) headers.Authorization = 'Bearer ' + token();
  const resp = await fetch(path, { headers, signal: opts.signal, cache: 'no-store' });
  if (!resp.ok) {
    let msg = resp.status + ' ' + resp.statusText;
    try { const b = await resp.json(); if (b && b.error) msg = b.error.message || b.error.code || msg; } catch (_) { /* not JSON */ }
    throw new ApiError(resp.status, msg);
  }
  return resp.json();
}

function fmtNum(v, digits = 4) {
  if (v === null || v === undefined || v === '') return '—';
  const n = Number(v);
  if (!Number.isFinite(n)) return String(v);
  if (Number.isInteger(n) && Math.abs(n) < 1e15) return n.toLocaleString('en-IN');
  const a = Math.abs(n);
  return a !== 0 && (a < 1e-3 || a >= 1e7) ? n.toExponential(3) : n.toFixed(digits).replace(/\.?0+$/, '');
}

function fmtMs(ms) {
  if (ms === null || ms === undefined) return '—';
  const n = Number(ms);
  return n >= 60000 ? (n / 60000).toFixed(1) + ' min' : n >= 1000 ? (n / 1000).toFixed(2) + ' s' : n + ' ms';
}

function fmtTime(t) { return t ? String(t).replace('T', ' ').replace(/\.\d+/, '').replace('Z', ' UTC') : '—'; }

function badge(text, cls) { return el('span', { class: 'badge ' + (cls || text) }, text); }

function showError(where, e) {
  if (e && e.name === 'AbortError') return;
  where.replaceChildren(el('p', { class: 'error', role: 'alert' },
    e instanceof ApiError && e.status === 401
      ? 'A valid API token is required: enter it at the top right and press Sign in.'
      : 'Error: ' + (e && e.message ? e.message : String(e))));
}

function table(columns, rows, attrs) {
  return el('table', attrs,
    el('thead', {}, el('tr', {}, columns.map((c) => el('th', { class: c.num ? 'num' : null }, c.label)))),
    el('tbody', {}, rows.map((r) => el('tr', r.__attrs || {},
      columns.map((c) => {
        const v = c.render ? c.render(r) : r[c.key];
        return el('td', { class: c.num ? 'num' : null }, v instanceof Node ? v : (v === null || v === undefined ? '—' : String(v)));
      })))));
}

function dateMs(d) { return Date.parse(String(d).length === 10 ? d + 'T00:00:00Z' : d); }

// ---------------------------------------------------------------- charts

// A small line chart: series [{name, cls, color, points: [{x (ms), y, data}]}]; points of series
// with `clickable` are drawn as circles and call onClick(point).
function lineChart({ series, width = 320, height = 120, xLabel, onClick, id, yFmt = fmtNum }) {
  const pad = { l: 52, r: 10, t: 8, b: 22 };
  const all = series.flatMap((s) => s.points.filter((p) => p.y !== null && Number.isFinite(p.y)));
  const root = svg('svg', { class: 'chart', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', id });
  if (all.length === 0) {
    root.append(svg('text', { x: width / 2, y: height / 2, 'text-anchor': 'middle', text: 'no values' }));
    return root;
  }
  let [x0, x1] = [Math.min(...all.map((p) => p.x)), Math.max(...all.map((p) => p.x))];
  let [y0, y1] = [Math.min(...all.map((p) => p.y)), Math.max(...all.map((p) => p.y))];
  if (x0 === x1) { x0 -= 86400000; x1 += 86400000; }
  if (y0 === y1) { const d = Math.abs(y0) * 0.05 || 1; y0 -= d; y1 += d; }
  const X = (x) => pad.l + ((x - x0) / (x1 - x0)) * (width - pad.l - pad.r);
  const Y = (y) => height - pad.b - ((y - y0) / (y1 - y0)) * (height - pad.t - pad.b);
  for (const f of [0, 0.5, 1]) {
    const yv = y0 + f * (y1 - y0);
    root.append(svg('line', { class: 'gridline', x1: pad.l, x2: width - pad.r, y1: Y(yv), y2: Y(yv) }));
    root.append(svg('text', { x: pad.l - 4, y: Y(yv) + 3, 'text-anchor': 'end', text: yFmt(yv) }));
  }
  root.append(svg('line', { class: 'axis', x1: pad.l, x2: pad.l, y1: pad.t, y2: height - pad.b }));
  root.append(svg('line', { class: 'axis', x1: pad.l, x2: width - pad.r, y1: height - pad.b, y2: height - pad.b }));
  const day = (ms) => new Date(ms).toISOString().slice(0, 10);
  root.append(svg('text', { x: pad.l, y: height - 6, text: xLabel ? xLabel(x0) : day(x0) }));
  root.append(svg('text', { x: width - pad.r, y: height - 6, 'text-anchor': 'end', text: xLabel ? xLabel(x1) : day(x1) }));
  for (const s of series) {
    const pts = s.points.filter((p) => p.y !== null && Number.isFinite(p.y));
    // A gap (null) breaks the line.
    let seg = [];
    const flush = () => {
      if (seg.length > 1) root.append(svg('polyline', { fill: 'none', stroke: s.color, 'stroke-width': 1.6, points: seg.join(' ') }));
      seg = [];
    };
    for (const p of s.points) {
      if (p.y === null || !Number.isFinite(p.y)) { flush(); continue; }
      seg.push(X(p.x).toFixed(1) + ',' + Y(p.y).toFixed(1));
    }
    flush();
    if (s.clickable || pts.length <= 40) {
      for (const p of pts) {
        const c = svg('circle', { class: 'pt' + (s.cls ? ' ' + s.cls : ''), cx: X(p.x).toFixed(1), cy: Y(p.y).toFixed(1),
          r: s.clickable ? 3 : 2, fill: s.color, 'data-x': day(p.x) });
        c.append(svg('title', { text: `${s.name} ${day(p.x)}: ${fmtNum(p.y)}` }));
        if (s.clickable && onClick) c.addEventListener('click', () => onClick(p, c));
        root.append(c);
      }
    }
  }
  return root;
}

function legend(items) {
  return el('div', { class: 'legend' }, items.map(([cls, name]) => el('span', {}, el('span', { class: 'sw ' + cls }), name)));
}

// ---------------------------------------------------------------- diff

// Line diff by longest common subsequence: [{op: ' '|'+'|'-', line}].
function diffLines(a, b) {
  const A = a.split('\n'); const B = b.split('\n');
  const n = A.length; const m = B.length;
  const L = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) {
    L[i][j] = A[i] === B[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
  }
  const out = []; let i = 0; let j = 0;
  while (i < n && j < m) {
    if (A[i] === B[j]) { out.push({ op: ' ', line: A[i] }); i++; j++; }
    else if (L[i + 1][j] >= L[i][j + 1]) out.push({ op: '-', line: A[i++] });
    else out.push({ op: '+', line: B[j++] });
  }
  while (i < n) out.push({ op: '-', line: A[i++] });
  while (j < m) out.push({ op: '+', line: B[j++] });
  return out;
}

function diffBlock(title, a, b) {
  const d = diffLines(a || '', b || '');
  const changed = d.filter((x) => x.op !== ' ').length;
  return el('div', {},
    el('h3', {}, `${title} `, el('span', { class: 'muted' }, changed ? `${changed} changed line(s)` : 'identical')),
    el('pre', { class: 'diff', 'data-changed': changed },
      d.map((x) => el('span', { class: x.op === '+' ? 'add' : x.op === '-' ? 'del' : 'same' }, x.op + ' ' + x.line))));
}

// ---------------------------------------------------------------- pages

async function pageViews(root, signal) {
  const { views } = await api('/ui/api/views', { signal });
  const daily = views.filter((v) => !v.streaming || v.versions.some((x) => x.rows !== undefined));
  const detail = el('div', { id: 'view-detail' });
  const list = el('ul', { class: 'list', id: 'views-list' });
  const select = async (v, li) => {
    list.querySelectorAll('li').forEach((x) => x.classList.remove('selected'));
    li.classList.add('selected');
    await showView(detail, v, signal).catch((e) => showError(detail, e));
  };
  for (const v of daily) {
    const cur = v.versions.find((x) => x.is_current);
    const li = el('li', { 'data-view': v.view },
      el('strong', {}, v.view), el('br'),
      el('span', { class: 'muted' }, `${v.versions.length} version(s)${cur ? ' · current ' + cur.version : ''}${v.streaming ? ' · streaming' : ''}`));
    li.addEventListener('click', () => select(v, li));
    list.append(li);
  }
  root.replaceChildren(el('h2', {}, 'Feature views'),
    el('div', { class: 'layout' }, el('div', { class: 'card' }, list), detail));
  const first = list.querySelector('li');
  if (first) await select(daily[0], first);
  else detail.append(el('p', { class: 'muted' }, 'No feature view is published yet.'));
}

async function showView(root, v, signal) {
  const versions = v.versions.slice().sort((a, b) => String(a.published_at || '').localeCompare(String(b.published_at || '')));
  const current = versions.find((x) => x.is_current) || versions[versions.length - 1];
  const defCache = new Map();
  const def = (ver) => {
    if (!defCache.has(ver)) defCache.set(ver, api(`/ui/api/definition?view=${encodeURIComponent(v.view)}&version=${encodeURIComponent(ver)}`, { signal }));
    return defCache.get(ver);
  };
  const code = el('div', { id: 'definition' });
  const showDef = async (ver, what) => {
    code.replaceChildren(el('p', { class: 'muted' }, 'Loading…'));
    try {
      const d = await def(ver);
      const tabs = el('div', { class: 'tabs' },
        ['sql', 'yaml'].map((w) => el('button', { class: w === what ? 'active' : null, 'data-tab': w, onclick: () => showDef(ver, w) }, w.toUpperCase())));
      code.replaceChildren(
        el('h3', {}, `Definition of ${ver}`),
        tabs,
        el('pre', { id: 'definition-' + what }, d[what] || ''),
        el('p', { class: 'muted' }, `functions: ${Object.entries(d.functions || {}).map(([k, n]) => k + '@' + n).join(', ') || '—'} · recorded ${fmtTime(d.created_at)}`));
    } catch (e) { showError(code, e); }
  };
  const rows = versions.map((x) => ({ ...x, __attrs: { 'data-version': x.version } }));
  const versionTable = table([
    { label: 'Version', render: (r) => el('a', { href: '#', onclick: (e) => { e.preventDefault(); showDef(r.version, 'sql'); } }, r.version) },
    { label: '', render: (r) => (r.is_current ? badge('current') : '') },
    { label: 'Rows', key: 'rows', num: true, render: (r) => fmtNum(r.rows) },
    { label: 'Trade dates', render: (r) => (r.min_trade_date ? `${r.min_trade_date} … ${r.max_trade_date}` : '—') },
    { label: 'Manifests', key: 'manifests', num: true },
    { label: 'Published', render: (r) => fmtTime(r.published_at) },
    { label: 'Latest run', key: 'latest_run_id' },
  ], rows, { id: 'versions-table' });
  const from = el('select', { id: 'diff-from' }, versions.map((x) => el('option', { value: x.version }, x.version)));
  const to = el('select', { id: 'diff-to' }, versions.map((x) => el('option', { value: x.version }, x.version)));
  if (versions.length > 1) { from.value = versions[versions.length - 2].version; to.value = current.version; }
  const diffOut = el('div', { id: 'diff-output' });
  const runDiff = async () => {
    diffOut.replaceChildren(el('p', { class: 'muted' }, 'Comparing…'));
    try {
      const [a, b] = await Promise.all([def(from.value), def(to.value)]);
      diffOut.replaceChildren(el('div', { class: 'split' }, diffBlock('SQL', a.sql, b.sql), diffBlock('YAML', a.yaml, b.yaml)));
    } catch (e) { showError(diffOut, e); }
  };
  root.replaceChildren(
    el('div', { class: 'card' }, el('h3', {}, v.view), versionTable),
    el('div', { class: 'card' }, code),
    el('div', { class: 'card' }, el('h3', {}, 'Compare two versions'),
      versions.length > 1
        ? [el('div', { class: 'controls' }, el('label', {}, 'from', from), el('label', {}, 'to', to),
          el('button', { id: 'diff-run', onclick: runDiff }, 'Diff')), diffOut]
        : el('p', { class: 'muted' }, 'Only one version so far.')));
  if (current) await showDef(current.version, 'sql');
}

async function pageRuns(root, signal) {
  const { runs } = await api('/ui/api/runs', { signal });
  const longest = Math.max(1, ...runs.map((r) => Number(r.duration_ms) || 0));
  const rows = runs.map((r) => ({ ...r, __attrs: { 'data-run': r.run_id, 'data-status': r.status } }));
  root.replaceChildren(el('h2', {}, 'Runs'),
    el('div', { class: 'card' },
      runs.length === 0 ? el('p', { class: 'muted' }, 'No runs yet.') : table([
        { label: 'Started', render: (r) => fmtTime(r.started_at) },
        { label: 'Status', render: (r) => badge(r.status, ['succeeded', 'failed', 'running', 'warning'].includes(r.status) ? r.status : 'other') },
        { label: 'View', key: 'view' },
        { label: 'Version', key: 'version' },
        { label: 'Mode', render: (r) => [r.kind, r.mode].filter(Boolean).join(' / ') },
        { label: 'Rows', num: true, render: (r) => fmtNum(r.rows) },
        { label: 'Trade dates', render: (r) => (r.min_trade_date ? `${r.min_trade_date} … ${r.max_trade_date}` : '—') },
        { label: 'Duration', num: true, render: (r) => fmtMs(r.duration_ms) },
        { label: '', render: (r) => { const b = el('div', { class: 'bar' }); b.style.width = Math.round(100 * (Number(r.duration_ms) || 0) / longest) + 'px'; return b; } },
        { label: 'Compute', num: true, render: (r) => fmtMs(r.compute_ms) },
        { label: 'Tail', num: true, render: (r) => fmtMs(r.tail_ms) },
        { label: 'Error / warnings', render: (r) => r.error || r.warnings || '' },
      ], rows, { id: 'runs-table' })));
}

async function pageQuality(root, signal, params) {
  const { views } = await api('/ui/api/views', { signal });
  const names = views.filter((v) => v.versions.some((x) => x.is_current)).map((v) => v.view);
  const pick = el('select', { id: 'quality-view' }, names.map((n) => el('option', { value: n }, n)));
  if (params.get('view') && names.includes(params.get('view'))) pick.value = params.get('view');
  pick.addEventListener('change', () => { location.hash = '#/quality?view=' + encodeURIComponent(pick.value); });
  const out = el('div', { id: 'quality-charts', class: 'grid' });
  root.replaceChildren(el('h2', {}, 'Data quality'),
    el('div', { class: 'controls' }, el('label', {}, 'view', pick),
      el('span', { class: 'muted' }, 'PSI of each feature against its reference sessions, and the share of NULLs, per trade date (newest run where runs overlap).')),
    out);
  if (!pick.value) { out.append(el('p', { class: 'muted' }, 'No published view.')); return; }
  const q = await api('/ui/api/quality?view=' + encodeURIComponent(pick.value), { signal });
  const byFeature = new Map();
  // Rows without a feature are figures of the whole view (entities missing, suspicious returns).
  const whole = q.rows.filter((r) => r.feature === null || r.feature === undefined);
  if (whole.length) {
    const pts = (k) => whole.map((r) => ({ x: dateMs(r.trade_date), y: r[k] === null ? null : Number(r[k]) }));
    const last = whole[whole.length - 1];
    out.append(el('div', { class: 'card', id: 'quality-view-level' },
      el('h3', {}, 'whole view ', el('span', { class: 'muted' }, `missing entities ${fmtNum(last.missing_entities)} · suspicious returns ${fmtNum(last.suspicious_returns)}`)),
      el('div', { class: 'muted' }, 'entities missing'),
      lineChart({ series: [{ name: 'missing entities', color: '#9a6700', points: pts('missing_entities') }], height: 90, width: 330 }),
      el('div', { class: 'muted' }, 'suspicious returns'),
      lineChart({ series: [{ name: 'suspicious returns', color: '#8250df', points: pts('suspicious_returns') }], height: 90, width: 330 })));
  }
  for (const r of q.rows.filter((x) => x.feature !== null && x.feature !== undefined)) {
    if (!byFeature.has(r.feature)) byFeature.set(r.feature, []);
    byFeature.get(r.feature).push(r);
  }
  if (byFeature.size === 0) out.append(el('p', { class: 'muted' }, 'No quality figures for this version yet.'));
  for (const [feature, rs] of byFeature) {
    const last = rs[rs.length - 1];
    const pts = (k) => rs.map((r) => ({ x: dateMs(r.trade_date), y: r[k] === null ? null : Number(r[k]) }));
    out.append(el('div', { class: 'card', 'data-feature': feature },
      el('h3', {}, feature, ' ', el('span', { class: 'muted' }, `PSI ${fmtNum(last.psi)} · NULL ${fmtNum(100 * last.null_rate, 2)}% · ${rs.length} date(s)`)),
      el('div', { class: 'muted' }, 'PSI'),
      lineChart({ series: [{ name: 'PSI', color: '#1f6feb', points: pts('psi') }], height: 90, width: 330 }),
      el('div', { class: 'muted' }, 'NULL rate'),
      lineChart({ series: [{ name: 'NULL rate', color: '#cf222e', points: pts('null_rate') }], height: 90, width: 330,
        yFmt: (v) => fmtNum(100 * v, 2) + '%' })));
  }
  root.append(el('p', { class: 'muted' }, `${q.view} ${q.version}: ${q.rows.length} figure(s).`));
}

async function pageSeries(root, signal, params) {
  const { views } = await api('/ui/api/views', { signal });
  const names = views.filter((v) => !v.streaming && v.versions.some((x) => x.is_current)).map((v) => v.view);
  const view = names.includes(params.get('view')) ? params.get('view') : names[0];
  const entity = params.get('entity') || '511064';
  const viewSel = el('select', { id: 'series-view' }, names.map((n) => el('option', { value: n }, n)));
  viewSel.value = view || '';
  const featSel = el('select', { id: 'series-feature' });
  const entityIn = el('input', { id: 'series-entity', value: entity, size: 14 });
  const go = el('button', { id: 'series-go', type: 'submit' }, 'Show');
  const out = el('div', { id: 'series-out' });
  const lineage = el('div', { id: 'lineage-panel', class: 'card' }, el('p', { class: 'muted' }, 'Click a point of the feature to see where its value comes from.'));
  const form = el('form', { class: 'controls', onsubmit: (e) => {
    e.preventDefault();
    location.hash = `#/series?view=${encodeURIComponent(viewSel.value)}&feature=${encodeURIComponent(featSel.value)}&entity=${encodeURIComponent(entityIn.value.trim())}`;
  } }, el('label', {}, 'view', viewSel), el('label', {}, 'feature', featSel), el('label', {}, 'entity (scrip code, symbol or ISIN)', entityIn), go);
  root.replaceChildren(el('h2', {}, 'Feature series'), form, out, lineage);
  if (!view) { out.append(el('p', { class: 'muted' }, 'No published daily view.')); return; }
  // The view's features: the columns of its current definition's YAML feature list, read
  // from a lookup-free source: the series endpoint refuses unknown features, so list them
  // from the YAML of the current version.
  const fillFeatures = async (v) => {
    const cur = views.find((x) => x.view === v).versions.find((x) => x.is_current);
    const d = await api(`/ui/api/definition?view=${encodeURIComponent(v)}&version=${encodeURIComponent(cur.version)}`, { signal });
    const feats = [...String(d.yaml).matchAll(/^\s*-\s*name:\s*([A-Za-z_][A-Za-z0-9_]*)\s*$/gm)].map((m) => m[1]);
    featSel.replaceChildren(...feats.map((f) => el('option', { value: f }, f)));
    return feats;
  };
  const feats = await fillFeatures(view);
  viewSel.addEventListener('change', () => fillFeatures(viewSel.value).catch((e) => showError(out, e)));
  const feature = feats.includes(params.get('feature')) ? params.get('feature') : (feats.includes('sma_20') ? 'sma_20' : feats[0]);
  featSel.value = feature;
  out.append(el('p', { class: 'muted' }, 'Loading…'));
  const s = await api(`/ui/api/series?view=${encodeURIComponent(view)}&feature=${encodeURIComponent(feature)}&entity_id=${encodeURIComponent(entity)}`, { signal });
  const lastFactor = s.adjusted.length ? Number(s.adjusted[s.adjusted.length - 1].adj_factor) : 1;
  const raw = s.raw.map((r) => ({ x: dateMs(r.trade_date), y: r.close === null ? null : Number(r.close) }));
  // Back-adjusted onto the newest row's basis, as the views compute their windows.
  const adj = s.adjusted.map((r) => ({ x: dateMs(r.trade_date), y: r.close === null ? null : Number(r.close) * Number(r.adj_factor) / lastFactor }));
  const vals = s.values.map((r) => ({ x: dateMs(r.trade_date), y: r.value === null ? null : Number(r.value), data: r }));
  const differs = raw.some((p, i) => adj[i] && p.y !== null && adj[i].y !== null && Math.abs(p.y - adj[i].y) > 1e-9 * Math.max(1, Math.abs(p.y)));
  const title = s.name ? `${s.name.symbol || ''} ${s.name.name || ''}`.trim() : '';
  const onClick = async (p, circle) => {
    out.querySelectorAll('.pt.sel').forEach((c) => c.classList.remove('sel'));
    circle.classList.add('sel');
    const date = p.data.trade_date;
    lineage.replaceChildren(el('p', { class: 'muted' }, `Lineage of ${feature} on ${date}…`));
    try {
      const l = await api(`/feature-store/lineage?feature_view=${encodeURIComponent(view)}&entity_id=${encodeURIComponent(s.scrip_code)}&date=${encodeURIComponent(date)}`, { signal });
      lineage.replaceChildren(
        el('h3', {}, `Lineage: ${view}.${feature} of ${s.scrip_code} on ${date} = ${fmtNum(p.y)}`),
        el('dl', { class: 'kv' },
          el('dt', {}, 'version'), el('dd', {}, l.version ?? '—'),
          el('dt', {}, 'definition hash'), el('dd', {}, l.definition_hash ?? '—'),
          el('dt', {}, 'manifest seq'), el('dd', {}, l.manifest_seq ?? '—'),
          el('dt', {}, 'run'), el('dd', {}, l.run_id ?? '—'),
          el('dt', {}, 'prices'), el('dd', {}, l.prices ?? '—')),
        el('h3', {}, `Inputs (${l.inputs.length} trade date(s))`),
        table([
          { label: 'Trade date', key: 'trade_date' },
          { label: 'Raw file key', key: 'raw_key' },
          { label: 'sha256', render: (r) => el('code', {}, String(r.raw_sha256 || '').slice(0, 16) + '…') },
          { label: 'Line', key: 'source_line', num: true },
          { label: 'Adj. factor', num: true, render: (r) => fmtNum(r.adj_factor) },
        ], l.inputs.slice().reverse().slice(0, 60), { id: 'lineage-inputs' }),
        l.corporate_actions.length
          ? el('div', {}, el('h3', {}, 'Corporate actions'), el('pre', {}, JSON.stringify(l.corporate_actions, null, 2)))
          : null);
    } catch (e) { showError(lineage, e); }
  };
  out.replaceChildren(
    el('div', { class: 'card' },
      el('h3', {}, `${s.scrip_code} ${title}: close, raw vs adjusted`, ' ',
        el('span', { class: 'muted' }, differs ? '(adjusted differs: corporate actions in range)' : '(no adjustment in range)')),
      legend([['raw', 'raw close (bhavcopy)'], ['adj', 'adjusted close (bhavcopy_adjusted, newest basis)']]),
      lineChart({ id: 'chart-prices', width: 1100, height: 220, series: [
        { name: 'raw close', color: '#8250df', points: raw },
        { name: 'adjusted close', color: '#1f6feb', points: adj }] })),
    el('div', { class: 'card' },
      el('h3', {}, `${view}.${feature}`, ' ', el('span', { class: 'muted', id: 'series-count' }, `${vals.filter((p) => p.y !== null).length} point(s); click one for its lineage`)),
      legend([['feat', feature]]),
      lineChart({ id: 'chart-feature', width: 1100, height: 220, onClick, series: [
        { name: feature, color: '#d1242f', points: vals, clickable: true, cls: 'feature-pt' }] })));
}

async function pageLive(root, signal) {
  const { streaming_views: names } = await api('/ui/api/views', { signal });
  if (!names || names.length === 0) {
    root.replaceChildren(el('h2', {}, 'Live'), el('div', { class: 'card', id: 'live-none' },
      el('p', {}, 'No streaming view is configured on this server (feature_defs has no view over intraday_bars, or intraday is off).')));
    return;
  }
  const pick = el('select', { id: 'live-view' }, names.map((n) => el('option', { value: n }, n)));
  const status = el('span', { id: 'live-status', class: 'badge other' }, 'connecting');
  const count = el('span', { id: 'live-count', class: 'muted' }, '0 update(s)');
  const body = el('tbody', { id: 'live-rows' });
  const head = el('tr', {});
  const tbl = el('table', { id: 'live-table' }, el('thead', {}, head), body);
  const empty = el('p', { class: 'muted', id: 'live-empty' }, 'Waiting for bars (POST /feature-store/push, Flight SQL ingest or bhavstore import-bars)…');
  root.replaceChildren(el('h2', {}, 'Live intraday values'),
    el('div', { class: 'controls' }, el('label', {}, 'streaming view', pick), status, count),
    el('div', { class: 'card' }, empty, tbl));
  const start = (view) => {
    if (live) live.abort();
    live = new AbortController();
    readStream(view, live.signal, { status, count, body, head, empty });
  };
  pick.addEventListener('change', () => start(pick.value));
  start(pick.value);
}

// Reads `GET /feature-store/stream` with fetch (EventSource cannot send the Bearer header) and
// keeps one row per instrument with its newest values.
async function readStream(view, signal, ui) {
  const rows = new Map(); let features = null; let n = 0;
  const setStatus = (t, cls) => { ui.status.textContent = t; ui.status.className = 'badge ' + cls; };
  try {
    const headers = { Accept: 'text/event-stream' };
    if (token()) headers.Authorization = 'Bearer ' + token();
    const resp = await fetch('/feature-store/stream?view=' + encodeURIComponent(view), { headers, signal, cache: 'no-store' });
    if (!resp.ok) {
      let msg = resp.status + ''; try { msg = (await resp.json()).error.message; } catch (_) { /* not JSON */ }
      throw new ApiError(resp.status, msg);
    }
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value.replace(/\r\n/g, '\n');
      let cut;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, cut); buf = buf.slice(cut + 2);
        let event = 'message'; const data = [];
        for (const line of block.split('\n')) {
          if (line.startsWith('event:')) event = line.slice(6).trim();
          else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
        }
        if (event === 'subscribed') setStatus('live', 'ok');
        else if (event === 'dropped') setStatus('dropped (too slow); reload to reconnect', 'failed');
        else if (event === 'features' && data.length) {
          const e = JSON.parse(data.join('\n'));
          n++;
          ui.count.textContent = `${n} update(s)`;
          if (!features) {
            features = Object.keys(e.values || {});
            ui.head.replaceChildren(...['instrument', 'bar (ts)', 'known at', ...features].map((h) => el('th', {}, h)));
          }
          const tr = el('tr', { 'data-entity': e.entity_id, class: 'flash' },
            el('td', {}, e.entity_id), el('td', {}, fmtTime(e.ts)), el('td', {}, fmtTime(e.known_at)),
            features.map((f) => el('td', { class: 'num', 'data-feature': f }, fmtNum(e.values[f]))));
          const old = rows.get(e.entity_id);
          if (old) old.replaceWith(tr); else ui.body.append(tr);
          rows.set(e.entity_id, tr);
          ui.empty.hidden = true;
        }
      }
    }
    if (!signal.aborted) setStatus('closed', 'other');
  } catch (e) {
    if (e.name === 'AbortError') return;
    setStatus(e instanceof ApiError && e.status === 401 ? 'token required' : 'error: ' + e.message, 'failed');
  }
}

// ---------------------------------------------------------------- router

const PAGES = { views: pageViews, runs: pageRuns, quality: pageQuality, series: pageSeries, live: pageLive };
let current = null;

async function route() {
  const [path, query] = (location.hash.replace(/^#\/?/, '') || 'views').split('?');
  const page = PAGES[path] ? path : 'views';
  if (current) current.abort();
  if (live) { live.abort(); live = null; }
  current = new AbortController();
  const signal = current.signal;
  document.querySelectorAll('#nav a').forEach((a) => a.classList.toggle('active', a.dataset.page === page));
  document.body.dataset.page = page;
  delete document.body.dataset.ready;
  main.replaceChildren(el('p', { class: 'muted' }, 'Loading…'));
  if (!token() && !sessionStorage.getItem(TOKEN_KEY + '.none')) {
    // Ask first rather than collect 401s; a server without tokens is used with "Sign in" empty.
    main.replaceChildren(el('div', { class: 'card', id: 'login' },
      el('h2', {}, 'Sign in'),
      el('p', {}, 'Enter an API token (server.tokens) at the top right and press Sign in. Press it with the field empty if this server has no tokens.')));
    document.body.dataset.ready = 'login';
    return;
  }
  try {
    await PAGES[page](main, signal, new URLSearchParams(query || ''));
  } catch (e) {
    showError(main, e);
  }
  if (!signal.aborted) document.body.dataset.ready = page;
}

document.getElementById('token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = document.getElementById('token-input');
  if (input.value.trim()) sessionStorage.setItem(TOKEN_KEY, input.value.trim());
  else sessionStorage.setItem(TOKEN_KEY + '.none', '1');
  input.value = '';
  route();
});
document.getElementById('token-clear').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(TOKEN_KEY + '.none');
  route();
});
window.addEventListener('hashchange', route);
route();
