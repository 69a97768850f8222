// The job detail panel: every field, attempts, the event timeline and the job actions.

import { cloneTemplate, requireElement, setStatusBadge, setTime } from "./dom.js";
import {
  formatAttempts,
  formatDuration,
  formatFullTime,
  formatJson,
  formatOptional,
  formatPreciseTime,
  formatSeconds,
  shortId,
} from "./format.js";
import { JOB_ACTIONS, isActionAllowed } from "./job-actions.js";

// Live events for the open job trigger a reload of the panel at most this often.
const REFRESH_DELAY_MS = 300;
const TIME_FIELDS = ["scheduleAt", "createdAt", "updatedAt", "startedAt", "finishedAt"];

function describeRetryPolicy(job) {
  if (!Number.isInteger(job.retryMaxAttempts)) {
    return "—";
  }
  const retries = job.retryMaxAttempts === 1 ? "1 retry" : `${job.retryMaxAttempts} retries`;
  return `${retries}, ${formatSeconds(job.retryBackoffSeconds)} backoff`;
}

function fillFields(container, job) {
  const values = {
    id: job.id,
    type: formatOptional(job.type),
    queue: formatOptional(job.queue),
    priority: formatOptional(job.priority),
    attempts: formatAttempts(job.attempt, job.maxAttempts),
    retryPolicy: describeRetryPolicy(job),
    timeoutSeconds: job.timeoutSeconds === null ? "None" : formatSeconds(job.timeoutSeconds),
    lastError: formatOptional(job.lastError),
  };
  for (const name of TIME_FIELDS) {
    values[name] = formatFullTime(job[name]);
  }

  container.querySelector('[data-field="lastError"]')?.classList.toggle("error-text", Boolean(job.lastError));

  for (const element of container.querySelectorAll("[data-field]")) {
    const name = element.dataset.field;
    if (name === "status") {
      setStatusBadge(element, job.status);
      continue;
    }
    element.textContent = values[name] ?? "—";
    if (TIME_FIELDS.includes(name) && job[name]) {
      element.setAttribute("title", job[name]);
    } else {
      element.removeAttribute("title");
    }
  }
}

function fillJson(element, value, emptyText) {
  const empty = value === null || value === undefined;
  element.textContent = empty ? emptyText : formatJson(value);
  element.classList.toggle("is-empty", empty);
}

function buildAttemptItem(attempt, openTracebacks) {
  const item = cloneTemplate("attempt-item");
  const part = (name) => requireElement(item, `[data-attempt="${name}"]`);

  item.dataset.attempt = String(attempt.attempt);
  part("attempt").textContent = `Attempt ${attempt.attempt}`;
  setStatusBadge(part("outcome"), attempt.outcome);
  part("node").textContent = attempt.node ? `on ${attempt.node}` : "";
  part("startedAt").textContent = formatFullTime(attempt.startedAt);
  part("finishedAt").textContent = formatFullTime(attempt.finishedAt);
  part("duration").textContent = formatDuration(attempt.durationMs);

  const error = part("error");
  error.textContent = attempt.error ?? "";
  error.hidden = !attempt.error;

  const details = part("tracebackDetails");
  part("traceback").textContent = attempt.traceback ?? "";
  details.hidden = !attempt.traceback;
  details.open = openTracebacks.has(attempt.attempt);
  return item;
}

function buildEventItem(event) {
  const item = cloneTemplate("event-item");
  const part = (name) => requireElement(item, `[data-event="${name}"]`);

  setTime(part("at"), event.at, formatPreciseTime(event.at));
  part("kind").textContent = event.kind;
  part("kind").dataset.kind = event.kind;
  const attemptText = Number.isInteger(event.attempt) ? `, attempt ${event.attempt}` : "";
  part("status").textContent = `${event.status ?? ""}${attemptText}`;

  const data = part("data");
  const hasData = event.data !== null && event.data !== undefined;
  data.textContent = hasData ? JSON.stringify(event.data) : "";
  data.hidden = !hasData;
  return item;
}

function buildEmptyItem(text) {
  const item = document.createElement("li");
  item.className = "empty-item";
  item.textContent = text;
  return item;
}

export function createJobDetail({ panel, layout, api, askToConfirm, notify, onJobChanged, onJobDeleted, onClose }) {
  const heading = requireElement(panel, "#detail-heading");
  const title = requireElement(panel, "[data-detail-title]");
  const message = requireElement(panel, "[data-detail-message]");
  const fields = requireElement(panel, "[data-detail-fields]");
  const payload = requireElement(panel, "[data-detail-payload]");
  const result = requireElement(panel, "[data-detail-result]");
  const attemptList = requireElement(panel, "[data-detail-attempts]");
  const eventList = requireElement(panel, "[data-detail-events]");
  const actionButtons = [...panel.querySelectorAll("[data-job-action]")];

  let current = null;
  let loadToken = 0;
  let refreshTimer = null;
  let actionRunning = false;

  function showMessage(text, tone = "error") {
    message.textContent = text;
    message.dataset.tone = tone;
    message.hidden = text === "";
  }

  function updateActions() {
    const status = current?.job?.status ?? null;
    const usable = current !== null && current.job !== null && !current.deleted;
    for (const button of actionButtons) {
      button.hidden = !usable || !isActionAllowed(button.dataset.jobAction, status);
      button.disabled = actionRunning;
    }
  }

  function openTracebackAttempts() {
    const open = new Set();
    for (const item of attemptList.querySelectorAll("[data-attempt]")) {
      const details = item.querySelector("details");
      if (details?.open) {
        open.add(Number(item.dataset.attempt));
      }
    }
    return open;
  }

  // Returns the attempt number whose traceback summary has focus, so a re-render can restore it.
  function focusedAttempt() {
    const active = document.activeElement;
    if (active === null || !attemptList.contains(active)) {
      return null;
    }
    return Number(active.closest("[data-attempt]")?.dataset.attempt);
  }

  function renderAttempts(attempts) {
    const openTracebacks = openTracebackAttempts();
    const focused = focusedAttempt();
    if (!Array.isArray(attempts) || attempts.length === 0) {
      attemptList.replaceChildren(buildEmptyItem("No attempts yet."));
      return;
    }
    attemptList.replaceChildren(...attempts.map((attempt) => buildAttemptItem(attempt, openTracebacks)));
    if (focused !== null) {
      attemptList.querySelector(`[data-attempt="${focused}"] summary`)?.focus();
    }
  }

  function renderEvents(events) {
    if (!Array.isArray(events) || events.length === 0) {
      eventList.replaceChildren(buildEmptyItem("No events recorded."));
      return;
    }
    eventList.replaceChildren(...events.map(buildEventItem));
  }

  function render(job, events) {
    current.job = job;
    panel.dataset.jobStatus = job.status;
    fillFields(fields, job);
    fillJson(payload, job.payload, "No payload.");
    fillJson(result, job.result, "No result yet.");
    renderAttempts(job.attempts);
    renderEvents(events);
    updateActions();
  }

  function clearContent() {
    for (const element of fields.querySelectorAll("[data-field]")) {
      element.textContent = "";
    }
    payload.textContent = "";
    result.textContent = "";
    attemptList.replaceChildren();
    eventList.replaceChildren();
    delete panel.dataset.jobStatus;
  }

  async function load() {
    if (current === null) {
      return;
    }
    loadToken += 1;
    const token = loadToken;
    const { id } = current;
    try {
      const [job, eventPage] = await Promise.all([api.fetchJob(id), api.fetchJobEvents(id)]);
      if (token !== loadToken || current?.id !== id) {
        return;
      }
      // Only the loading notice goes away here. An action error stays until the next action.
      if (!current.deleted && message.dataset.tone === "info") {
        showMessage("");
      }
      render(job, eventPage.events);
    } catch (error) {
      if (token !== loadToken || current?.id !== id) {
        return;
      }
      if (error.status === 404) {
        current.deleted = true;
        showMessage(`No job with id ${id} exists. It may have been deleted.`);
      } else {
        showMessage(`Could not load job ${id}: ${error.message}`);
      }
      updateActions();
    }
  }

  function scheduleRefresh() {
    if (refreshTimer !== null) {
      return;
    }
    refreshTimer = setTimeout(() => {
      refreshTimer = null;
      load();
    }, REFRESH_DELAY_MS);
  }

  function open(id, opener = null) {
    clearTimeout(refreshTimer);
    refreshTimer = null;
    current = { id, job: null, opener, deleted: false };

    clearContent();
    title.textContent = shortId(id);
    title.setAttribute("title", id);
    showMessage("Loading…", "info");
    updateActions();
    panel.hidden = false;
    layout.classList.add("has-detail");
    heading.focus();
    return load();
  }

  function close() {
    if (current === null) {
      return;
    }
    const { opener } = current;
    current = null;
    loadToken += 1;
    clearTimeout(refreshTimer);
    refreshTimer = null;
    panel.hidden = true;
    layout.classList.remove("has-detail");
    onClose();
    if (opener !== null && opener.isConnected) {
      opener.focus();
    } else {
      document.getElementById("jobs-heading")?.focus();
    }
  }

  function markDeleted() {
    current.deleted = true;
    showMessage("This job was deleted.", "info");
    updateActions();
  }

  function handleEvent(event) {
    if (current === null || event.jobId !== current.id) {
      return;
    }
    if (event.kind === "deleted") {
      markDeleted();
      return;
    }
    scheduleRefresh();
  }

  async function runAction(action) {
    const rule = JOB_ACTIONS[action];
    if (current === null || rule === undefined) {
      return;
    }
    const { id } = current;
    const confirmed = await askToConfirm({
      title: rule.title,
      message: rule.describe(id),
      confirmLabel: rule.confirmLabel,
    });
    if (!confirmed || current?.id !== id) {
      return;
    }

    actionRunning = true;
    showMessage("");
    updateActions();
    try {
      if (action === "delete") {
        await api.deleteJob(id);
        notify(rule.done(shortId(id)));
        onJobDeleted(id);
        close();
        return;
      }
      const job = action === "retry" ? await api.retryJob(id) : await api.cancelJob(id);
      notify(rule.done(shortId(id)));
      onJobChanged(job);
      await load();
    } catch (error) {
      const reason = error.status === 409 ? "The server rejected it" : "It failed";
      showMessage(`Could not ${action} job ${shortId(id)}. ${reason}: ${error.message}`);
      // The job probably changed state meanwhile, so show the state that the server has now.
      load();
    } finally {
      actionRunning = false;
      updateActions();
      if (current !== null && (document.activeElement === null || document.activeElement === document.body)) {
        heading.focus();
      }
    }
  }

  panel.addEventListener("click", (event) => {
    const button = event.target.closest("[data-job-action]");
    if (button !== null && !button.disabled) {
      runAction(button.dataset.jobAction);
    }
  });

  panel.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !event.defaultPrevented) {
      close();
    }
  });

  return {
    open,
    close,
    handleEvent,
    reload: load,
    currentId: () => current?.id ?? null,
  };
}
