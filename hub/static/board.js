// Live room board: applies every room status the hub pushes; never trusts an older seq.
// The page passes its texts (in the page's language) as JSON in #board's data-texts.
import { openLive, whenFormat } from "./live.js";
import { Chime, knockTones } from "./sound.js";
const ICONS = {
  free: "✓",
  busy: "●",
  waiting: "◷",
  closed: "✕",
  dnd: "⊘",
};
const STATES = Object.keys(ICONS);

const board = document.getElementById("board");
const texts = JSON.parse(board.dataset.texts);
const live = document.getElementById("live");
const empty = document.getElementById("empty");
const formatSince = whenFormat(board.dataset.zone || "Europe/Berlin");

function cardOf(room) {
  return board.querySelector(`[data-room="${CSS.escape(room)}"]`);
}

function show(card, action, visible) {
  card.querySelector(`[data-action="${action}"]`).hidden = !visible;
}

function applyMine(mine) {
  const rooms = new Set(mine);
  for (const card of board.querySelectorAll("[data-room]")) {
    const isMine = rooms.has(card.dataset.room);
    card.dataset.mine = isMine ? "1" : "0";
    show(card, "checkin", !isMine);
    show(card, "checkout", isMine);
  }
}

function apply(status) {
  const card = cardOf(status.room);
  if (!card) {
    // A room this page does not know yet: load the board afresh, unless someone is typing.
    if (!document.activeElement || document.activeElement === document.body) location.reload();
    return;
  }
  if (Number(card.dataset.seq) > status.seq) return;
  card.dataset.seq = String(status.seq);
  const state = STATES.includes(status.state) ? status.state : "unknown";
  for (const s of [...STATES, "unknown"]) card.classList.toggle(`state-bg-${s}`, s === state);
  const badge = card.querySelector('[data-role="state"]');
  badge.className = `state state-${state}`;
  badge.querySelector(".icon").textContent = ICONS[state] || "?";
  badge.querySelector('[data-role="label"]').textContent = texts.labels[state] || texts.labels.unknown;
  card.querySelector('[data-role="occupants"]').textContent = String(status.occupants);
  card.querySelector('[data-role="waiting"]').textContent = String(status.waiting);
  const since = card.querySelector('[data-role="since"]');
  since.dateTime = status.since;
  since.textContent = formatSince(status.since);
  show(card, "dnd-on", state !== "dnd");
  show(card, "dnd-off", state === "dnd");
  for (const action of ["checkin", "dnd-on"]) {
    card.querySelector(`[data-action="${action}"] button`).disabled = state === "closed";
  }
}

function remove(room) {
  cardOf(room)?.remove();
  empty.hidden = board.querySelector("[data-room]") !== null;
}

function snapshot(event) {
  const known = new Set(event.rooms.map((status) => status.room));
  for (const card of board.querySelectorAll("[data-room]")) {
    if (!known.has(card.dataset.room)) remove(card.dataset.room);
  }
  event.rooms.forEach(apply);
}

const knockSound = new Chime(knockTones, 0.2, 0.4);

function knock(event) {
  const card = cardOf(event.room);
  if (!card) return;
  const note = card.querySelector('[data-role="knock"]');
  note.hidden = false;
  card.classList.add("knocking");
  const name = card.querySelector("h2").textContent;
  document.getElementById("announce").textContent = texts.knock.replace("{name}", () => name);
  if (card.dataset.mine === "1") knockSound.play();
  clearTimeout(Number(card.dataset.knockTimer || 0));
  card.dataset.knockTimer = String(setTimeout(() => {
    note.hidden = true;
    card.classList.remove("knocking");
  }, 30000));
}

const brought = document.getElementById("brought");
const broughtTemplate = document.getElementById("brought-template");

function showBrought(calls) {
  const list = document.getElementById("brought-list");
  const known = new Set([...list.querySelectorAll("form")].map((f) => f.dataset.session));
  list.replaceChildren();
  for (const call of calls) {
    const item = broughtTemplate.content.firstElementChild.cloneNode(true);
    const form = item.querySelector("form");
    form.action = call.join;
    form.dataset.session = call.session;
    for (const el of item.querySelectorAll('[data-role="room"], [data-role="room-hidden"]')) {
      el.textContent = call.room;
    }
    list.append(item);
    if (!known.has(call.session)) {
      document.getElementById("announce").textContent = texts.brought.replace("{name}", () => call.room);
      knockSound.play();
    }
  }
  brought.hidden = calls.length === 0;
}

// The buttons act through the JSON API and the page changes with the live event that
// follows, without a reload. When the API refuses, the form is sent as it is, so the
// board page itself explains why (in the page's language).
const ACTIONS = {
  checkin: (room) => ["POST", `/api/v1/rooms/${encodeURIComponent(room)}/checkin`, undefined],
  checkout: (room) => ["POST", `/api/v1/rooms/${encodeURIComponent(room)}/checkout`, undefined],
  "dnd-on": (room) => ["PUT", `/api/v1/rooms/${encodeURIComponent(room)}/dnd`, { dnd: true }],
  "dnd-off": (room) => ["PUT", `/api/v1/rooms/${encodeURIComponent(room)}/dnd`, { dnd: false }],
};
// After an action, the button that undoes it gets the focus once the event shows it.
const OPPOSITE = { checkin: "checkout", checkout: "checkin", "dnd-on": "dnd-off", "dnd-off": "dnd-on" };

board.addEventListener("submit", async (event) => {
  const form = event.target.closest("form[data-action]");
  const card = form?.closest("[data-room]");
  if (!card || !(form.dataset.action in ACTIONS)) return;
  event.preventDefault();
  const action = form.dataset.action;
  const [method, url, body] = ACTIONS[action](card.dataset.room);
  const button = form.querySelector("button");
  button.disabled = true;
  let done = false;
  try {
    const response = await fetch(url, {
      method,
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        "X-CSRFToken": form.querySelector('[name="csrf_token"]').value,
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    done = response.ok;
  } catch {
    done = false;
  }
  button.disabled = false;
  if (!done) {
    form.submit();
    return;
  }
  const name = card.querySelector("h2").textContent;
  document.getElementById("announce").textContent = texts.done[action].replace("{name}", () => name);
  const undo = card.querySelector(`[data-action="${OPPOSITE[action]}"]`);
  focusWhenShown(undo.querySelector("button"), undo);
});

function focusWhenShown(button, form) {
  if (!form.hidden) {
    button.focus();
    return;
  }
  const watch = new MutationObserver(() => {
    if (form.hidden) return;
    watch.disconnect();
    button.focus();
  });
  watch.observe(form, { attributes: true, attributeFilter: ["hidden"] });
  setTimeout(() => watch.disconnect(), 10000);
}

openLive({
  path: "/rooms/live",
  indicator: live,
  texts,
  staff: true,
  onEvent: (event) => {
    if (event.type === "snapshot") snapshot(event);
    else if (event.type === "room") apply(event.status);
    else if (event.type === "removed") remove(event.room);
    else if (event.type === "knock") knock(event);
    else if (event.type === "brought") showBrought(event.calls);
    if (event.mine) applyMine(event.mine);
  },
});
