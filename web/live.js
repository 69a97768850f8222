// Server-sent events from GET /events, with reconnects that resume after the last seen event.
//
// The browser's own EventSource retry resends the last id in a Last-Event-ID header, but at a
// fixed delay. A new EventSource cannot set that header, so on any error the connection is
// closed here and reopened after a backoff with ?lastEventId=ID.

export const INITIAL_RECONNECT_DELAY_MS = 1000;
export const MAX_RECONNECT_DELAY_MS = 30_000;

// Returns the wait before reconnect number `failures` (0 for the first): 1 s doubling up to
// 30 s, scaled by a random factor in [0.5, 1) so that many open dashboards spread out their
// reconnects after a server restart.
export function reconnectDelayMs(failures, random = Math.random) {
  const base = Math.min(MAX_RECONNECT_DELAY_MS, INITIAL_RECONNECT_DELAY_MS * 2 ** failures);
  return Math.round(base * (0.5 + random() * 0.5));
}

export function buildEventsUrl(lastEventId) {
  if (lastEventId === null || lastEventId === "") {
    return "/events";
  }
  return `/events?${new URLSearchParams({ lastEventId })}`;
}

// Opens and reopens the event stream. Callbacks:
//   onJobEvent(event)        parsed data of each `event: job` message
//   onResync(reason)         an `event: resync` message, so the caller must reload its data
//   onOpen({ first, replaying })  after each open; replaying is false when no event id was
//                            known, so events between the page load and this open may be lost
//   onStateChange({ state, seconds })  state is connecting, live, reconnecting or paused
export function createLiveConnection({
  onJobEvent,
  onResync,
  onOpen,
  onStateChange,
  createEventSource = (url) => new EventSource(url),
}) {
  let source = null;
  let lastEventId = null;
  let failures = 0;
  let openCount = 0;
  let paused = false;
  let reconnectTimer = null;
  let countdownTimer = null;

  function connect() {
    clearTimers();
    closeSource();
    const replaying = lastEventId !== null;
    source = createEventSource(buildEventsUrl(lastEventId));
    onStateChange({ state: "connecting" });

    source.addEventListener("open", () => {
      failures = 0;
      openCount += 1;
      onStateChange({ state: "live" });
      onOpen({ first: openCount === 1, replaying });
    });
    source.addEventListener("job", handleJobMessage);
    source.addEventListener("resync", handleResyncMessage);
    source.addEventListener("error", handleError);
  }

  function rememberEventId(message) {
    if (message.lastEventId) {
      lastEventId = message.lastEventId;
    }
  }

  function parseMessageData(message) {
    try {
      return JSON.parse(message.data);
    } catch (error) {
      console.warn(`Ignored SSE message ${message.lastEventId || "without id"}: invalid JSON`, error);
      return null;
    }
  }

  function handleJobMessage(message) {
    rememberEventId(message);
    const event = parseMessageData(message);
    if (event !== null) {
      onJobEvent(event);
    }
  }

  // The server ends the stream after a resync message. The caller reloads everything, so the
  // next connection starts from now: replaying the backlog that overflowed would only repeat it.
  function handleResyncMessage(message) {
    lastEventId = null;
    const data = parseMessageData(message);
    onResync(data?.reason ?? "unknown");
  }

  function handleError() {
    closeSource();
    if (!paused) {
      scheduleReconnect();
    }
  }

  function scheduleReconnect() {
    const delay = reconnectDelayMs(failures);
    failures += 1;
    const deadline = Date.now() + delay;
    let shownSeconds = null;

    const showCountdown = () => {
      const seconds = Math.max(1, Math.ceil((deadline - Date.now()) / 1000));
      if (seconds !== shownSeconds) {
        shownSeconds = seconds;
        onStateChange({ state: "reconnecting", seconds });
      }
    };
    showCountdown();
    countdownTimer = setInterval(showCountdown, 250);
    reconnectTimer = setTimeout(connect, delay);
  }

  function closeSource() {
    if (source !== null) {
      source.close();
      source = null;
    }
  }

  function clearTimers() {
    clearTimeout(reconnectTimer);
    clearInterval(countdownTimer);
    reconnectTimer = null;
    countdownTimer = null;
  }

  function pause() {
    paused = true;
    clearTimers();
    closeSource();
    onStateChange({ state: "paused" });
  }

  function resume() {
    paused = false;
    failures = 0;
    connect();
  }

  return {
    start: resume,
    pause,
    resume,
    isPaused: () => paused,
  };
}
