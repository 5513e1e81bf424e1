// Live fleet view: applies every device state the hub pushes (online, last seen, version,
// telemetry). The page passes its texts (in the page's language) as JSON in #fleet's data-texts.
const fleet = document.getElementById("fleet");
const texts = JSON.parse(fleet.dataset.texts);
const live = document.getElementById("live");
const zone = fleet.dataset.zone || "Europe/Berlin";
const timeFormat = new Intl.DateTimeFormat("de-DE", { hour: "2-digit", minute: "2-digit", timeZone: zone });
const dayFormat = new Intl.DateTimeFormat("de-DE", { day: "2-digit", month: "2-digit", timeZone: zone });

function formatTime(iso) {
  const at = new Date(iso);
  const sameDay = dayFormat.format(at) === dayFormat.format(new Date());
  return sameDay ? timeFormat.format(at) : `${dayFormat.format(at)} ${timeFormat.format(at)}`;
}

function setLive(state, text) {
  live.dataset.state = state;
  live.textContent = text;
}

function rowOf(id) {
  return fleet.querySelector(`tr[data-device="${CSS.escape(id)}"]`);
}

function apply(device) {
  const row = rowOf(device.id);
  if (!row) return; // filtered out, or created after the page loaded
  const online = row.querySelector('[data-role="online"]');
  const state = device.online ? "online" : "offline";
  online.className = `conn conn-${state}`;
  online.textContent = texts[state];
  const seen = row.querySelector('[data-role="last-seen"]');
  seen.dateTime = device.last_seen || "";
  seen.textContent = device.last_seen ? formatTime(device.last_seen) : "–";
  row.querySelector('[data-role="version"]').textContent = device.version || "–";
  const list = row.querySelector('[data-role="telemetry"]');
  list.replaceChildren(
    ...Object.entries(device.telemetry || {}).map(([key, value]) => {
      const item = document.createElement("li");
      const name = document.createElement("span");
      name.textContent = key;
      item.append(name, ` ${value}`);
      return item;
    }),
  );
}

async function loggedIn() {
  try {
    const response = await fetch("/api/v1/session", { credentials: "same-origin" });
    return (await response.json()).user !== null;
  } catch {
    return true; // the hub is unreachable: keep retrying rather than leave the page
  }
}

function connect(attempt = 0) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/admin/devices/live`);
  let received = false;
  ws.addEventListener("message", (msg) => {
    const event = JSON.parse(msg.data);
    if (!received) setLive("live", texts.live);
    received = true;
    attempt = 0;
    if (event.type === "snapshot") event.devices.forEach(apply);
    else if (event.type === "device") apply(event.device);
  });
  ws.addEventListener("close", async () => {
    setLive("lost", texts.lost);
    if (!received && !(await loggedIn())) {
      location.assign(`/staff/login?next=${encodeURIComponent(location.pathname)}`);
      return;
    }
    setTimeout(() => connect(attempt + 1), Math.min(30000, 1000 * 2 ** attempt));
  });
}

connect();
