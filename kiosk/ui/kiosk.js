/* The kiosk page: draws the engine's state (from /state, a long poll) and sends every touch to
   the engine through pywebview's bridge (window.pywebview.api). No build step. */
(function () {
  'use strict';

  var LANGUAGE_NAMES = { de: 'Deutsch', en: 'English' };
  var TEXTS = {
    de: {
      welcome: 'Willkommen im Rathaus',
      choose_language: 'Virtuelle Anmeldung: Bitte wählen Sie Ihre Sprache.',
      open: 'Die Anmeldung ist geöffnet.', closed: 'Die Anmeldung ist gerade geschlossen.',
      waiting_people: function (n) { return n === 1 ? '1 Person wartet' : n + ' Personen warten'; },
      about_minutes: function (m) { return 'etwa ' + m + ' Minuten Wartezeit'; },
      concern_title: 'Worum geht es?',
      no_categories: 'Zurzeit sind keine Anliegen wählbar.',
      back: 'Zurück',
      name_title: 'Wie dürfen wir Sie ansprechen?',
      name_hint: 'Ein Name ist freiwillig – ein Vorname oder Spitzname genügt.',
      take_ticket: 'Wartenummer ziehen',
      waiting_title: 'Bitte warten Sie einen Moment',
      position_next: 'Sie sind als Nächstes dran.',
      position: function (n) { return n === 1 ? 'Vor Ihnen wartet 1 Person.' : 'Vor Ihnen warten ' + n + ' Personen.'; },
      estimate: function (m) { return 'Geschätzte Wartezeit: etwa ' + m + ' Minuten'; },
      waiting_hint: 'Eine Mitarbeiterin oder ein Mitarbeiter ruft Sie hier per Video an.',
      cancel: 'Abbrechen',
      end_call: 'Gespräch beenden',
      mute: 'Mikrofon aus', unmute: 'Mikrofon ist aus – wieder einschalten',
      goodbye_title: 'Vielen Dank und auf Wiedersehen!',
      goodbye_hint: 'Ihre Angaben werden jetzt von diesem Gerät gelöscht.',
      oos_title: 'Zurzeit außer Betrieb',
      oos_hint: 'Bitte wenden Sie sich an die Information im Erdgeschoss.',
      retry: function (s) { return 'Neuer Versuch in ' + s + ' Sekunden …'; },
      error: 'Das hat leider nicht geklappt. Bitte versuchen Sie es noch einmal.',
      space: 'Leerzeichen', erase: 'Löschen'
    },
    en: {
      welcome: 'Welcome to the town hall',
      choose_language: 'Virtual reception: please choose your language.',
      open: 'The reception is open.', closed: 'The reception is closed right now.',
      waiting_people: function (n) { return n === 1 ? '1 person waiting' : n + ' people waiting'; },
      about_minutes: function (m) { return 'about ' + m + ' minutes wait'; },
      concern_title: 'What is your concern?',
      no_categories: 'No concerns can be chosen right now.',
      back: 'Back',
      name_title: 'How may we address you?',
      name_hint: 'A name is optional – a first name or nickname is fine.',
      take_ticket: 'Take a number',
      waiting_title: 'Please wait a moment',
      position_next: 'You are next.',
      position: function (n) { return n === 1 ? '1 person is waiting before you.' : n + ' people are waiting before you.'; },
      estimate: function (m) { return 'Estimated wait: about ' + m + ' minutes'; },
      waiting_hint: 'A member of staff will call you here by video.',
      cancel: 'Cancel',
      end_call: 'End call',
      mute: 'Microphone off', unmute: 'Microphone is off – turn it on',
      goodbye_title: 'Thank you and goodbye!',
      goodbye_hint: 'Your details are now being deleted from this device.',
      oos_title: 'Out of service',
      oos_hint: 'Please ask at the information desk on the ground floor.',
      retry: function (s) { return 'Trying again in ' + s + ' seconds …'; },
      error: 'That did not work. Please try again.',
      space: 'Space', erase: 'Delete'
    }
  };
  var KEY_ROWS = ['1234567890', 'QWERTZUIOPÜ', 'ASDFGHJKLÖÄ', 'YXCVBNM-.'];
  // Simple line icons (stroke only) picked by words in the category's slug.
  var ICONS = {
    house: '<path d="M8 30 L32 10 L56 30 M14 26 V54 H50 V26 M26 54 V38 H38 V54"/>',
    card: '<rect x="8" y="16" width="48" height="32" rx="4"/><circle cx="22" cy="32" r="6"/><path d="M34 26 H50 M34 34 H48 M34 42 H44"/>',
    people: '<circle cx="22" cy="22" r="8"/><circle cx="44" cy="24" r="6"/><path d="M8 52 C8 40 36 40 36 52 M36 46 C38 38 56 38 56 50"/>',
    car: '<path d="M10 40 L16 24 H48 L54 40 V50 H10 Z M18 50 V56 M46 50 V56"/><circle cx="20" cy="42" r="3"/><circle cx="44" cy="42" r="3"/>',
    paper: '<path d="M16 8 H40 L50 18 V56 H16 Z M40 8 V18 H50 M22 30 H44 M22 38 H44 M22 46 H36"/>'
  };
  var ICON_WORDS = [
    [/wohn|miet|bau|haus/, 'house'], [/ausweis|pass|melde|id/, 'card'],
    [/sozial|famil|kind|eltern|rente/, 'people'], [/kfz|auto|fahr|zulass/, 'car']
  ];

  var view = null;
  var name = '';
  var lastTouch = 0;

  function api() { return window.pywebview && window.pywebview.api; }
  function t(key, arg) {
    var lang = (view && TEXTS[view.language]) ? view.language : 'de';
    var text = TEXTS[lang][key];
    return typeof text === 'function' ? text(arg) : text;
  }
  function $(id) { return document.getElementById(id); }

  function act(name) {
    var bridge = api();
    if (!bridge || !bridge[name]) return;
    var args = Array.prototype.slice.call(arguments, 1);
    bridge[name].apply(null, args).then(function (next) {
      if (next && next.screen) draw(next);
    });
  }

  function icon(slug) {
    var kind = 'paper';
    for (var i = 0; i < ICON_WORDS.length; i++) {
      if (ICON_WORDS[i][0].test(slug)) { kind = ICON_WORDS[i][1]; break; }
    }
    return '<svg viewBox="0 0 64 64" aria-hidden="true" fill="none" stroke="currentColor" ' +
      'stroke-width="3" stroke-linejoin="round" stroke-linecap="round">' + ICONS[kind] + '</svg>';
  }

  function button(id, label, cls, onTap, html) {
    var b = document.createElement('button');
    if (id) b.id = id;
    b.className = cls || '';
    if (html) { b.innerHTML = html; b.appendChild(document.createTextNode(label)); }
    else b.textContent = label;
    b.addEventListener('click', onTap);
    return b;
  }

  function drawLanguages() {
    var box = $('languages');
    box.textContent = '';
    (view.languages || ['de']).forEach(function (lang) {
      var b = button('lang-' + lang, LANGUAGE_NAMES[lang] || lang, 'lang', function () {
        try { sessionStorage.setItem('kiosk.language', lang); } catch (e) { /* private */ }
        act('start', lang);
      });
      b.lang = lang;
      box.appendChild(b);
    });
  }

  function drawCategories() {
    var box = $('categories');
    var list = ((view.hub || {}).categories || {})[view.language] || [];
    var key = view.language + JSON.stringify(list);
    if (box.dataset.key === key) return;
    box.dataset.key = key;
    box.textContent = '';
    list.forEach(function (c) {
      box.appendChild(button('category-' + c.slug, c.name, 'category', function () {
        act('choose_category', c.slug);
      }, icon(c.slug)));
    });
    $('no-categories').hidden = list.length > 0;
  }

  function drawKeyboard() {
    var box = $('keyboard');
    if (box.dataset.lang === view.language) return;
    box.dataset.lang = view.language;
    box.textContent = '';
    KEY_ROWS.forEach(function (row) {
      var line = document.createElement('div');
      line.className = 'row';
      row.split('').forEach(function (ch) {
        line.appendChild(button('key-' + ch, ch, 'key', function () { type(ch); }));
      });
      box.appendChild(line);
    });
    var last = document.createElement('div');
    last.className = 'row';
    last.appendChild(button('key-space', t('space'), 'key wide', function () { type(' '); }));
    last.appendChild(button('key-erase', '⌫ ' + t('erase'), 'key wide', function () {
      name = name.slice(0, -1); showName(); act('set_name', name);
    }));
    box.appendChild(last);
  }

  function type(ch) {
    if (name.length >= 60) return;
    var lower = name.length > 0 && name.slice(-1) !== ' ' && name.slice(-1) !== '-';
    name += lower ? ch.toLowerCase() : ch;
    showName();
    act('set_name', name);
  }
  function showName() { $('name-field').textContent = name; }

  function drawTexts() {
    document.documentElement.lang = view.language;
    var nodes = document.querySelectorAll('[data-t]');
    for (var i = 0; i < nodes.length; i++) nodes[i].textContent = t(nodes[i].dataset.t);
  }

  function drawFigures() {
    var hub = view.hub || {};
    var parts = [];
    if (hub.open === true) parts.push(t('open'));
    if (hub.open === false) parts.push(t('closed'));
    if (typeof hub.waiting === 'number') parts.push(t('waiting_people', hub.waiting));
    if (hub.open && typeof hub.estimate_minutes === 'number') parts.push(t('about_minutes', hub.estimate_minutes));
    $('hub-figures').textContent = parts.join(' · ');
  }

  function draw(next) {
    var changed = !view || view.screen !== next.screen || view.language !== next.language;
    view = next;
    if (changed) drawTexts();
    var screens = document.querySelectorAll('.screen');
    for (var i = 0; i < screens.length; i++) screens[i].hidden = screens[i].id !== view.screen;
    document.body.dataset.screen = view.screen;
    $('dim').hidden = !(view.dimmed && view.screen === 'attract');
    if (view.screen === 'attract') { drawLanguages(); drawFigures(); name = ''; showName(); }
    if (view.screen === 'concern') drawCategories();
    if (view.screen === 'name') {
      drawKeyboard();
      $('take-ticket').disabled = !!view.busy;
      $('name-error').hidden = !view.error;
      $('name-error').textContent = view.error ? t('error') : '';
    }
    if (view.screen === 'waiting') {
      $('position').textContent = view.position === 0 ? t('position_next')
        : (typeof view.position === 'number' ? t('position', view.position) : '');
      $('estimate').textContent = typeof view.estimate === 'number' ? t('estimate', view.estimate) : '';
    }
    if (view.screen === 'call') {
      var mute = $('mute');
      mute.hidden = !view.microphone;
      mute.setAttribute('aria-pressed', view.muted ? 'true' : 'false');
      mute.textContent = view.muted ? t('unmute') : t('mute');
    }
    if (view.screen === 'out-of-service') {
      $('retry').textContent = typeof view.retry_in === 'number' ? t('retry', Math.max(1, view.retry_in)) : '';
    }
    placeVideo();  // every time: the layout may have moved (fonts, window size)
  }

  // The videos are drawn by the kiosk window (Qt widgets over the page, fed by the engine
  // with no web memory involved); the page only says where their boxes are.
  var placed = null;
  // [x, y, width, height, frame]: the whole box, and its border (painted by the window).
  function box(el) {
    var r = el.getBoundingClientRect();
    return [Math.round(r.left), Math.round(r.top), Math.round(r.width), Math.round(r.height),
      el.clientLeft];
  }
  function placeVideo() {
    var boxes = null;
    if (view && view.screen === 'call') {
      boxes = { remote: box($('remote-video')), preview: box($('own-video')) };
    }
    var key = JSON.stringify(boxes);
    var bridge = api();
    if (key === placed || !bridge || !bridge.video) return;
    placed = key;
    bridge.video(boxes).catch(function () { placed = null; });
  }
  window.addEventListener('resize', placeVideo);

  // The next view: the engine answers when it differs from the one we have (a long poll,
  // so the web view makes a request per change, not several a second).
  var tag = '';
  function poll() {
    fetch('/state?seen=' + tag, { cache: 'no-store' }).then(function (r) { return r.json(); })
      .then(function (next) { tag = next.tag || ''; draw(next); return 20; })
      .catch(function () { tag = ''; return 1000; /* the engine restarts: keep trying */ })
      .then(function (pause) { setTimeout(poll, pause); });
  }

  document.addEventListener('pointerdown', function () {
    var now = Date.now();
    if (now - lastTouch > 1000) { lastTouch = now; act('touch'); }
  }, true);
  $('back-concern').addEventListener('click', function () { act('back'); });
  $('back-name').addEventListener('click', function () { act('back'); });
  $('take-ticket').addEventListener('click', function () { act('take_ticket'); });
  $('cancel').addEventListener('click', function () { act('cancel'); });
  $('end-call').addEventListener('click', function () { act('end_call'); });
  $('mute').addEventListener('click', function () { act('mute', !(view && view.muted)); });
  document.addEventListener('contextmenu', function (e) { e.preventDefault(); });
  poll();
})();
