// A page's live channel to the hub: a WebSocket that reconnects with growing pauses and
// shows its state in an indicator element. Staff pages whose login has ended go back to the
// login page instead of retrying for ever.

async function loggedIn() {
  try {
    const response = await fetch("/api/v1/session", { credentials: "same-origin" });
    return (await response.json()).user !== null;
  } catch {
    return true; // the hub is unreachable: keep retrying rather than leave the page
  }
}

function showState(indicator, state, text) {
  indicator.dataset.state = state;
  indicator.textContent = text;
}

// path: the channel's path (a full ws:// address from url_for works too); texts: {live, lost};
// onEvent(event) for every message; staff: check the login when the channel never opened;
// keepGoing(): false once reconnecting makes no sense any more.
export function openLive({ path, indicator, texts, onEvent, maxDelay = 30000, staff = false,
  keepGoing = () => true }) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const pathname = new URL(path, location.href).pathname;
  function connect(attempt) {
    const ws = new WebSocket(`${scheme}://${location.host}${pathname}`);
    let received = false;
    ws.addEventListener("message", (msg) => {
      const event = JSON.parse(msg.data);
      if (!received) showState(indicator, "live", texts.live);
      received = true;
      attempt = 0;
      onEvent(event);
    });
    ws.addEventListener("close", async () => {
      showState(indicator, "lost", texts.lost);
      if (staff && !received && !(await loggedIn())) {
        location.assign(`/staff/login?next=${encodeURIComponent(location.pathname)}`);
        return;
      }
      if (keepGoing()) {
        setTimeout(() => connect(attempt + 1), Math.min(maxDelay, 1000 * 2 ** attempt));
      }
    });
  }
  connect(0);
}

// "14:05" today, "24.11. 14:05" on other days, in the site's time zone.
export function whenFormat(zone = "Europe/Berlin") {
  const time = new Intl.DateTimeFormat("de-DE", { hour: "2-digit", minute: "2-digit", timeZone: zone });
  const day = new Intl.DateTimeFormat("de-DE", { day: "2-digit", month: "2-digit", timeZone: zone });
  return (iso) => {
    const at = new Date(iso);
    const sameDay = day.format(at) === day.format(new Date());
    return sameDay ? time.format(at) : `${day.format(at)} ${time.format(at)}`;
  };
}
