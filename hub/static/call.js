// A call: peer-to-peer WebRTC mesh (up to 4), signalled through the hub's live channel.
import { Chime, knockTones } from "./sound.js";

const cfg = JSON.parse(document.getElementById("call-config").textContent);
const T = JSON.parse(document.getElementById("call-texts").textContent);
const $ = (id) => document.getElementById(id);
const stage = $("stage");
const statusLine = $("call-status");
const peers = new Map();
let iceServers = cfg.ice_servers;
let localStream = new MediaStream();
let ws = null;
let finished = false;
let admitted = false;
let csrf = null;
const knockSound = new Chime(knockTones, 0.2, 0.4);
let heardKnocks = new Set();

function send(message) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
}

function setStatus(text) {
  statusLine.textContent = text;
}

async function startMedia(constraints = { audio: true, video: { width: 640, height: 480 } }) {
  try {
    const stream = await navigator.mediaDevices.getUserMedia(constraints);
    localStream.getTracks().forEach((t) => t.stop());
    localStream = stream;
  } catch {
    setStatus(T.no_media);
  }
  $("local-video").srcObject = localStream;
  await listDevices();
}

async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  for (const [kind, select] of [["videoinput", $("camera-select")], ["audioinput", $("mic-select")]]) {
    const current = localStream.getTracks().find((t) => (kind === "videoinput" ? t.kind === "video" : t.kind === "audio"));
    select.replaceChildren(...devices.filter((d) => d.kind === kind).map((d, i) => {
      const option = new Option(d.label || `${kind === "videoinput" ? "Kamera" : "Mikrofon"} ${i + 1}`, d.deviceId);
      option.selected = current?.getSettings().deviceId === d.deviceId;
      return option;
    }));
  }
}

async function switchDevice(kind, deviceId) {
  const stream = await navigator.mediaDevices.getUserMedia(
    kind === "video" ? { video: { deviceId: { exact: deviceId } } } : { audio: { deviceId: { exact: deviceId } } });
  const track = stream.getTracks()[0];
  const old = localStream.getTracks().find((t) => t.kind === kind);
  if (old) { localStream.removeTrack(old); old.stop(); }
  localStream.addTrack(track);
  for (const { pc } of peers.values()) {
    const sender = pc.getSenders().find((s) => s.track?.kind === kind);
    if (sender) await sender.replaceTrack(track);
  }
  $("local-video").srcObject = localStream;
}

function makeTile(id, name) {
  const figure = document.createElement("figure");
  figure.className = "tile";
  figure.id = `tile-${id}`;
  const video = document.createElement("video");
  video.autoplay = true;
  video.playsInline = true;
  video.dataset.participant = id;
  const caption = document.createElement("figcaption");
  caption.textContent = name;
  figure.append(video, caption);
  stage.append(figure);
  return { figure, video, caption };
}

function peer(id, name) {
  if (peers.has(id)) {
    const known = peers.get(id);
    if (name) known.tile.caption.textContent = name;
    return known;
  }
  const pc = new RTCPeerConnection({ iceServers });
  const p = {
    pc, polite: cfg.participant > id, makingOffer: false, ignoreOffer: false, pending: [],
    tile: makeTile(id, name),
  };
  for (const track of localStream.getTracks()) pc.addTrack(track, localStream);
  pc.ontrack = ({ streams, track }) => {
    p.tile.video.srcObject = streams[0] || new MediaStream([track]);
  };
  pc.onicecandidate = ({ candidate }) => {
    if (candidate) send({ type: "signal", to: id, kind: "candidate", data: candidate.toJSON() });
  };
  pc.onnegotiationneeded = async () => {
    // The first offer always comes from the impolite side: two crossing first offers made
    // the polite side roll back, and the candidates of its discarded offer were lost.
    if (p.polite && !pc.currentRemoteDescription) return;
    try {
      p.makingOffer = true;
      await pc.setLocalDescription();
      send({ type: "signal", to: id, kind: "description", data: pc.localDescription.toJSON() });
    } finally {
      p.makingOffer = false;
    }
  };
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === "failed") pc.restartIce();
    summarize();
  };
  peers.set(id, p);
  return p;
}

function drop(id) {
  const p = peers.get(id);
  if (!p) return;
  p.pc.close();
  p.tile.figure.remove();
  peers.delete(id);
}

async function onSignal(from, kind, data) {
  if (kind === "bye") return drop(from);
  const p = peer(from, "");
  const pc = p.pc;
  if (kind === "description") {
    const collision = data.type === "offer" && (p.makingOffer || pc.signalingState !== "stable");
    p.ignoreOffer = !p.polite && collision;
    if (p.ignoreOffer) return;
    await pc.setRemoteDescription(data);
    for (const candidate of p.pending.splice(0)) await pc.addIceCandidate(candidate).catch(() => {});
    if (data.type === "offer") {
      await pc.setLocalDescription();
      send({ type: "signal", to: from, kind: "description", data: pc.localDescription.toJSON() });
    }
  } else if (kind === "candidate") {
    if (!pc.remoteDescription) {
      p.pending.push(data); // held until the description it belongs to has arrived
      return;
    }
    try {
      await pc.addIceCandidate(data);
    } catch (error) {
      if (!p.ignoreOffer) console.warn("candidate refused", error);
    }
  }
}

function summarize() {
  if (finished) return;
  if (!admitted) return;
  const states = [...peers.values()].map((p) => p.pc.connectionState);
  setStatus(states.length === 0 ? T.alone : states.some((s) => s === "connected") ? T.live : T.connecting);
}

function renderList(list, items, build) {
  list.replaceChildren(...items.map((item) => {
    const li = document.createElement("li");
    build(li, item);
    return li;
  }));
}

function button(label, onClick, className = "") {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.className = className;
  b.addEventListener("click", onClick);
  return b;
}

function applyState(state) {
  admitted = state.me.admitted;
  $("knock-wait").hidden = admitted;
  if (!admitted) { setStatus(""); return; }
  if (state.room) $("room-name") && ($("room-name").textContent = state.room.name);
  stage.classList.toggle("private", state.private);
  $("private-note").hidden = !state.private;
  const others = state.participants.filter((p) => p.id !== cfg.participant);
  for (const other of others) peer(other.id, other.name);
  for (const id of [...peers.keys()]) if (!others.some((o) => o.id === id)) drop(id);
  renderList($("chat"), state.chat, (li, m) => {
    const who = document.createElement("strong");
    who.textContent = `${m.author}: `;
    li.append(who, document.createTextNode(m.text));
  });
  renderList($("documents"), state.documents, (li, d) => {
    const a = document.createElement("a");
    a.href = d.url;
    a.textContent = `${d.filename} (${Math.ceil(d.size / 1024)} KB, ${d.by})`;
    li.append(a);
  });
  if (cfg.role === "host") {
    renderList($("people"), state.participants, (li, p) => {
      li.textContent = `${p.name} (${p.role}) `;
      if (p.id !== cfg.participant) li.append(button(T.remove, () => send({ type: "remove", participant: p.id })));
    });
    const knocking = $("knocking");
    // A new knock rings once; the row stays visible until someone answers it.
    if (state.knocking.some((k) => !heardKnocks.has(k.id))) knockSound.play();
    heardKnocks = new Set(state.knocking.map((k) => k.id));
    knocking.replaceChildren(...state.knocking.map((k) => {
      const row = document.createElement("p");
      row.className = "knock";
      row.textContent = T.knocks.replace("{name}", k.name) + " ";
      row.append(button(T.admit, () => send({ type: "admit", participant: k.id }), "primary"),
        button(T.decline, () => send({ type: "remove", participant: k.id })));
      return row;
    }));
    const select = $("bring-user");
    const chosen = select.value;
    // The hub confirms a colleague by no longer offering them.
    if (pendingBring && !(state.colleagues || []).some((c) => c.username === pendingBring.username)) {
      $("bring-result").textContent = T.brought.replace("{name}", () => pendingBring.name);
      pendingBring = null;
    }
    const placeholder = new Option(T.choose_person, "", true, !chosen);
    placeholder.disabled = true;
    select.replaceChildren(placeholder, ...(state.colleagues || []).map(
      (c) => new Option(c.name, c.username, false, c.username === chosen)));
    if (state.room) {
      const dnd = $("dnd");
      dnd.setAttribute("aria-pressed", String(state.room.dnd));
      dnd.textContent = state.room.dnd ? T.dnd_off : T.dnd_on;
    }
  }
  summarize();
}

let pendingBring = null;

function showError(event) {
  pendingBring = null;
  const box = $("call-error");
  const reason = (T.errors && T.errors[event.code]) || event.error;
  box.textContent = T.refused.replace("{reason}", () => reason);
  box.hidden = false;
  clearTimeout(Number(box.dataset.timer || 0));
  box.dataset.timer = String(setTimeout(() => { box.hidden = true; }, 10000));
}

function finish(text) {
  if (finished) return; // the first reason stays (e.g. "you left" before "ended")
  finished = true;
  for (const id of [...peers.keys()]) drop(id);
  localStream.getTracks().forEach((t) => t.stop());
  setStatus(text);
  document.querySelector(".controls").hidden = true;
}

let inbox = Promise.resolve();

async function handle(event) {
  await mediaReady;
  if (event.ice_servers) iceServers = event.ice_servers;
  if (event.type === "state") applyState(event);
  else if (event.type === "signal") await onSignal(event.from, event.kind, event.data);
  else if (event.type === "ended") finish(T.ended);
  else if (event.type === "removed") finish(T.removed);
  else if (event.type === "error") showError(event);
}

function connect(attempt = 0) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const path = new URL(cfg.live, location.href).pathname;
  ws = new WebSocket(`${scheme}://${location.host}${path}?k=${encodeURIComponent(cfg.key)}`);
  ws.addEventListener("message", (msg) => {
    const event = JSON.parse(msg.data);
    attempt = 0;
    // One at a time and in order (a description before its candidates), once media is up.
    inbox = inbox.then(() => handle(event)).catch((error) => console.warn(error));
  });
  ws.addEventListener("close", () => {
    if (finished) return;
    setStatus(T.lost);
    setTimeout(() => connect(attempt + 1), Math.min(10000, 500 * 2 ** attempt));
  });
}

async function quality() {
  let worst = "good";
  for (const { pc } of peers.values()) {
    const stats = await pc.getStats();
    stats.forEach((s) => {
      if (s.type === "candidate-pair" && s.nominated && s.currentRoundTripTime !== undefined) {
        const rtt = s.currentRoundTripTime * 1000;
        if (rtt > 400) worst = "poor";
        else if (rtt > 150 && worst === "good") worst = "fair";
      }
      if (s.type === "inbound-rtp" && s.packetsReceived > 50) {
        const loss = (s.packetsLost || 0) / (s.packetsReceived + (s.packetsLost || 0));
        if (loss > 0.08) worst = "poor";
        else if (loss > 0.02 && worst === "good") worst = "fair";
      }
    });
  }
  const el = $("quality");
  el.dataset.level = peers.size ? worst : "unknown";
  el.textContent = peers.size ? T[worst] : el.textContent;
}

$("mute").addEventListener("click", (e) => {
  const on = e.currentTarget.getAttribute("aria-pressed") !== "true";
  localStream.getAudioTracks().forEach((t) => { t.enabled = !on; });
  e.currentTarget.setAttribute("aria-pressed", String(on));
  e.currentTarget.textContent = on ? T.unmute : T.mute;
});
$("camera").addEventListener("click", (e) => {
  const off = e.currentTarget.getAttribute("aria-pressed") !== "true";
  localStream.getVideoTracks().forEach((t) => { t.enabled = !off; });
  e.currentTarget.setAttribute("aria-pressed", String(off));
  e.currentTarget.textContent = off ? T.camera_on : T.camera_off;
});
$("layout").addEventListener("click", (e) => {
  const speaker = stage.dataset.layout !== "speaker";
  stage.dataset.layout = speaker ? "speaker" : "grid";
  e.currentTarget.setAttribute("aria-pressed", String(speaker));
});
$("camera-select").addEventListener("change", (e) => switchDevice("video", e.target.value));
$("mic-select").addEventListener("change", (e) => switchDevice("audio", e.target.value));
$("leave").addEventListener("click", () => {
  send({ type: "leave" });
  finish(T.left);
  setTimeout(() => ws.close(), 200);
});
$("chat-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const input = $("chat-text");
  if (input.value.trim()) send({ type: "chat", text: input.value });
  input.value = "";
});

async function token() {
  csrf ??= (await (await fetch("/api/v1/session")).json()).csrf_token;
  return csrf;
}

// A refused upload in the page's language: the sentence for the hub's code, else a general one.
function uploadRefusal(status, result) {
  const code = result.code || (status === 413 ? "document.too_large" : "");
  return T.errors[code] || T.upload_failed;
}

$("upload-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const out = $("upload-result");
  const file = $("upload-file").files[0];
  if (!file) {
    out.textContent = T.errors["document.missing"];
    return;
  }
  const body = new FormData();
  body.append("file", file);
  const submit = e.currentTarget.querySelector("button");
  submit.disabled = true;
  out.textContent = T.uploading;
  try {
    const response = await fetch(cfg.documents, {
      method: "POST",
      body,
      headers: { Accept: "application/json", "X-CSRFToken": await token(), "X-Participant-Key": cfg.key },
    });
    const result = await response.json().catch(() => ({}));
    out.textContent = response.ok ? T.uploaded : uploadRefusal(response.status, result);
  } catch {
    out.textContent = T.upload_failed; // the network failed, not the hub
  } finally {
    submit.disabled = false;
  }
});

if (cfg.role === "host") {
  $("move-form").addEventListener("submit", (e) => {
    e.preventDefault();
    if (!$("move-room").value) return;
    send({ type: "move", room: $("move-room").value });
    $("move-room").value = "";
  });
  $("bring-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const select = $("bring-user");
    if (!select.value) return;
    const name = select.selectedOptions[0].textContent;
    pendingBring = { username: select.value, name };
    send({ type: "bring", user: select.value });
    select.value = "";
  });
  $("dnd").addEventListener("click", (e) => {
    send({ type: "dnd", on: e.currentTarget.getAttribute("aria-pressed") !== "true" });
  });
  $("invite-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const response = await fetch(cfg.invites, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRFToken": await token(), "X-Participant-Key": cfg.key },
      body: JSON.stringify({ label: $("invite-label").value }),
    });
    const result = await response.json();
    if (!response.ok) return;
    $("invite-url").value = result.url;
    $("invite-qr").innerHTML = result.qr_svg; // SVG made by the hub from our own link
    $("invite-result").hidden = false;
  });
}

setInterval(() => send({ type: "ping" }), 5000);
setInterval(quality, 2000);
window.addEventListener("pagehide", () => send({ type: "leave" }));
// Camera and the live channel start together; peers are made once the camera is ready.
const mediaReady = startMedia();
connect();
