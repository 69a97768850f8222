// Pure formatting helpers. They touch no DOM, so node --test can import them.

export const STATUSES = ["PENDING", "QUEUED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"];

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const PLACEHOLDER = "—";

const clockFormat = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hourCycle: "h23",
});

const dayAndClockFormat = new Intl.DateTimeFormat(undefined, {
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  hourCycle: "h23",
});

const dayFormat = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });

const fullFormatOptions = {
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  fractionalSecondDigits: 3,
  hourCycle: "h23",
  timeZoneName: "short",
};
const fullFormat = new Intl.DateTimeFormat(undefined, fullFormatOptions);
const fullFormatWithYear = new Intl.DateTimeFormat(undefined, { ...fullFormatOptions, year: "numeric" });

function isSameDay(date, other) {
  return (
    date.getFullYear() === other.getFullYear() &&
    date.getMonth() === other.getMonth() &&
    date.getDate() === other.getDate()
  );
}

export function isUuid(text) {
  return UUID_PATTERN.test(text);
}

// UUID v7 ids start with a 48-bit millisecond timestamp, so jobs created within about a minute
// of each other share their first 8 hex digits. The last 8 are random and tell rows apart.
export function shortId(id) {
  if (typeof id !== "string" || id.length <= 8) {
    return String(id ?? PLACEHOLDER);
  }
  return `…${id.slice(-8)}`;
}

export function parseTime(iso) {
  if (typeof iso !== "string" || iso === "") {
    return null;
  }
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? null : date;
}

// Formats a time for a table cell: the clock time for today, the day and minute otherwise.
export function formatShortTime(iso, now = new Date()) {
  const date = parseTime(iso);
  if (date === null) {
    return PLACEHOLDER;
  }
  return isSameDay(date, now) ? clockFormat.format(date) : dayAndClockFormat.format(date);
}

// Formats an event time to the millisecond, with the day only when it is not today.
export function formatPreciseTime(iso, now = new Date()) {
  const date = parseTime(iso);
  if (date === null) {
    return PLACEHOLDER;
  }
  const clock = `${clockFormat.format(date)}.${String(date.getMilliseconds()).padStart(3, "0")}`;
  return isSameDay(date, now) ? clock : `${dayFormat.format(date)}, ${clock}`;
}

// Formats a time to the millisecond with its time zone. The year appears only when it is
// not the current one.
export function formatFullTime(iso, now = new Date()) {
  const date = parseTime(iso);
  if (date === null) {
    return PLACEHOLDER;
  }
  return date.getFullYear() === now.getFullYear() ? fullFormat.format(date) : fullFormatWithYear.format(date);
}

export function formatDuration(milliseconds) {
  if (typeof milliseconds !== "number" || !Number.isFinite(milliseconds) || milliseconds < 0) {
    return PLACEHOLDER;
  }
  if (milliseconds < 1000) {
    return `${Math.round(milliseconds)} ms`;
  }
  if (milliseconds < 60_000) {
    return `${(milliseconds / 1000).toFixed(1)} s`;
  }
  const totalSeconds = Math.round(milliseconds / 1000);
  if (totalSeconds < 3600) {
    const minutes = Math.floor(totalSeconds / 60);
    const seconds = totalSeconds % 60;
    return `${minutes} min ${String(seconds).padStart(2, "0")} s`;
  }
  const hours = Math.floor(totalSeconds / 3600);
  const minutes = Math.floor((totalSeconds % 3600) / 60);
  return `${hours} h ${String(minutes).padStart(2, "0")} min`;
}

export function formatAttempts(attempt, maxAttempts) {
  const used = Number.isInteger(attempt) ? attempt : "?";
  const allowed = Number.isInteger(maxAttempts) ? maxAttempts : "?";
  return `${used}/${allowed}`;
}

export function formatOptional(value) {
  return value === null || value === undefined || value === "" ? PLACEHOLDER : String(value);
}

export function formatSeconds(value) {
  return Number.isFinite(value) ? `${value} s` : PLACEHOLDER;
}

export function formatJson(value) {
  if (value === undefined || value === null) {
    return "null";
  }
  return JSON.stringify(value, null, 2);
}

export function formatCount(value) {
  return Number.isFinite(value) ? value.toLocaleString() : PLACEHOLDER;
}

export function formatRate(value) {
  if (!Number.isFinite(value)) {
    return PLACEHOLDER;
  }
  return value < 10 ? value.toFixed(2) : value.toFixed(1);
}
