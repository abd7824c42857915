/*
 * shop.js: the demo store's catalogue, cart (localStorage), page logic, and the
 * header and footer every page shares (inserted here, so they exist once).
 * Loaded with defer before tracker.js, so the page id it sets on <body>
 * (category/..., product/..., login or account) is the one tracked.
 */
(function () {
  'use strict';

  /* ---- catalogue ---- */
  var CATEGORIES = {
    kitchen: { name: 'Kitchen & Coffee', blurb: 'Stoneware, glass and steel for slow mornings and good coffee.' },
    living: { name: 'Home & Living', blurb: 'Soft linen, warm light and ceramics that make a room feel lived in.' },
    desk: { name: 'Desk & Stationery', blurb: 'Paper, pens and a lamp for the desk you actually enjoy sitting at.' }
  };
  var PRODUCTS = [
    { id: 'espresso-cup', name: 'Espresso Cup Set', cat: 'kitchen', price: 24, shape: 'cup', color: '#b5654a', bg: '#f3e3da',
      text: 'Two double-walled stoneware cups with saucers, 80 ml each. The thick walls keep a ristretto hot to the last sip.',
      details: ['Set of 2 cups and saucers', 'Stoneware, glazed inside', 'Dishwasher safe'] },
    { id: 'pour-over-kettle', name: 'Pour-over Kettle', cat: 'kitchen', price: 58, shape: 'kettle', color: '#3d5a6c', bg: '#dfe8ec',
      text: 'A gooseneck kettle for precise, steady pours. Works on gas, electric and induction hobs.',
      details: ['1 litre', 'Brushed stainless steel', 'Built-in thermometer'] },
    { id: 'stoneware-mug', name: 'Stoneware Mug', cat: 'kitchen', price: 16, shape: 'mug', color: '#5f7f5a', bg: '#e3ebdf',
      text: 'A generous everyday mug with a speckled glaze and a handle that fits four fingers.',
      details: ['350 ml', 'Hand-glazed stoneware', 'Microwave and dishwasher safe'] },
    { id: 'linen-cushion', name: 'Linen Cushion', cat: 'living', price: 35, shape: 'cushion', color: '#c49a52', bg: '#f4ecdc',
      text: 'Stonewashed linen over a feather insert, soft from the first day and softer with every wash.',
      details: ['50 x 50 cm', '100% European linen', 'Removable, washable cover'] },
    { id: 'ceramic-vase', name: 'Ceramic Vase', cat: 'living', price: 42, shape: 'vase', color: '#8a6f9e', bg: '#ebe4f0',
      text: 'A matte bud vase thrown on the wheel; each one is slightly different.',
      details: ['Height 22 cm', 'Matte glaze, watertight', 'Made in Portugal'] },
    { id: 'soy-candle', name: 'Soy Candle', cat: 'living', price: 19, shape: 'candle', color: '#d9a441', bg: '#f6edd6',
      text: 'Fig and cedar scented soy wax in a reusable amber glass. Around 45 hours of calm.',
      details: ['200 g', 'Cotton wick', 'Vegan, no paraffin'] },
    { id: 'desk-lamp', name: 'Arc Desk Lamp', cat: 'desk', price: 79, shape: 'lamp', color: '#2f5d50', bg: '#dde9e4',
      text: 'A balanced arm lamp with warm dimmable LED light and a weighted base that stays put.',
      details: ['Dimmable, 2700 K', 'Powder-coated steel', 'USB-C powered'] },
    { id: 'dot-notebook', name: 'Dot-grid Notebook', cat: 'desk', price: 12.5, shape: 'notebook', color: '#c2562f', bg: '#f5e1d8',
      text: 'A5 lay-flat notebook with 192 pages of thick, fountain-pen friendly dotted paper.',
      details: ['A5, 192 pages', '100 g/m² paper', 'Two ribbon markers'] },
    { id: 'brass-pen', name: 'Brass Pen', cat: 'desk', price: 29, shape: 'pen', color: '#b08d3c', bg: '#f1ead8',
      text: 'A solid brass ballpoint that develops a warm patina. Takes standard refills.',
      details: ['Solid brass body', 'Black 0.7 mm refill', 'Lifetime guarantee'] }
  ];
  function product(id) { return PRODUCTS.filter(function (p) { return p.id === id; })[0] || null; }

  /* Simple inline SVG pictures, one shape per product kind. */
  var SHAPES = {
    cup: '<ellipse cx="100" cy="122" rx="62" ry="10" fill="D"/><path d="M62 66h76l-8 50H70z" fill="C"/><path d="M138 76c18 0 18 26 0 26" fill="none" stroke="C" stroke-width="8"/><ellipse cx="100" cy="66" rx="38" ry="7" fill="D"/>',
    kettle: '<path d="M56 120h88l-10-58H66z" fill="C"/><path d="M66 62c8-18 60-18 68 0" fill="D"/><path d="M60 96C36 92 30 70 22 56" fill="none" stroke="C" stroke-width="7" stroke-linecap="round"/><path d="M134 72c22 2 22 36 4 40" fill="none" stroke="D" stroke-width="8"/><rect x="92" y="40" width="16" height="8" rx="4" fill="D"/>',
    mug: '<rect x="60" y="48" width="68" height="80" rx="10" fill="C"/><path d="M128 66c24 0 24 40 0 40" fill="none" stroke="C" stroke-width="10"/><rect x="60" y="48" width="68" height="10" rx="5" fill="D"/><circle cx="80" cy="80" r="2.5" fill="D"/><circle cx="104" cy="96" r="2" fill="D"/><circle cx="88" cy="110" r="2.5" fill="D"/>',
    cushion: '<path d="M44 44q56 14 112 0q-14 42 0 84q-56-14-112 0q14-42 0-84z" fill="C"/><path d="M64 64q36 8 72 0M64 108q36-8 72 0" fill="none" stroke="D" stroke-width="3" opacity=".6"/>',
    vase: '<path d="M88 30h24v16c26 14 30 60 14 86H74c-16-26-12-72 14-86z" fill="C"/><rect x="84" y="26" width="32" height="8" rx="4" fill="D"/><path d="M100 30c-4-14 6-24 18-26M100 28c-10-8-22-6-28 0" fill="none" stroke="#5f7f5a" stroke-width="3"/>',
    candle: '<rect x="62" y="58" width="76" height="72" rx="10" fill="C"/><rect x="62" y="58" width="76" height="14" rx="7" fill="D"/><path d="M100 56v-10" stroke="#333" stroke-width="2"/><path d="M100 22c8 10 8 18 0 22c-8-4-8-12 0-22z" fill="#f0b43c"/><rect x="76" y="86" width="48" height="26" rx="3" fill="#fff" opacity=".7"/>',
    lamp: '<rect x="56" y="122" width="60" height="10" rx="5" fill="D"/><path d="M86 122L96 70L134 44" fill="none" stroke="C" stroke-width="6" stroke-linecap="round"/><path d="M122 30l36 26-14 12-36-22z" fill="C"/><path d="M150 64l-6 22" stroke="#f0b43c" stroke-width="3" opacity=".7"/><circle cx="96" cy="70" r="6" fill="D"/>',
    notebook: '<rect x="58" y="28" width="84" height="108" rx="6" fill="C"/><rect x="58" y="28" width="12" height="108" rx="4" fill="D"/><rect x="122" y="28" width="5" height="118" fill="#f0b43c"/><rect x="84" y="58" width="44" height="14" rx="3" fill="#fff" opacity=".75"/>',
    pen: '<path d="M48 120L136 32l12 12L60 132z" fill="C"/><path d="M48 120l-8 20 20-8z" fill="D"/><path d="M128 40l12 12" stroke="D" stroke-width="5"/><path d="M112 48l10 10" stroke="#fff" stroke-width="2" opacity=".6"/>'
  };
  function shade(hex, f) {                         /* darker tone of a #rrggbb colour */
    var n = parseInt(hex.slice(1), 16), r = n >> 16, g = n >> 8 & 255, b = n & 255;
    return 'rgb(' + [r, g, b].map(function (c) { return Math.round(c * f); }).join(',') + ')';
  }
  function picture(p, label) {
    var body = SHAPES[p.shape].replace(/"C"/g, '"' + p.color + '"').replace(/"D"/g, '"' + shade(p.color, 0.72) + '"');
    return '<svg class="art" viewBox="0 0 200 160" style="background:' + p.bg + '"' +
      (label ? ' role="img" aria-label="' + esc(p.name) + '"' : ' aria-hidden="true"') + '>' + body + '</svg>';
  }

  /* ---- helpers ---- */
  var money = new Intl.NumberFormat('en-IE', { style: 'currency', currency: 'EUR' });
  function eur(x) { return money.format(x); }
  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c];
    });
  }
  function $(sel) { return document.querySelector(sel); }
  function param(k) { return new URLSearchParams(location.search).get(k); }
  function load(k, d) { try { return JSON.parse(localStorage.getItem(k)) || d; } catch (e) { return d; } }
  function save(k, v) { try { localStorage.setItem(k, JSON.stringify(v)); } catch (e) { /* full */ } }

  /* ---- cart: [{id, qty}] in localStorage ---- */
  function cart() { return load('shop.cart', []).filter(function (l) { return product(l.id) && l.qty > 0; }); }
  function setCart(lines) { save('shop.cart', lines); badge(); }
  function addToCart(id, qty) {
    var lines = cart(), line = lines.filter(function (l) { return l.id === id; })[0];
    if (line) line.qty = Math.min(99, line.qty + qty); else lines.push({ id: id, qty: qty });
    setCart(lines);
  }
  var SHIPPING = 4.9, FREE_FROM = 50;
  function totals(lines, discount) {
    var sub = lines.reduce(function (s, l) { return s + product(l.id).price * l.qty; }, 0);
    var off = discount ? Math.round(sub * discount * 100) / 100 : 0;
    var ship = sub === 0 || sub >= FREE_FROM ? 0 : SHIPPING;   /* on the price before any discount */
    return { sub: sub, off: off, ship: ship, total: Math.round((sub - off + ship) * 100) / 100 };
  }
  function badge() {
    var n = cart().reduce(function (s, l) { return s + l.qty; }, 0);
    var el = $('#cart-count');
    if (el) { el.textContent = n; el.hidden = n === 0; }
    var link = $('#cart-link');
    if (link) link.setAttribute('aria-label', 'Cart, ' + n + (n === 1 ? ' item' : ' items'));
  }
  function toast(msg) {
    var t = $('#toast');
    if (!t) { t = document.createElement('div'); t.id = 'toast'; t.className = 'toast'; t.setAttribute('role', 'status'); document.body.appendChild(t); }
    t.textContent = msg; t.classList.add('show');
    clearTimeout(toast.timer); toast.timer = setTimeout(function () { t.classList.remove('show'); }, 2400);
  }

  function card(p) {
    return '<li class="card"><a href="/product.html?id=' + p.id + '">' + picture(p) +
      '<span class="card-body"><span class="card-cat">' + esc(CATEGORIES[p.cat].name) + '</span>' +
      '<span class="card-name">' + esc(p.name) + '</span><span class="price">' + eur(p.price) + '</span></span></a></li>';
  }

  /* ---- pages ---- */
  var pages = {};
  pages.home = function () {
    $('#featured').innerHTML = ['espresso-cup', 'linen-cushion', 'desk-lamp', 'ceramic-vase'].map(function (id) { return card(product(id)); }).join('');
    document.querySelectorAll('[data-art]').forEach(function (el) { el.innerHTML = picture(product(el.dataset.art)); });
  };
  pages.category = function () {
    var c = CATEGORIES[param('c')] ? param('c') : 'kitchen';
    document.body.dataset.pageId = 'category/' + c;
    document.title = CATEGORIES[c].name + ' · Lumen Goods';
    $('#cat-name').textContent = CATEGORIES[c].name;
    $('#cat-blurb').textContent = CATEGORIES[c].blurb;
    var crumb = $('#crumb-here'); if (crumb) crumb.textContent = CATEGORIES[c].name;
    document.querySelectorAll('.nav a[data-cat]').forEach(function (a) { if (a.dataset.cat === c) a.setAttribute('aria-current', 'page'); });
    var sort = $('#sort');
    function draw() {
      var list = PRODUCTS.filter(function (p) { return p.cat === c; });
      if (sort.value === 'low') list.sort(function (a, b) { return a.price - b.price; });
      if (sort.value === 'high') list.sort(function (a, b) { return b.price - a.price; });
      $('#grid').innerHTML = list.map(card).join('');
      $('#cat-count').textContent = list.length + ' products';
    }
    sort.addEventListener('change', draw);
    draw();
  };
  pages.product = function () {
    var p = product(param('id'));
    var main = $('#product');
    if (!p) {
      document.body.dataset.pageId = 'product/unknown';
      main.innerHTML = '<div class="empty"><h1>Product not found</h1><p>It may have sold out for good.</p><a class="btn" href="/">Back to the shop</a></div>';
      return;
    }
    document.body.dataset.pageId = 'product/' + p.id;
    document.title = p.name + ' · Lumen Goods';
    var cat = CATEGORIES[p.cat];
    main.innerHTML =
      '<nav class="crumbs" aria-label="Breadcrumb"><a href="/">Home</a> / <a href="/category.html?c=' + p.cat + '">' + esc(cat.name) + '</a> / <span aria-current="page">' + esc(p.name) + '</span></nav>' +
      '<div class="pdp"><div class="pdp-art">' + picture(p, true) + '</div><div class="pdp-info">' +
      '<p class="card-cat">' + esc(cat.name) + '</p><h1>' + esc(p.name) + '</h1><p class="price big">' + eur(p.price) + '</p>' +
      '<p class="lead">' + esc(p.text) + '</p>' +
      '<form id="add-form" class="buy"><label class="qty"><span class="sr-only">Quantity</span>' +
      '<input id="qty" type="number" min="1" max="99" value="1" inputmode="numeric"></label>' +
      '<button class="btn" type="submit">Add to cart</button></form>' +
      '<ul class="details">' + p.details.map(function (d) { return '<li>' + esc(d) + '</li>'; }).join('') + '</ul>' +
      '<p class="note">Free shipping from ' + eur(FREE_FROM) + ' · 30-day returns</p></div></div>' +
      '<section class="section"><h2>You may also like</h2><ul class="grid">' +
      PRODUCTS.filter(function (q) { return q.cat === p.cat && q.id !== p.id; }).map(card).join('') + '</ul></section>';
    $('#add-form').addEventListener('submit', function (e) {
      e.preventDefault();
      var q = Math.max(1, Math.min(99, parseInt($('#qty').value, 10) || 1));
      addToCart(p.id, q);
      toast(q + ' × ' + p.name + ' added to your cart');
    });
  };
  pages.cart = function () {
    var box = $('#cart');
    function draw() {
      var lines = cart(), t = totals(lines);
      if (!lines.length) {
        box.innerHTML = '<div class="empty"><h2>Your cart is empty</h2><p>Have a look around, there is something for every shelf.</p><a class="btn" href="/">Start shopping</a></div>';
        return;
      }
      box.innerHTML = '<div class="cart-grid"><ul class="lines">' + lines.map(function (l) {
        var p = product(l.id);
        return '<li class="line" data-id="' + p.id + '"><a href="/product.html?id=' + p.id + '" class="thumb">' + picture(p) + '</a>' +
          '<div class="line-info"><a href="/product.html?id=' + p.id + '" class="line-name">' + esc(p.name) + '</a><span class="muted">' + eur(p.price) + ' each</span>' +
          '<button class="link remove" type="button" aria-label="Remove ' + esc(p.name) + '">Remove</button></div>' +
          '<div class="stepper" role="group" aria-label="Quantity of ' + esc(p.name) + '"><button type="button" class="dec" aria-label="One less">−</button>' +
          '<span aria-live="polite">' + l.qty + '</span><button type="button" class="inc" aria-label="One more">+</button></div>' +
          '<strong class="line-total">' + eur(p.price * l.qty) + '</strong></li>';
      }).join('') + '</ul>' + summary(lines, t) +
      '</div>';
      box.querySelector('.summary').insertAdjacentHTML('beforeend', '<a class="btn block" href="/checkout.html">Go to checkout</a><a class="link center" href="/">Continue shopping</a>');
    }
    box.addEventListener('click', function (e) {
      var li = e.target.closest('.line'); if (!li) return;
      var lines = cart(), line = lines.filter(function (l) { return l.id === li.dataset.id; })[0];
      if (e.target.closest('.inc')) line.qty = Math.min(99, line.qty + 1);
      else if (e.target.closest('.dec')) line.qty -= 1;
      else if (e.target.closest('.remove')) line.qty = 0;
      else return;
      setCart(lines.filter(function (l) { return l.qty > 0; }));
      draw();
    });
    draw();
  };
  function summary(lines, t) {
    return '<aside class="summary" aria-label="Order summary"><h2>Summary</h2><dl>' +
      '<dt>Subtotal</dt><dd>' + eur(t.sub) + '</dd>' +
      (t.off ? '<dt>Discount</dt><dd class="off">−' + eur(t.off) + '</dd>' : '') +
      '<dt>Shipping</dt><dd>' + (t.ship ? eur(t.ship) : 'Free') + '</dd>' +
      '<dt class="total">Total</dt><dd class="total">' + eur(t.total) + '</dd></dl>' +
      (t.ship ? '<p class="note">Add ' + eur(FREE_FROM - t.sub) + ' more for free shipping.</p>' : '') + '</aside>';
  }

  pages.checkout = function () {
    var lines = cart(), discount = 0;
    var form = $('#checkout-form'), side = $('#checkout-summary');
    function draw() {
      side.innerHTML = summary(lines, totals(lines, discount));
      side.querySelector('.summary h2').insertAdjacentHTML('afterend', '<ul class="mini">' + lines.map(function (l) {
        var p = product(l.id);
        return '<li>' + picture(p) + '<span>' + esc(p.name) + ' <span class="muted">× ' + l.qty + '</span></span><span>' + eur(p.price * l.qty) + '</span></li>';
      }).join('') + '</ul>');
    }
    if (!lines.length) {
      $('#checkout-main').innerHTML = '<div class="empty"><h2>Nothing to check out yet</h2><p>Your cart is empty.</p><a class="btn" href="/">Start shopping</a></div>';
    } else draw();

    /* The store asks the server about this session; a visitor who might buy
     * but is not sure gets an offer. */
    var modal = $('#discount-popup'), opener = null;
    function close(accepted) {
      modal.hidden = true;
      document.removeEventListener('keydown', onKey);
      if (accepted) { discount = 0.1; draw(); toast('10% discount applied'); }
      (opener || $('#place-order') || document.body).focus();
    }
    function onKey(e) {
      if (e.key === 'Escape') close(false);
      if (e.key === 'Tab') {                       /* keep focus inside the dialog */
        var f = modal.querySelectorAll('button'), first = f[0], last = f[f.length - 1];
        if (e.shiftKey && document.activeElement === first) { e.preventDefault(); last.focus(); }
        else if (!e.shiftKey && document.activeElement === last) { e.preventDefault(); first.focus(); }
      }
    }
    function offer(answer) {
      if (!answer || answer.action !== 'discount' || !lines.length || done) return;
      opener = document.activeElement;
      modal.hidden = false;
      $('#discount-accept').focus();
      document.addEventListener('keydown', onKey);
    }
    $('#discount-accept').addEventListener('click', function () { close(true); });
    $('#discount-close').addEventListener('click', function () { close(false); });
    $('#discount-dismiss').addEventListener('click', function () { close(false); });
    modal.addEventListener('click', function (e) { if (e.target === modal) close(false); });
    /* tracker.js runs after this file; deferred scripts all run before DOMContentLoaded. */
    document.addEventListener('DOMContentLoaded', function () {
      if (window.opecom && lines.length) window.opecom.predict().then(offer);
    });

    var done = false;
    if (form) form.addEventListener('submit', function (e) {
      e.preventDefault();
      if (!form.checkValidity()) { form.reportValidity(); return; }
      var t = totals(lines, discount), btn = $('#place-order');
      btn.disabled = true; btn.textContent = 'Placing order…';
      var order = { no: 'LG-' + String(Date.now()).slice(-6), total: t.total, items: lines, at: Date.now() };
      var sent = window.opecom ? window.opecom.purchase(t.total) : Promise.resolve();
      /* Show the confirmation once the purchase is recorded, or after 1.5 s at most. */
      Promise.race([sent, new Promise(function (r) { setTimeout(r, 1500); })]).then(function () {
        done = true;
        var orders = load('shop.orders', []); orders.unshift(order); save('shop.orders', orders.slice(0, 20));
        setCart([]);
        $('#order-no').textContent = order.no;
        $('#order-total').textContent = eur(order.total);
        $('#order-email').textContent = form.email.value;
        $('#checkout-main').hidden = true;
        var ty = $('#thank-you'); ty.hidden = false; ty.focus();
        window.scrollTo(0, 0);
      });
    });
  };
  pages.account = function () {
    var user = load('shop.user', null);
    document.body.dataset.pageId = user ? 'account' : 'login';
    $('#login-view').hidden = !!user;
    $('#account-view').hidden = !user;
    if (user) {
      $('#account-name').textContent = user.email;
      var orders = load('shop.orders', []);
      $('#orders').innerHTML = orders.length ? orders.map(function (o) {
        return '<li><strong>' + esc(o.no) + '</strong><span class="muted">' + new Date(o.at).toLocaleDateString() + '</span><span>' + eur(o.total) + '</span></li>';
      }).join('') : '<li class="muted">No orders yet.</li>';
      $('#logout').addEventListener('click', function () { localStorage.removeItem('shop.user'); location.reload(); });
    } else {
      $('#login-form').addEventListener('submit', function (e) {
        e.preventDefault();
        if (!e.target.checkValidity()) { e.target.reportValidity(); return; }
        save('shop.user', { email: e.target.email.value });
        location.reload();
      });
    }
  };
  pages.contact = function () {
    $('#contact-form').addEventListener('submit', function (e) {
      e.preventDefault();
      if (!e.target.checkValidity()) { e.target.reportValidity(); return; }
      e.target.hidden = true; $('#contact-sent').hidden = false;
    });
  };

  /* ---- every page: the header and footer, one copy for all pages ---- */
  function chrome() {
    var here = document.body.dataset.page;
    function link(href, page, text) {
      return '<a href="' + href + '"' + (here === page ? ' aria-current="page"' : '') + '>' + text + '</a>';
    }
    document.body.insertAdjacentHTML('afterbegin',
      '<a class="skip" href="#main">Skip to content</a>' +
      '<p class="announce">Free shipping from €50 · 30-day returns · Carbon-neutral delivery</p>' +
      '<header class="site-header"><div class="wrap bar">' +
      '<a class="logo" href="/">Lumen <span>Goods</span></a>' +
      '<button id="menu-toggle" class="menu-toggle" type="button" aria-expanded="false" aria-controls="nav">Menu</button>' +
      '<nav id="nav" class="nav" aria-label="Main">' +
      Object.keys(CATEGORIES).map(function (c) {
        return '<a data-cat="' + c + '" href="/category.html?c=' + c + '">' + c.charAt(0).toUpperCase() + c.slice(1) + '</a>';
      }).join('') +
      link('/about.html', 'about', 'About') + link('/faq.html', 'faq', 'FAQ') + '</nav>' +
      '<div class="tools"><a class="tool" href="/account.html" aria-label="Account"><svg viewBox="0 0 24 24" width="22" height="22" aria-hidden="true"><circle cx="12" cy="8" r="4" fill="none" stroke="currentColor" stroke-width="1.8"/><path d="M4 21c1.5-4 4.5-6 8-6s6.5 2 8 6" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round"/></svg></a>' +
      '<a id="cart-link" class="tool" href="/cart.html" aria-label="Cart"><svg viewBox="0 0 24 24" width="22" height="22" aria-hidden="true"><path d="M5 8h14l-1 13H6z" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linejoin="round"/><path d="M9 8V6a3 3 0 0 1 6 0v2" fill="none" stroke="currentColor" stroke-width="1.8"/></svg>' +
      '<span id="cart-count" class="count" hidden>0</span></a></div></div></header>');
    var main = $('#main');
    main.insertAdjacentHTML('afterend',
      '<footer class="site-footer"><div class="wrap foot"><div>' +
      '<a class="logo" href="/">Lumen <span>Goods</span></a>' +
      '<p class="muted">Everyday objects for kitchen, home and desk, chosen to be used every day and kept for years.</p></div>' +
      '<nav aria-label="Shop"><h2>Shop</h2>' + Object.keys(CATEGORIES).map(function (c) {
        return '<a href="/category.html?c=' + c + '">' + esc(CATEGORIES[c].name) + '</a>';
      }).join('') + '</nav>' +
      '<nav aria-label="Help"><h2>Help</h2><a href="/faq.html">FAQ</a><a href="/contact.html">Contact</a><a href="/account.html">Your account</a></nav>' +
      '<nav aria-label="Company"><h2>Company</h2><a href="/about.html">About us</a><a href="/cart.html">Cart</a></nav>' +
      '</div><p class="wrap fine">© Lumen Goods. A demo store: no real orders, no real payments.</p></footer>');
  }

  /* ---- every page ---- */
  chrome();
  badge();
  var toggle = $('#menu-toggle');
  if (toggle) toggle.addEventListener('click', function () {
    var open = document.body.classList.toggle('menu-open');
    toggle.setAttribute('aria-expanded', open);
  });
  addEventListener('storage', function (e) { if (e.key === 'shop.cart') badge(); });
  var page = document.body.dataset.page;
  if (pages[page]) pages[page]();
})();
