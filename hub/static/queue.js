// The staff queue: replaced live from the hub; new arrivals are highlighted and ring.
const container = document.getElementById("queue-lists");
const live = document.getElementById("live");
const announce = document.getElementById("announce");
const texts = JSON.parse(container.dataset.texts);
let known = new Set([...container.querySelectorAll("ol.tickets [data-ticket]")].map((el) => el.dataset.ticket));
let pending = null;
let audio = null;

document.addEventListener("click", () => {
  audio ??= new AudioContext();
  if (audio.state === "suspended") audio.resume();
});

function chime() {
  if (!audio || audio.state !== "running") return;
  for (const [offset, freq] of [[0, 660], [0.18, 880], [0.36, 990]]) {
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.18, audio.currentTime + offset);
    gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + offset + 0.3);
    osc.connect(gain).connect(audio.destination);
    osc.start(audio.currentTime + offset);
    osc.stop(audio.currentTime + offset + 0.32);
  }
}

function busy() {
  // Someone is typing or has a forward form open: do not pull the page from under them.
  const active = document.activeElement;
  if (active && container.contains(active) && active.matches("input, select, textarea")) return true;
  return container.querySelector("details[open]") !== null;
}

function tickWaited() {
  for (const el of container.querySelectorAll(".waited[data-since]")) {
    const minutes = Math.max(0, Math.floor((Date.now() - Date.parse(el.dataset.since)) / 60000));
    el.textContent = `${minutes} min`;
  }
}

function apply(event) {
  if (busy()) {
    pending = event;
    return;
  }
  pending = null;
  container.innerHTML = event.html;
  const arrived = event.waiting.filter((id) => !known.has(id));
  known = new Set(event.waiting);
  for (const id of arrived) {
    const card = document.getElementById(`ticket-${id}`);
    card?.classList.add("new-arrival");
    setTimeout(() => card?.classList.remove("new-arrival"), 20000);
  }
  if (arrived.length) {
    const names = arrived.map((id) => document.querySelector(`#ticket-${id} h3`)?.textContent).join(", ");
    announce.textContent = texts.arrived.replace("{n}", names);
    chime();
  }
  tickWaited();
}

container.addEventListener("focusout", () => setTimeout(() => { if (pending && !busy()) apply(pending); }, 0));
container.addEventListener("toggle", () => { if (pending && !busy()) apply(pending); }, true);
setInterval(tickWaited, 15000);

function connect(attempt = 0) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  // url_for gives ws://host/path for socket routes; keep only the path.
  const path = new URL(container.dataset.live, location.href).pathname;
  const ws = new WebSocket(`${scheme}://${location.host}${path}`);
  ws.addEventListener("message", (msg) => {
    const event = JSON.parse(msg.data);
    attempt = 0;
    live.dataset.state = "live";
    live.textContent = texts.live;
    if (event.type === "queue") apply(event);
  });
  ws.addEventListener("close", () => {
    live.dataset.state = "lost";
    live.textContent = texts.lost;
    setTimeout(() => connect(attempt + 1), Math.min(30000, 1000 * 2 ** attempt));
  });
}

connect();
