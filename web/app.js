// Entry point of the jobd dashboard. It builds the parts of the page and connects them:
// live events from GET /events reach the table, the detail panel and the statistics poller.

import * as api from "./api.js";
import { createThroughputChart } from "./chart.js";
import { createConfirmDialog } from "./confirm-dialog.js";
import { createCounters } from "./counters.js";
import { requireElement } from "./dom.js";
import { isUuid } from "./format.js";
import { createJobDetail } from "./job-detail.js";
import { createJobTable } from "./jobs-table.js";
import { createLiveConnection } from "./live.js";
import { createNewJobForm } from "./new-job-form.js";
import { createNotifier } from "./notices.js";
import { createStatsPoller } from "./stats-poller.js";

const FILTER_NAMES = ["status", "type", "queue"];
const QUEUE_FILTER_DELAY_MS = 400;
const TYPES_RETRY_MAX_MS = 30_000;

const CONNECTION_LABELS = {
  connecting: () => "Connecting…",
  live: () => "Live",
  reconnecting: (seconds) => `Reconnecting in ${seconds}s`,
  paused: () => "Paused",
};

function readFiltersFromUrl() {
  const query = new URLSearchParams(window.location.search);
  return Object.fromEntries(FILTER_NAMES.map((name) => [name, query.get(name) ?? ""]));
}

function writeUrlState(filters, openJobId) {
  const query = new URLSearchParams();
  for (const name of FILTER_NAMES) {
    if (filters[name]) {
      query.set(name, filters[name]);
    }
  }
  if (openJobId) {
    query.set("job", openJobId);
  }
  const search = query.toString();
  const url = `${window.location.pathname}${search ? `?${search}` : ""}`;
  window.history.replaceState(null, "", url);
}

function readFilterForm(form) {
  return {
    status: form.elements.namedItem("status").value,
    type: form.elements.namedItem("type").value,
    queue: form.elements.namedItem("queue").value.trim(),
  };
}

function writeFilterForm(form, filters) {
  for (const name of FILTER_NAMES) {
    const input = form.elements.namedItem(name);
    if (input instanceof HTMLSelectElement && filters[name] !== "") {
      const known = [...input.options].some((option) => option.value === filters[name]);
      if (!known) {
        input.add(new Option(filters[name], filters[name]));
      }
    }
    input.value = filters[name];
  }
}

function fillTypeSelects(types) {
  for (const select of document.querySelectorAll("select[data-type-select]")) {
    const selected = select.value;
    const placeholder = select.options[0];
    const options = types.map((type) => new Option(type, type));
    select.replaceChildren(placeholder, ...options);
    if (selected !== "" && !types.includes(selected)) {
      select.add(new Option(selected, selected));
    }
    select.value = selected;
  }
}

function showConnectionState(indicator, label, { state, seconds }) {
  indicator.dataset.connectionState = state;
  label.textContent = CONNECTION_LABELS[state](seconds);
}

function wireFilterForm(form, onChange) {
  let queueTimer = null;
  const apply = () => {
    clearTimeout(queueTimer);
    onChange(readFilterForm(form));
  };

  form.addEventListener("change", apply);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    apply();
  });
  form.addEventListener("input", (event) => {
    if (event.target.name === "queue") {
      clearTimeout(queueTimer);
      queueTimer = setTimeout(apply, QUEUE_FILTER_DELAY_MS);
    }
  });
  // The form's fields are reset after the reset event, so read them in the next task.
  form.addEventListener("reset", () => setTimeout(apply, 0));
}

function wireLookupForm(form, errorElement, openJob) {
  const input = form.elements.namedItem("id");
  const showError = (text) => {
    errorElement.textContent = text;
    input.setAttribute("aria-invalid", text === "" ? "false" : "true");
  };

  form.addEventListener("input", () => showError(""));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const id = input.value.trim();
    if (!isUuid(id)) {
      showError("Enter a full job id, for example 0193a5b2-7c1d-7e4f-8a90-1b2c3d4e5f60.");
      input.focus();
      return;
    }
    try {
      await api.fetchJob(id);
    } catch (error) {
      showError(error.status === 404 ? `No job with id ${id} exists.` : `Could not look up job ${id}: ${error.message}`);
      input.focus();
      return;
    }
    showError("");
    openJob(id, input);
  });
}

function loadTypes(notify, attempt = 0) {
  api
    .fetchTypes()
    .then((response) => fillTypeSelects(Array.isArray(response.types) ? response.types : []))
    .catch((error) => {
      const delay = Math.min(TYPES_RETRY_MAX_MS, 2000 * 2 ** attempt);
      if (attempt === 0) {
        notify(`Could not load the job types: ${error.message} Retrying in the background.`, { tone: "error" });
      }
      setTimeout(() => loadTypes(notify, attempt + 1), delay);
    });
}

function startDashboard() {
  const layout = requireElement(document, "[data-layout]");
  const filterForm = requireElement(document, "[data-filters]");
  const connectionIndicator = requireElement(document, '[data-testid="connection-state"]');
  const connectionLabel = requireElement(connectionIndicator, "[data-connection-label]");
  const liveToggle = requireElement(document, '[data-action="toggle-live"]');

  const notify = createNotifier(requireElement(document, "[data-notices]"));
  const counters = createCounters(requireElement(document, ".counters"));
  const chart = createThroughputChart(
    requireElement(document, "[data-chart]"),
    requireElement(document, "[data-chart-summary]"),
  );
  const statsPoller = createStatsPoller({
    fetchStats: api.fetchStats,
    onStats: (stats) => {
      counters.update(stats.counts ?? {});
      chart.update(stats.throughput);
    },
    onError: (error) => chart.showError(error.message),
  });
  const askToConfirm = createConfirmDialog(requireElement(document, "[data-confirm-dialog]"));

  let filters = readFiltersFromUrl();

  const table = createJobTable({
    root: requireElement(document, "section.jobs"),
    fetchJobs: api.fetchJobs,
    fetchJob: api.fetchJob,
    onOpenJob: (id, opener) => openJob(id, opener),
  });

  const detail = createJobDetail({
    panel: requireElement(document, "[data-detail-panel]"),
    layout,
    api,
    askToConfirm,
    notify,
    onJobChanged: (job) => table.showUpdatedJob(job),
    onJobDeleted: (id) => table.removeJob(id),
    onClose: () => {
      table.setSelected(null);
      writeUrlState(filters, null);
    },
  });

  function openJob(id, opener = null) {
    table.setSelected(id);
    writeUrlState(filters, id);
    detail.open(id, opener);
  }

  const newJobForm = createNewJobForm({
    dialog: requireElement(document, "[data-new-job-dialog]"),
    createJob: api.createJob,
    notify,
    onCreated: (job) => table.showCreatedJob(job),
    onOpenJob: (id) => openJob(id),
  });

  function reloadAll() {
    table.reload();
    statsPoller.requestRefresh();
    if (detail.currentId() !== null) {
      detail.reload();
    }
  }

  const live = createLiveConnection({
    onJobEvent: (event) => {
      table.handleEvent(event);
      detail.handleEvent(event);
      statsPoller.requestRefresh();
    },
    onResync: (reason) => {
      console.info(`The server asked for a reload (${reason}).`);
      reloadAll();
    },
    onOpen: ({ first, replaying }) => {
      // The first open may come after the first page loaded, and a reopen without an event
      // id cannot replay what it missed. Either way the page may lack some events.
      if (first ? table.hasLoaded() : !replaying) {
        reloadAll();
      }
    },
    onStateChange: (change) => showConnectionState(connectionIndicator, connectionLabel, change),
  });

  function toggleLive() {
    if (live.isPaused()) {
      live.resume();
      statsPoller.start();
      liveToggle.textContent = "Pause live updates";
      liveToggle.setAttribute("aria-pressed", "false");
    } else {
      live.pause();
      statsPoller.stop();
      liveToggle.textContent = "Resume live updates";
      liveToggle.setAttribute("aria-pressed", "true");
    }
  }

  const actions = {
    "toggle-live": toggleLive,
    "open-new-job": () => newJobForm.open(),
    "close-new-job": () => newJobForm.close(),
    "close-detail": () => detail.close(),
    "first-page": () => table.goToFirstPage(),
    "next-page": () => table.goToNextPage(),
    "reload-jobs": () => table.reload(),
  };
  document.addEventListener("click", (event) => {
    const target = event.target.closest("[data-action]");
    const action = target === null ? undefined : actions[target.dataset.action];
    if (action !== undefined) {
      action();
    }
  });

  wireFilterForm(filterForm, (newFilters) => {
    filters = newFilters;
    writeUrlState(filters, detail.currentId());
    table.setFilters(filters);
  });
  wireLookupForm(
    requireElement(document, "[data-lookup]"),
    requireElement(document, "[data-lookup-error]"),
    openJob,
  );

  writeFilterForm(filterForm, filters);
  loadTypes(notify);
  table.setFilters(filters);
  statsPoller.start();
  live.start();

  const jobFromUrl = new URLSearchParams(window.location.search).get("job");
  if (jobFromUrl !== null && isUuid(jobFromUrl)) {
    openJob(jobFromUrl);
  }
}

startDashboard();
