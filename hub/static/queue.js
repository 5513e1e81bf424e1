// The staff queue: replaced live from the hub; new arrivals are highlighted and ring.
import { openLive } from "./live.js";
import { Chime } from "./sound.js";
const container = document.getElementById("queue-lists");
const live = document.getElementById("live");
const announce = document.getElementById("announce");
const texts = JSON.parse(container.dataset.texts);
let known = new Set([...container.querySelectorAll("ol.tickets [data-ticket]")].map((el) => el.dataset.ticket));
let pending = null;
const arrival = new Chime([[0, 660], [0.18, 880], [0.36, 990]], 0.18, 0.3);

let pressing = false;

function busy() {
  // Someone types, picks a room, is mid-click or has a forward form open: never pull the
  // list from under them.
  if (pressing) return true;
  const active = document.activeElement;
  if (active && container.contains(active) && active.matches("input, select, textarea")) return true;
  return container.querySelector("details[open]") !== null;
}

container.addEventListener("pointerdown", () => { pressing = true; });
document.addEventListener("pointerup", () => {
  setTimeout(() => {
    pressing = false;
    if (pending && !busy()) apply(pending);
  }, 300);
});

// Waiting seconds come from the hub's clock; only the time since rendering is counted here.
let shownAt = Date.now();

function tickWaited() {
  const elapsed = (Date.now() - shownAt) / 1000;
  for (const el of container.querySelectorAll(".waited[data-seconds]")) {
    el.textContent = `${Math.floor((Number(el.dataset.seconds) + elapsed) / 60)} min`;
  }
}

function announceArrivals(ids, names) {
  const arrived = ids.filter((id) => !known.has(id));
  known = new Set(ids);
  if (!arrived.length) return [];
  announce.textContent = texts.arrived.replace("{n}", arrived.map((id) => names[id] || "").join(", "));
  arrival.play();
  return arrived;
}

function apply(event) {
  const arrived = announceArrivals(event.waiting, event.names || {});
  if (busy()) {
    pending = event;
    pendingNote.hidden = false;
    pendingArrivals.push(...arrived);
    return;
  }
  const focusedId = document.activeElement && container.contains(document.activeElement)
    ? document.activeElement.id : null;
  pending = null;
  pendingNote.hidden = true;
  container.innerHTML = event.html;
  shownAt = Date.now();
  for (const id of [...pendingArrivals, ...arrived]) {
    const card = document.getElementById(`ticket-${id}`);
    card?.classList.add("new-arrival");
    setTimeout(() => card?.classList.remove("new-arrival"), 20000);
  }
  pendingArrivals = [];
  if (focusedId) document.getElementById(focusedId)?.focus();
  tickWaited();
}

let pendingArrivals = [];
const pendingNote = document.getElementById("pending-note");
container.addEventListener("focusout", (e) => {
  if (e.relatedTarget && container.contains(e.relatedTarget)) return;
  // Let a click that started on a button finish before the list changes.
  setTimeout(() => { if (pending && !busy()) apply(pending); }, 300);
});
container.addEventListener("toggle", () => { if (pending && !busy()) apply(pending); }, true);
setInterval(tickWaited, 15000);

openLive({
  path: container.dataset.live,
  indicator: live,
  texts,
  staff: true,
  onEvent: (event) => {
    if (event.type === "queue") apply(event);
  },
});
