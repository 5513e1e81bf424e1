// Live fleet view: applies every device state the hub pushes (online, last seen, version,
// telemetry). The page passes its texts (in the page's language) as JSON in #fleet's data-texts.
import { openLive, whenFormat } from "./live.js";

const fleet = document.getElementById("fleet");
const texts = JSON.parse(fleet.dataset.texts);
const live = document.getElementById("live");
const formatTime = whenFormat(fleet.dataset.zone || "Europe/Berlin");

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

openLive({
  path: "/admin/devices/live",
  indicator: live,
  texts,
  staff: true,
  onEvent: (event) => {
    if (event.type === "snapshot") event.devices.forEach(apply);
    else if (event.type === "device") apply(event.device);
  },
});
