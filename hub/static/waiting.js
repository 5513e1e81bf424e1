// The citizen's waiting page: follows the ticket live and offers a camera/microphone check.
import { openLive } from "./live.js";

const texts = JSON.parse(document.getElementById("texts").textContent);
const card = document.getElementById("ticket");
const headline = card.querySelector('[data-role="headline"]');
const estimate = card.querySelector('[data-role="estimate"]');
const forwarded = card.querySelector('[data-role="forwarded"]');
const connection = document.getElementById("connection");
const messages = document.getElementById("messages");
const noMessages = document.getElementById("no-messages");

const fill = (template, values) => template.replace(/\{(\w+)\}/g, (_, key) => values[key] ?? "");

let joined = false;

function render(view) {
  if (view.status === "serving" && !joined) {
    joined = true; // admission opens the call at once
    location.assign(card.dataset.call);
    return;
  }
  card.dataset.status = view.status;
  card.dataset.position = view.position ?? "";
  headline.classList.toggle("open", view.status === "serving" || view.next);
  if (view.status === "waiting") {
    headline.textContent = view.next ? texts.next : fill(texts.position, { p: view.position ?? "–" });
    estimate.textContent = view.estimate_minutes ? fill(texts.estimate, { m: view.estimate_minutes }) : "";
  } else if (view.status === "serving") {
    headline.textContent = texts.serving;
    estimate.textContent = fill(texts.serving_detail, {
      staff: view.staff || texts.someone, room: view.room ? view.room.name : "",
    });
  } else {
    headline.textContent = texts.ended;
    estimate.textContent = "";
    document.querySelector("form.leave")?.remove();
  }
  forwarded.hidden = !view.forwarded_to;
  forwarded.textContent = view.forwarded_to ? fill(texts.forwarded, { to: view.forwarded_to }) : "";
  // Append only new messages, so screen readers announce each one once.
  for (const m of view.messages.slice(messages.children.length)) {
    const li = document.createElement("li");
    li.textContent = m.text;
    messages.append(li);
  }
  noMessages.hidden = view.messages.length > 0;
}

openLive({
  path: card.dataset.live,
  indicator: connection,
  texts,
  maxDelay: 15000,
  onEvent: (event) => {
    if (event.type === "ticket") render(event);
  },
  keepGoing: () => card.dataset.status !== "ended",
});

document.getElementById("media-check").addEventListener("click", async () => {
  const result = document.getElementById("media-result");
  const preview = document.getElementById("preview");
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
    preview.srcObject = stream;
    preview.hidden = false;
    await preview.play();
    result.textContent = texts.media_ok;
    setTimeout(() => {
      stream.getTracks().forEach((track) => track.stop());
      preview.hidden = true;
    }, 10000);
  } catch {
    result.textContent = texts.media_failed;
  }
});
