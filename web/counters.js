// Counters of jobs per status. The visible numbers change on every update, while the
// screen-reader summary in the same aria-live region changes at most once per
// ANNOUNCE_INTERVAL_MS, so a busy server does not flood the reader with announcements.

import { STATUSES, formatCount } from "./format.js";
import { requireElement } from "./dom.js";

export const ANNOUNCE_INTERVAL_MS = 10_000;

const STATUS_WORDS = {
  PENDING: "pending",
  QUEUED: "queued",
  RUNNING: "running",
  COMPLETED: "completed",
  FAILED: "failed",
  CANCELLED: "cancelled",
};

export function describeCounts(counts) {
  const parts = STATUSES.map((status) => `${formatCount(counts[status] ?? 0)} ${STATUS_WORDS[status]}`);
  return `Jobs: ${parts.join(", ")}.`;
}

export function createCounters(root) {
  const summary = requireElement(root, "[data-counter-summary]");
  const valueElements = new Map(
    STATUSES.map((status) => [
      status,
      requireElement(root, `[data-counter="${status}"] [data-counter-value]`),
    ]),
  );
  let latestCounts = null;
  let lastAnnouncedAt = -Infinity;
  let announceTimer = null;

  function announce() {
    announceTimer = null;
    lastAnnouncedAt = Date.now();
    const text = describeCounts(latestCounts);
    if (summary.textContent !== text) {
      summary.textContent = text;
    }
  }

  function scheduleAnnouncement() {
    if (announceTimer !== null) {
      return;
    }
    const wait = Math.max(0, lastAnnouncedAt + ANNOUNCE_INTERVAL_MS - Date.now());
    announceTimer = setTimeout(announce, wait);
  }

  function update(counts) {
    latestCounts = counts;
    for (const [status, element] of valueElements) {
      const text = formatCount(counts[status]);
      if (element.textContent !== text) {
        element.textContent = text;
      }
    }
    scheduleAnnouncement();
  }

  return { update };
}
