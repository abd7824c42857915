/*
 * dashboard.js: the live dashboard of opecom-server.
 *
 * Polls GET /api/sessions?limit=50 every 2 s, GET /api/experiments and
 * GET /api/drift every 5 s (each poll starts when the previous one finished)
 * and redraws the sessions table (#sessions-table), the score histogram
 * (#score-chart, inline SVG), the per-variant conversion panel (#experiments)
 * and the drift card (#drift: one variant at a time, the control first, its
 * features by PSI). When the server cannot be reached the last data stays on
 * screen, dimmed, under an error.
 */
(function () {
  'use strict';

  var SESSIONS_EVERY = 2000, EXPERIMENTS_EVERY = 5000, DRIFT_EVERY = 5000, TIMEOUT = 4000;
  var SVGNS = 'http://www.w3.org/2000/svg';

  function $(id) { return document.getElementById(id); }
  /* Builds an element: el('td', {class: 'num'}, 'text' | node | [children]). */
  function el(tag, attrs, kids) {
    var n = tag.indexOf('svg:') === 0 ? document.createElementNS(SVGNS, tag.slice(4)) : document.createElement(tag);
    for (var k in attrs || {}) if (attrs[k] != null) n.setAttribute(k, attrs[k]);
    [].concat(kids == null ? [] : kids).forEach(function (c) {
      n.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
    });
    return n;
  }
  function pct(x, digits) { return x == null || isNaN(x) ? '–' : (x * 100).toFixed(digits == null ? 1 : digits) + '%'; }
  function clock(ms) { return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' }); }
  function duration(s) {
    s = Math.max(0, Math.round(s || 0));
    var h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, r = s % 60;
    return (h ? h + ':' + (m < 10 ? '0' : '') : '') + m + ':' + (r < 10 ? '0' : '') + r;
  }
  function ago(ms) {
    var s = Math.max(0, Math.round(ms / 1000));
    return s < 60 ? s + ' s ago' : s < 3600 ? Math.floor(s / 60) + ' min ago' : Math.floor(s / 3600) + ' h ago';
  }
  function short(id) { id = String(id || ''); return id.length > 12 ? id.slice(0, 10) + '…' : id; }
  /* Red to amber to green along the probability. */
  function hue(p) { return 'hsl(' + Math.round(8 + 140 * Math.max(0, Math.min(1, p))) + ' 55% 45%)'; }
  var palette = ['#2f5d50', '#7a4fa0', '#c2562f', '#2d6cb0', '#a07a1f', '#b0416e'];
  function variantColor(name) {
    var h = 0; for (var i = 0; i < String(name).length; i++) h = (h * 31 + String(name).charCodeAt(i)) >>> 0;
    return palette[h % palette.length];
  }

  /* ---- fetching with a timeout; errors carry a readable message ---- */
  function getJSON(url) {
    var ctl = window.AbortController ? new AbortController() : null;
    var timer = setTimeout(function () { if (ctl) ctl.abort(); }, TIMEOUT);
    return fetch(url, { cache: 'no-store', signal: ctl && ctl.signal })
      .then(function (r) {
        if (!r.ok) throw new Error('HTTP ' + r.status + ' from ' + url);
        return r.json();
      }, function (e) {
        throw new Error(e && e.name === 'AbortError' ? 'no answer within ' + TIMEOUT / 1000 + ' s' : 'server unreachable');
      })
      .finally(function () { clearTimeout(timer); });
  }

  /* ---- connection status ---- */
  var failing = {}, failingSince = 0, lastOk = 0;
  function status(source, err) {
    if (err) { failing[source] = err.message; failingSince = failingSince || Date.now(); }
    else { delete failing[source]; lastOk = Date.now(); }
    var problems = Object.keys(failing);
    var box = $('error');
    document.body.classList.toggle('stale', problems.length > 0);
    $('status').className = 'status ' + (problems.length ? 'bad' : 'ok');
    if (problems.length) {
      box.hidden = false;
      var same = problems.every(function (k) { return failing[k] === failing[problems[0]]; });
      box.textContent = 'Cannot get live data: ' + (same ? failing[problems[0]] + ' (/api/' + problems.join(', /api/') + ')'
        : problems.map(function (k) { return '/api/' + k + ': ' + failing[k]; }).join('; ')) +
        '. Retrying… Failing since ' + clock(failingSince) +
        (lastOk ? '; the figures below are from ' + clock(lastOk) + '.' : '; no data received yet.');
      $('status-text').textContent = 'Offline · retrying';
    } else {
      failingSince = 0;
      box.hidden = true;
      $('status-text').textContent = 'Live · updated ' + clock(lastOk);
    }
  }

  /* ---- sessions table and key figures ---- */
  function renderSessions(data) {
    var list = Array.isArray(data.sessions) ? data.sessions : [];
    var now = data.now || Date.now();
    var tbody = el('tbody');
    list.forEach(function (s) {
      var p = Number(s.probability) || 0;
      var reasons = Array.isArray(s.reasons) ? s.reasons : [];
      tbody.appendChild(el('tr', { 'data-session-id': s.session_id }, [
        el('td', { class: 'mono', title: s.session_id }, short(s.session_id)),
        el('td', { class: 'mono muted', title: s.visitor_id }, short(s.visitor_id)),
        el('td', {}, el('span', { class: 'badge', style: '--c:' + variantColor(s.variant) }, s.variant || '–')),
        el('td', { class: 'w-prob' }, el('div', { class: 'prob', role: 'img', 'aria-label': 'probability ' + p.toFixed(3) }, [
          el('span', { class: 'bar' }, el('span', { style: 'width:' + (p * 100).toFixed(1) + '%;background:' + hue(p) })),
          el('span', { class: 'num' }, p.toFixed(3))])),
        el('td', { class: 'num' }, pct(s.confidence, 0)),
        el('td', { class: 'num' }, s.page_views == null ? '–' : s.page_views),
        el('td', { class: 'num' }, duration(s.duration)),
        el('td', { class: 'num muted' }, s.last_seen ? ago(now - s.last_seen) : '–'),
        el('td', { class: 'reasons', title: reasons.join('\n') },
          reasons.length ? reasons.slice(0, 3).map(function (r) { return el('span', { class: 'chip' }, r); })
                         : el('span', { class: 'muted' }, '–'))
      ]));
      if (s.revenue > 0) tbody.lastChild.classList.add('bought');
    });
    if (!list.length) {
      tbody.appendChild(el('tr', { class: 'empty-row' }, el('td', { colspan: 9 }, [
        'No active sessions. ', el('a', { href: '/' }, 'Open the store'), ' in another tab and browse a little.'])));
    }
    var table = $('sessions-table');
    table.replaceChild(tbody, table.tBodies[0]);

    var hist = Array.isArray(data.histogram) ? data.histogram : [];
    $('kpi-active').textContent = data.active != null ? data.active : list.length;
    $('kpi-mean').textContent = list.length ? (list.reduce(function (a, s) { return a + (+s.probability || 0); }, 0) / list.length).toFixed(3) : '–';
    $('kpi-likely').textContent = hist.length === 10 ? hist.slice(5).reduce(function (a, b) { return a + b; }, 0)
      : list.filter(function (s) { return s.probability >= 0.5; }).length;
    $('kpi-revenue').textContent = new Intl.NumberFormat(undefined, { style: 'currency', currency: 'EUR' })
      .format(list.reduce(function (a, s) { return a + (+s.revenue || 0); }, 0));
    renderHistogram(hist);
  }

  /* ---- histogram of the scores: 10 bins over [0, 1] ---- */
  function renderHistogram(hist) {
    var bins = []; for (var i = 0; i < 10; i++) bins.push(Math.max(0, +hist[i] || 0));
    var W = 560, H = 240, L = 36, R = 12, T = 22, B = 34, w = (W - L - R) / 10;
    var max = Math.max.apply(null, bins), step = Math.max(1, Math.ceil(max / 4));
    var top = Math.max(step * 4, 4), y = function (v) { return T + (H - T - B) * (1 - v / top); };
    var total = bins.reduce(function (a, b) { return a + b; }, 0);
    var svg = el('svg:svg', { viewBox: '0 0 ' + W + ' ' + H, role: 'img', class: 'hist',
      'aria-label': 'Score distribution of ' + total + ' active sessions: ' + bins.map(function (c, i) {
        return (i / 10).toFixed(1) + '–' + ((i + 1) / 10).toFixed(1) + ': ' + c; }).join(', ') });
    for (var v = 0; v <= top; v += step) {          /* grid lines and counts */
      svg.appendChild(el('svg:line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: v ? 'grid' : 'axis' }));
      svg.appendChild(el('svg:text', { x: L - 8, y: y(v) + 4, class: 'tick', 'text-anchor': 'end' }, v));
    }
    bins.forEach(function (c, i) {
      var x = L + i * w + 3, h = y(0) - y(c);
      var g = el('svg:g', {}, el('svg:title', {}, (i / 10).toFixed(1) + ' to ' + ((i + 1) / 10).toFixed(1) + ': ' + c + ' session' + (c === 1 ? '' : 's')));
      g.appendChild(el('svg:rect', { x: x, y: y(c), width: w - 6, height: Math.max(0, h), rx: 3, fill: hue((i + 0.5) / 10) }));
      if (c) g.appendChild(el('svg:text', { x: x + (w - 6) / 2, y: y(c) - 6, class: 'count', 'text-anchor': 'middle' }, c));
      svg.appendChild(g);
    });
    for (var k = 0; k <= 10; k += 1) {              /* x axis: probability */
      svg.appendChild(el('svg:text', { x: L + k * w, y: H - B + 18, class: 'tick', 'text-anchor': 'middle' }, k % 2 ? '' : (k / 10).toFixed(1)));
    }
    svg.appendChild(el('svg:text', { x: L + 5 * w, y: H - 2, class: 'axis-label', 'text-anchor': 'middle' }, 'purchase probability'));
    var box = $('score-chart');
    box.replaceChildren ? box.replaceChildren(svg) : (box.innerHTML = '', box.appendChild(svg));
  }

  /* ---- experiments: one row per variant, with its interval on a shared scale ---- */
  function renderExperiments(data) {
    var vs = Array.isArray(data.variants) ? data.variants : [];
    var box = $('experiments');
    if (!vs.length) { box.replaceChildren(el('p', { class: 'muted' }, 'No variants.')); return; }
    var hi = Math.max.apply(null, vs.map(function (v) { return +v.ci_high || +v.rate || 0; }));
    var scale = Math.min(1, Math.max(0.05, Math.ceil(hi * 12) / 10));   /* axis end, a bit past the widest interval */
    var X = function (r) { return (Math.max(0, Math.min(scale, r || 0)) / scale * 100).toFixed(2) + '%'; };
    var rows = vs.map(function (v) {
      var control = v.name === data.control;
      var sig = v.p_value != null && v.p_value < 0.05;
      var verdict = control ? el('span', { class: 'muted' }, 'control')
        : v.p_value == null ? el('span', { class: 'muted' }, 'no data yet')
        : el('span', { class: sig ? 'sig' : 'muted' }, [
            'p = ' + (v.p_value < 0.001 ? '< 0.001' : v.p_value.toFixed(3)),
            el('br'), el('small', {}, (sig ? 'significant' : 'not significant') + (v.z != null ? ', z = ' + v.z.toFixed(2) : ''))]);
      return el('tr', { 'data-variant': v.name }, [
        el('th', { scope: 'row' }, [el('span', { class: 'badge', style: '--c:' + variantColor(v.name) }, v.name),
          el('small', { class: 'muted model' }, (v.model || '') + (v.weight != null ? ' · weight ' + v.weight : ''))]),
        el('td', { class: 'num' }, [String(v.conversions), el('span', { class: 'muted' }, ' / ' + v.sessions)]),
        el('td', { class: 'num' }, [el('strong', {}, pct(v.rate)), el('br'),
          el('small', { class: 'muted' }, v.ci_low == null ? '' : pct(v.ci_low) + ' – ' + pct(v.ci_high))]),
        el('td', { class: 'ci-cell' }, el('div', { class: 'ci', title: '95% interval ' + pct(v.ci_low) + ' to ' + pct(v.ci_high) }, [
          el('span', { class: 'ci-range', style: 'left:' + X(v.ci_low) + ';width:calc(' + X(v.ci_high) + ' - ' + X(v.ci_low) + ');--c:' + variantColor(v.name) }),
          el('span', { class: 'ci-dot', style: 'left:' + X(v.rate) + ';--c:' + variantColor(v.name) })])),
        el('td', { class: 'verdict' }, verdict)
      ]);
    });
    var table = el('table', { class: 'exp' }, [
      el('thead', {}, el('tr', {}, [el('th', { scope: 'col' }, 'Variant'), el('th', { scope: 'col', class: 'num' }, 'Conversions'),
        el('th', { scope: 'col', class: 'num' }, 'Rate'), el('th', { scope: 'col' }, ['0 – ', pct(scale, 0)]),
        el('th', { scope: 'col', class: 'num' }, 'vs control')])),
      el('tbody', {}, rows)]);
    box.replaceChildren(table);
  }

  /* ---- drift: one variant's features, most shifted first ---- */
  var driftData = null, driftPick = null;
  var PSI_FULL = 0.5;                         /* a bar is full from this PSI on */
  function psiText(x) { return x >= 10 ? x.toFixed(1) : x >= 1 ? x.toFixed(2) : x.toFixed(3); }
  function renderDrift(data) {
    driftData = data;
    var vs = Array.isArray(data.variants) ? data.variants : [];
    var box = $('drift'), sel = $('drift-variant');
    if (!vs.length) { box.replaceChildren(el('p', { class: 'muted' }, 'No variants.')); return; }
    var names = vs.map(function (v) { return v.variant; });
    if (driftPick == null || names.indexOf(driftPick) < 0) driftPick = names[0];   /* the control */
    sel.parentNode.hidden = vs.length < 2;
    if (sel.options.length !== names.length || names.some(function (n, i) { return sel.options[i].value !== n; })) {
      sel.replaceChildren.apply(sel, names.map(function (n, i) { return el('option', { value: n }, n + (i || n === 'control' ? '' : ' (control)')); }));
    }
    sel.value = driftPick;
    var v = vs[names.indexOf(driftPick)];
    var th = data.thresholds || {}, least = th.min_sessions || 200;
    $('drift-sub').textContent = v.reference
      ? v.sessions + ' of up to ' + v.window + ' recent closed sessions · model ' + v.model + ' (' + v.id + ')'
      : 'model ' + v.model + ' (' + v.id + ')';
    if (!v.reference) {
      box.replaceChildren(el('p', { class: 'muted' }, 'This model carries no drift reference (the training distributions), so there is nothing to compare with.'));
      return;
    }
    if (!v.ready) {
      box.replaceChildren(el('div', { class: 'drift-wait' }, [
        el('p', {}, ['Collecting closed sessions: ', el('strong', {}, v.sessions + ' of ' + least),
          ' needed before PSI means anything (fewer look shifted by chance).']),
        el('span', { class: 'bar' }, el('span', { style: 'width:' + Math.min(100, v.sessions / least * 100).toFixed(1) + '%' }))]));
      return;
    }
    var dims = (Array.isArray(v.dims) ? v.dims : []).filter(function (d) { return d.psi != null; })
      .sort(function (a, b) { return b.psi - a.psi || (a.name < b.name ? -1 : 1); });
    var counts = { ok: 0, watch: 0, alert: 0 };
    dims.forEach(function (d) { counts[d.status] = (counts[d.status] || 0) + 1; });
    var tick = function (x, cls) { return el('span', { class: 'tick ' + cls, style: 'left:' + (x / PSI_FULL * 100) + '%' }); };
    var list = el('ol', { class: 'drift-list' }, dims.map(function (d) {
      var w = Math.min(1, d.psi / PSI_FULL) * 100;
      return el('li', { class: d.status, 'data-dim': d.name }, [
        el('span', { class: 'dim', title: d.name }, d.name === 'score' ? 'score (model output)' : d.name),
        el('span', { class: 'bar', role: 'img', 'aria-label': 'PSI ' + psiText(d.psi) + ', ' + d.status }, [
          el('span', { class: 'fill', style: 'width:' + Math.max(w, 1.5).toFixed(1) + '%' }),
          tick(th.watch || 0.1, 'w'), tick(th.alert || 0.25, 'a')]),
        el('span', { class: 'num psi' }, psiText(d.psi)),
        el('span', { class: 'tag ' + d.status }, d.status)]);
    }));
    var summary = el('p', { class: 'drift-sum' }, [
      el('span', { class: 'tag alert' }, counts.alert + ' alert'), ' ',
      el('span', { class: 'tag watch' }, counts.watch + ' watch'), ' ',
      el('span', { class: 'tag ok' }, counts.ok + ' ok'),
      el('span', { class: 'muted' }, ' · bars end at PSI ' + PSI_FULL + '; marks at ' + (th.watch || 0.1) + ' and ' + (th.alert || 0.25))]);
    box.replaceChildren(summary, list);
  }
  $('drift-variant').addEventListener('change', function (e) {
    driftPick = e.target.value;
    if (driftData) renderDrift(driftData);
  });

  /* ---- the polling loops: the next poll is scheduled when one finishes ---- */
  function poll(source, url, every, render) {
    getJSON(url).then(function (data) { render(data); status(source, null); })
      .catch(function (err) { status(source, err); })
      .then(function () { setTimeout(function () { poll(source, url, every, render); }, every); });
  }
  poll('sessions', '/api/sessions?limit=50', SESSIONS_EVERY, renderSessions);
  poll('experiments', '/api/experiments', EXPERIMENTS_EVERY, renderExperiments);
  poll('drift', '/api/drift', DRIFT_EVERY, renderDrift);
})();
