// Polls GET /stats on a fixed interval. Live events can ask for an earlier refresh, but two
// requests never start less than minIntervalMs apart and never overlap.

export const STATS_INTERVAL_MS = 5000;
export const STATS_MIN_INTERVAL_MS = 2000;

export function createStatsPoller({
  fetchStats,
  onStats,
  onError,
  intervalMs = STATS_INTERVAL_MS,
  minIntervalMs = STATS_MIN_INTERVAL_MS,
}) {
  let running = false;
  let inFlight = false;
  let refreshRequested = false;
  let timer = null;
  let dueAt = Infinity;
  let lastStartedAt = -Infinity;

  function scheduleIn(delayMs) {
    clearTimeout(timer);
    dueAt = Date.now() + delayMs;
    timer = setTimeout(refresh, delayMs);
  }

  async function refresh() {
    timer = null;
    dueAt = Infinity;
    if (!running) {
      return;
    }
    inFlight = true;
    refreshRequested = false;
    lastStartedAt = Date.now();
    try {
      onStats(await fetchStats());
    } catch (error) {
      onError(error);
    } finally {
      inFlight = false;
      if (running) {
        scheduleIn(refreshRequested ? minIntervalMs : intervalMs);
      }
    }
  }

  // Asks for a refresh as soon as the minimum interval allows.
  function requestRefresh() {
    if (!running) {
      return;
    }
    if (inFlight) {
      refreshRequested = true;
      return;
    }
    const earliest = Math.max(Date.now(), lastStartedAt + minIntervalMs);
    if (earliest < dueAt) {
      scheduleIn(earliest - Date.now());
    }
  }

  function start() {
    if (running) {
      return;
    }
    running = true;
    requestRefresh();
  }

  function stop() {
    running = false;
    clearTimeout(timer);
    timer = null;
    dueAt = Infinity;
  }

  return { start, stop, requestRefresh };
}
