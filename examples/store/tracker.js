/*
 * tracker.js: the opecom drop-in agent (no dependencies).
 *
 *   <script src="/tracker.js" data-endpoint="/api/track" defer></script>
 *
 * Reads the page type and id from <body data-page-type data-page-id>, measures
 * the active time on the page and sends one "pageview" event when the visitor
 * leaves it (navigator.sendBeacon on pagehide). Events go out in batches
 * {"sent_at": ms, "events": [...]} to data-endpoint; batches that fail with a
 * network error or 5xx wait in a bounded retry queue in localStorage and are
 * sent again on the next page load; a 4xx answer drops the batch.
 *
 * Do-Not-Track / Global Privacy Control: nothing is stored or sent, and
 * window.opecom only has no-op methods (predict() resolves null).
 *
 * window.opecom: visitorId(), sessionId(), flush() -> Promise<boolean> (true
 * once the server acknowledged the queue), purchase(revenue) -> same as flush,
 * predict() -> Promise<object|null> (the /api/predict answer for the session).
 */
(function () {
  'use strict';
  if (window.opecom) return;                       /* loaded twice: keep the first */

  var script = document.currentScript;
  var ENDPOINT = (script && script.getAttribute('data-endpoint')) || '/api/track';
  var PREDICT = ENDPOINT.replace(/\/track\/?$/, '') + '/predict';
  var SESSION_TIMEOUT = 30 * 60 * 1000;            /* new session after 30 min idle */
  var IDLE = 60 * 1000;                            /* active time stops 60 s after input */
  var MAX_RETRY = 200;                             /* events kept in the retry queue */
  var FLUSH_AT = 20;                               /* queue length that triggers a send */
  var MAX_BATCH = 500;                             /* the server's limit per batch */
  var K = { vid: 'opecom.vid', sid: 'opecom.sid', last: 'opecom.last',
            src: 'opecom.src', retry: 'opecom.queue' };

  /* ---- privacy: decided before anything is created or sent ---- */
  if (navigator.doNotTrack === '1' || navigator.globalPrivacyControl === true) {
    var none = function () { return null; };
    var done = function () { return Promise.resolve(false); };
    window.opecom = { enabled: false, visitorId: none, sessionId: none,
      flush: done, purchase: done, predict: function () { return Promise.resolve(null); } };
    return;
  }

  /* ---- storage that survives a blocked or full localStorage ---- */
  var mem = {};
  function get(k) { try { return localStorage.getItem(k); } catch (e) { return mem[k] || null; } }
  function set(k, v) { try { localStorage.setItem(k, v); } catch (e) { mem[k] = String(v); } }

  function rid() {                                 /* 16 random hex digits */
    var a = new Uint8Array(8), s = '';
    if (window.crypto && crypto.getRandomValues) crypto.getRandomValues(a);
    else for (var i = 0; i < 8; i++) a[i] = Math.random() * 256;
    for (var j = 0; j < 8; j++) s += (a[j] + 256).toString(16).slice(1);
    return s;
  }

  /* ---- device and traffic fields (short texts the server maps to UCI codes) ---- */
  var ua = navigator.userAgent || '';
  function os() {
    if (/iPhone|iPad|iPod/.test(ua) || (/Macintosh/.test(ua) && navigator.maxTouchPoints > 1)) return 'iOS';
    if (/Android/.test(ua)) return 'Android';
    if (/Windows/.test(ua)) return 'Windows';
    if (/CrOS/.test(ua)) return 'Chrome OS';
    if (/Mac OS X|Macintosh/.test(ua)) return 'Mac OS';
    if (/Linux|X11/.test(ua)) return 'Linux';
    return 'Other';
  }
  function browser() {
    if (/Edg(e|A|iOS)?\//.test(ua)) return 'Edge';
    if (/OPR\/|Opera/.test(ua)) return 'Opera';
    if (/SamsungBrowser/.test(ua)) return 'Samsung Internet';
    if (/Firefox\/|FxiOS/.test(ua)) return 'Firefox';
    if (/Chrome\/|Chromium|CriOS/.test(ua)) return 'Chrome';
    if (/Safari\//.test(ua)) return 'Safari';
    return 'Other';
  }
  function region() {
    try { return Intl.DateTimeFormat().resolvedOptions().timeZone || ''; } catch (e) { return ''; }
  }
  var SEARCH = /(^|\.)(google|bing|duckduckgo|yahoo|baidu|yandex|ecosia|qwant|startpage|ask)\./;
  var SOCIAL = /(^|\.)(facebook|fb|instagram|twitter|x|t|linkedin|lnkd|reddit|pinterest|tiktok|youtube|mastodon|threads|bsky)\.(com|co|in|net|social|app)$/;
  var MAIL = /(^|\.)(mail\.google|outlook\.live|outlook\.office|mail\.yahoo|mail\.proton)\.|^mail\./;
  /* Where the session came from: utm_* parameters first, then the referrer. */
  function trafficType() {
    var q = new URLSearchParams(location.search);
    var src = (q.get('utm_source') || '').toLowerCase(), med = (q.get('utm_medium') || '').toLowerCase();
    if (src || med || q.get('utm_campaign')) {
      if (/e-?mail|newsletter/.test(med + ' ' + src)) return 'email';
      if (/social/.test(med) || SOCIAL.test(src + '.com')) return 'social';
      if (/organic/.test(med)) return 'search';
      return 'campaign';
    }
    var host = '';
    try { host = new URL(document.referrer).hostname.toLowerCase(); } catch (e) { /* none */ }
    if (!host || host === location.hostname) return 'direct';
    if (MAIL.test(host)) return 'email';
    if (SEARCH.test(host)) return 'search';
    if (SOCIAL.test(host)) return 'social';
    return 'referral';
  }
  function clip(s, n) { return String(s).replace(/[^\x20-\x7e]/g, '?').slice(0, n || 63); }
  var device = { os: os(), browser: browser(), region: clip(region()) };

  /* ---- ids: the visitor is permanent, the session ends after 30 min idle ---- */
  var vid = get(K.vid);
  if (!vid) { vid = 'v-' + rid(); set(K.vid, vid); }
  var sid = null, lastTouch = 0;
  /* Returns the session id at `now`, starting a new session when the stored
   * one is missing or idle too long; `landing` tells whether this page's
   * referrer / utm_* describe how the new session arrived. */
  function session(now, landing) {
    var s = get(K.sid), last = +get(K.last) || 0;
    if (!s || now - last > SESSION_TIMEOUT) {
      s = 's-' + rid();
      set(K.sid, s);
      set(K.src, landing ? trafficType() : 'direct');
    }
    set(K.last, now);
    lastTouch = now;
    return s;
  }

  /* ---- the queue and its delivery ---- */
  var queue = [];
  function body(events) { return JSON.stringify({ sent_at: Date.now(), events: events }); }
  function keep(events) {                          /* into the bounded retry queue */
    var old = [];
    try { old = JSON.parse(get(K.retry) || '[]'); } catch (e) { /* corrupt: start over */ }
    var all = old.concat(events);
    set(K.retry, JSON.stringify(all.slice(Math.max(0, all.length - MAX_RETRY))));
  }
  function takeRetry() {
    var ev = [];
    try { ev = JSON.parse(get(K.retry) || '[]'); } catch (e) { /* ignore */ }
    set(K.retry, '[]');
    return Array.isArray(ev) ? ev : [];
  }
  /* Sends one batch with fetch; resolves true when the server accepted it. */
  function post(batch) {
    var text = body(batch);                        /* keepalive bodies are capped at 64 KiB */
    return fetch(ENDPOINT, { method: 'POST', keepalive: text.length < 60000, body: text,
                             headers: { 'Content-Type': 'application/json' } })
      .then(function (r) {
        if (r.status >= 500) keep(batch);          /* server trouble: retry later */
        return r.ok;                               /* 4xx: dropped, never accepted */
      }, function () { keep(batch); return false; });
  }
  var chain = Promise.resolve(true);
  /* Sends the pending retries and everything queued, in order. */
  function flush() {
    chain = chain.then(function () {
      var sends = [];
      queue = takeRetry().concat(queue);
      while (queue.length) sends.push(post(queue.splice(0, MAX_BATCH)));
      return Promise.all(sends).then(function (oks) {
        return oks.every(Boolean);
      });
    });
    return chain;
  }
  function enqueue(ev) {
    queue.push(ev);
    if (queue.length >= FLUSH_AT) flush();
  }
  /* Last chance when the page goes away: a beacon cannot be read back, so
   * only a refusal to queue it puts the events into the retry queue. */
  function beacon() {
    while (queue.length) {
      var batch = queue.splice(0, MAX_BATCH);
      var ok = false;
      try { ok = navigator.sendBeacon && navigator.sendBeacon(ENDPOINT, body(batch)); } catch (e) { /* no */ }
      if (!ok) keep(batch);
    }
  }

  /* ---- the current page view and its active time ---- */
  var view = null;           /* {ts, sid, ms, since}: since > 0 while time counts */
  var lastInput = 0, idleTimer = 0;
  function visible() { return document.visibilityState === 'visible'; }
  function stop(at) {
    if (view && view.since) { view.ms += Math.max(0, at - view.since); view.since = 0; }
    clearTimeout(idleTimer);
  }
  function watchIdle() {     /* stops the clock IDLE ms after the last input */
    clearTimeout(idleTimer);
    idleTimer = setTimeout(function () {
      var end = lastInput + IDLE;
      if (Date.now() >= end) stop(end); else watchIdle();
    }, lastInput + IDLE - Date.now() + 50);
  }
  function startView(now, landing) {
    view = { ts: now, sid: (sid = session(now, landing)), ms: 0, since: 0 };
    lastInput = now;
    if (visible()) { view.since = now; watchIdle(); }
  }
  function finishView(now) {
    if (!view) return;
    stop(Math.min(now, lastInput + IDLE));
    var b = document.body ? document.body.dataset : {};
    var ev = { type: 'pageview', visitor_id: vid, session_id: view.sid, ts: view.ts,
               page_type: b.pageType || 'product_related',
               page_id: clip(b.pageId || location.pathname, 255) || '/',
               duration: Math.min(86400, Math.round(view.ms / 100) / 10),
               os: device.os, browser: device.browser, traffic_type: get(K.src) || 'direct' };
    if (device.region) ev.region = device.region;
    view = null;
    enqueue(ev);
  }
  function onInput() {
    var now = Date.now();
    lastInput = now;
    if (!view) return;
    if (!view.since && visible()) { view.since = now; watchIdle(); }
    if (now - lastTouch > 5000) {                  /* keep the session alive, cheaply */
      var s = session(now, false);
      if (s !== view.sid) { finishView(now); startView(now, false); }  /* idle > 30 min */
    }
  }
  ['mousedown', 'mousemove', 'keydown', 'scroll', 'touchstart', 'wheel'].forEach(function (t) {
    addEventListener(t, onInput, { passive: true, capture: true });
  });
  document.addEventListener('visibilitychange', function () {
    if (visible()) onInput(); else if (view) stop(Math.min(Date.now(), lastInput + IDLE));
  });
  addEventListener('pagehide', function () { finishView(Date.now()); beacon(); });
  addEventListener('pageshow', function (e) {      /* back from the back/forward cache */
    if (e.persisted && !view) startView(Date.now(), false);
  });

  startView(Date.now(), true);
  if (get(K.retry) && get(K.retry) !== '[]') flush();  /* left over from earlier pages */

  window.opecom = {
    enabled: true,
    visitorId: function () { return vid; },
    sessionId: function () { return view ? view.sid : sid; },
    flush: flush,
    purchase: function (revenue) {
      var r = Math.min(1e9, Math.max(0, Number(revenue) || 0));
      var now = Date.now();
      enqueue({ type: 'purchase', visitor_id: vid, session_id: view ? view.sid : session(now, false),
                ts: now, revenue: Math.round(r * 100) / 100 });
      return flush();
    },
    predict: function () {
      var ids = { session_id: window.opecom.sessionId(), visitor_id: vid };
      return flush().then(function () {
        return fetch(PREDICT, { method: 'POST', body: JSON.stringify(ids),
                                headers: { 'Content-Type': 'application/json' } });
      }).then(function (r) { return r.ok ? r.json() : null; })
        .catch(function () { return null; });
    }
  };
})();
