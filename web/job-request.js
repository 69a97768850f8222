// Builds the POST /jobs request body from the "New job" form values. Pure functions, no DOM.

// Samples of the platform that jobd replaces, one per built-in job type.
export const PRESETS = {
  REPORT_GENERATION: {
    type: "REPORT_GENERATION",
    payload: { userId: 123, format: "PDF" },
    scheduleMode: "now",
    maxRetries: 3,
    backoffSeconds: 10,
  },
  DATA_SYNC: {
    type: "DATA_SYNC",
    payload: { source: "S3", target: "BigQuery" },
    scheduleMode: "delay",
    delaySeconds: 5,
  },
  ALWAYS_FAIL: {
    type: "ALWAYS_FAIL",
    payload: { debug: true },
    scheduleMode: "now",
    maxRetries: 5,
    backoffSeconds: 2,
  },
};

// Form field names, as the `name` attributes in index.html spell them.
export const FORM_FIELDS = [
  "type",
  "payload",
  "scheduleMode",
  "scheduleAt",
  "delaySeconds",
  "maxRetries",
  "backoffSeconds",
  "queue",
  "priority",
  "timeoutSeconds",
];

const EMPTY_FORM = {
  type: "",
  payload: "{}",
  scheduleMode: "now",
  scheduleAt: "",
  delaySeconds: "",
  maxRetries: "",
  backoffSeconds: "",
  queue: "",
  priority: "",
  timeoutSeconds: "",
};

const LOCAL_DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?$/;
const INTEGER = /^[+-]?\d+$/;

// Returns the complete form values for a preset, with every other field at its default.
export function presetFormValues(name) {
  const preset = PRESETS[name];
  if (preset === undefined) {
    throw new Error(`Unknown preset ${name}; expected one of ${Object.keys(PRESETS).join(", ")}.`);
  }
  const values = { ...EMPTY_FORM, type: preset.type, scheduleMode: preset.scheduleMode };
  values.payload = JSON.stringify(preset.payload, null, 2);
  for (const field of ["delaySeconds", "maxRetries", "backoffSeconds"]) {
    if (preset[field] !== undefined) {
      values[field] = String(preset[field]);
    }
  }
  return values;
}

export function parsePayload(text) {
  if (text.trim() === "") {
    return { error: "Enter a JSON value, for example {}." };
  }
  try {
    return { value: JSON.parse(text) };
  } catch (error) {
    return { error: `The payload is not valid JSON: ${error.message}` };
  }
}

// Parses the value of an <input type="datetime-local"> as a time in the browser's time zone.
export function parseLocalDateTime(text) {
  const match = LOCAL_DATE_TIME.exec(text);
  if (match === null) {
    return null;
  }
  const [year, month, day, hour, minute, second = "0", fraction = "0"] = match.slice(1);
  const date = new Date(
    Number(year),
    Number(month) - 1,
    Number(day),
    Number(hour),
    Number(minute),
    Number(second),
    Number(fraction.padEnd(3, "0")),
  );
  // The Date constructor rolls invalid parts over (February 30 becomes March 2), so compare back.
  const unchanged =
    date.getFullYear() === Number(year) &&
    date.getMonth() === Number(month) - 1 &&
    date.getDate() === Number(day) &&
    date.getHours() === Number(hour) &&
    date.getMinutes() === Number(minute);
  return unchanged ? date : null;
}

// Formats a Date as the value of an <input type="datetime-local">, in the browser's time zone,
// to the second: "2026-12-04T21:30:05".
export function formatLocalDateTime(date) {
  const pad = (number) => String(number).padStart(2, "0");
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`
  );
}

// Parses an optional integer field. An empty field returns { value: null }.
export function parseInteger(text, { label, min = null }) {
  const trimmed = String(text ?? "").trim();
  if (trimmed === "") {
    return { value: null };
  }
  if (!INTEGER.test(trimmed)) {
    return { error: `${label} must be a whole number.` };
  }
  const value = Number(trimmed);
  if (!Number.isSafeInteger(value)) {
    return { error: `${label} is too large.` };
  }
  if (min !== null && value < min) {
    return { error: `${label} must be at least ${min}.` };
  }
  return { value };
}

function resolveScheduleAt(values, nowMs, errors) {
  if (values.scheduleMode === "at") {
    if (values.scheduleAt === "") {
      errors.push({ field: "scheduleAt", message: "Choose the date and time to run the job." });
      return null;
    }
    const date = parseLocalDateTime(values.scheduleAt);
    if (date === null) {
      errors.push({ field: "scheduleAt", message: `${values.scheduleAt} is not a valid date and time.` });
      return null;
    }
    return date.toISOString();
  }

  if (values.scheduleMode === "delay") {
    const delay = parseInteger(values.delaySeconds, { label: "The delay", min: 0 });
    if (delay.error) {
      errors.push({ field: "delaySeconds", message: delay.error });
      return null;
    }
    if (delay.value === null) {
      errors.push({ field: "delaySeconds", message: "Enter the delay in seconds." });
      return null;
    }
    return new Date(nowMs + delay.value * 1000).toISOString();
  }

  return null;
}

// Returns { request, errors }. errors lists { field, message } by form field name and is
// empty when the request can be sent. scheduleAt is sent in UTC, for example
// "2026-12-04T20:15:03.000Z".
export function buildJobRequest(values, nowMs = Date.now()) {
  const errors = [];
  const request = {};

  if (values.type === "") {
    errors.push({ field: "type", message: "Choose a job type." });
  } else {
    request.type = values.type;
  }

  const payload = parsePayload(values.payload);
  if (payload.error) {
    errors.push({ field: "payload", message: payload.error });
  } else {
    request.payload = payload.value;
  }

  const scheduleAt = resolveScheduleAt(values, nowMs, errors);
  if (scheduleAt !== null) {
    request.scheduleAt = scheduleAt;
  }

  const integerFields = [
    { field: "maxRetries", label: "Max retries", min: 0 },
    { field: "backoffSeconds", label: "Backoff", min: 0 },
    { field: "priority", label: "Priority", min: null },
    { field: "timeoutSeconds", label: "Timeout", min: 1 },
  ];
  const numbers = {};
  for (const { field, label, min } of integerFields) {
    const parsed = parseInteger(values[field], { label, min });
    if (parsed.error) {
      errors.push({ field, message: parsed.error });
    } else {
      numbers[field] = parsed.value;
    }
  }

  const retryPolicy = {};
  if (numbers.maxRetries !== null && numbers.maxRetries !== undefined) {
    retryPolicy.maxRetries = numbers.maxRetries;
  }
  if (numbers.backoffSeconds !== null && numbers.backoffSeconds !== undefined) {
    retryPolicy.backoffSeconds = numbers.backoffSeconds;
  }
  if (Object.keys(retryPolicy).length > 0) {
    request.retryPolicy = retryPolicy;
  }

  const queue = values.queue.trim();
  if (queue !== "") {
    request.queue = queue;
  }
  if (numbers.priority !== null && numbers.priority !== undefined) {
    request.priority = numbers.priority;
  }
  if (numbers.timeoutSeconds !== null && numbers.timeoutSeconds !== undefined) {
    request.timeoutSeconds = numbers.timeoutSeconds;
  }

  return { request, errors };
}

const API_FIELD_TO_FORM_FIELD = {
  type: "type",
  payload: "payload",
  "retryPolicy.maxRetries": "maxRetries",
  "retryPolicy.backoffSeconds": "backoffSeconds",
  retryPolicy: "maxRetries",
  queue: "queue",
  priority: "priority",
  timeoutSeconds: "timeoutSeconds",
};

// Maps the `field` of a server error ("retryPolicy.maxRetries") to the form field that shows
// it, or returns null when the message belongs in the general error area.
export function formFieldForApiField(apiField, scheduleMode) {
  if (typeof apiField !== "string" || apiField === "") {
    return null;
  }
  if (apiField === "scheduleAt") {
    return scheduleMode === "delay" ? "delaySeconds" : "scheduleAt";
  }
  if (apiField.startsWith("payload")) {
    return "payload";
  }
  return API_FIELD_TO_FORM_FIELD[apiField] ?? null;
}
