// The job table: one page of GET /jobs, newest first, kept current by live events.

import { cloneTemplate, requireElement, setStatusBadge, setTime } from "./dom.js";
import { formatAttempts, formatOptional, formatShortTime, shortId } from "./format.js";
import { applyEventToJob, jobFromCreatedEvent, matchesFilters, mergeFetchedJob } from "./job-events.js";

export const PAGE_SIZE = 50;
const FETCH_CONCURRENCY = 2;
// Past this many rows waiting for GET /jobs/{id}, one reload of the page after
// BURST_RELOAD_DELAY_MS costs the server less than a request per new job.
const MAX_QUEUED_FETCHES = 10;
const BURST_RELOAD_DELAY_MS = 1000;
// Events that arrive while a page loads are kept and applied to the new page. Past this
// many the page is loaded again, because it is cheaper than replaying them.
const MAX_BUFFERED_EVENTS = 1000;
const HIGHLIGHT_MS = 1500;

function fillRow(row, job, filters) {
  row.dataset.jobId = job.id;
  row.dataset.status = job.status;

  const idButton = requireElement(row, '[data-cell="id"]');
  idButton.textContent = shortId(job.id);
  idButton.setAttribute("title", job.id);
  idButton.setAttribute("aria-label", `Open job ${job.id}`);
  idButton.dataset.jobId = job.id;

  requireElement(row, '[data-cell="type"]').textContent = formatOptional(job.type);
  requireElement(row, '[data-cell="queue"]').textContent = formatOptional(job.queue);
  requireElement(row, '[data-cell="priority"]').textContent = formatOptional(job.priority);
  setStatusBadge(requireElement(row, '[data-cell="status"]'), job.status);
  requireElement(row, '[data-cell="attempts"]').textContent = formatAttempts(job.attempt, job.maxAttempts);
  setTime(requireElement(row, '[data-cell="createdAt"]'), job.createdAt, formatShortTime(job.createdAt));
  setTime(requireElement(row, '[data-cell="updatedAt"]'), job.updatedAt, formatShortTime(job.updatedAt));

  // A live update can move a job out of the filtered status. It stays on the page until
  // the next load, dimmed, so rows do not vanish under the pointer.
  const outside = !matchesFilters(job, filters);
  row.classList.toggle("is-outside-filter", outside);
  if (outside) {
    row.setAttribute("title", "This job no longer matches the filters.");
  } else {
    row.removeAttribute("title");
  }
}

function buildMessageRow(text, { isError = false, retryLabel = null } = {}) {
  const row = document.createElement("tr");
  row.className = "table-message-row";
  row.dataset.tableMessage = "";
  const cell = document.createElement("td");
  cell.colSpan = 8;
  cell.textContent = text;
  if (isError) {
    cell.classList.add("error-text");
  }
  if (retryLabel !== null) {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.action = "reload-jobs";
    button.textContent = retryLabel;
    cell.append(" ", button);
  }
  row.append(cell);
  return row;
}

function describeFilters(filters) {
  const parts = [];
  if (filters.status) parts.push(`status ${filters.status}`);
  if (filters.type) parts.push(`type ${filters.type}`);
  if (filters.queue) parts.push(`queue ${filters.queue}`);
  return parts.join(", ");
}

export function createJobTable({ root, fetchJobs, fetchJob, onOpenJob }) {
  const tableBody = requireElement(root, "[data-job-rows]");
  const firstPageButton = requireElement(root, '[data-action="first-page"]');
  const nextPageButton = requireElement(root, '[data-action="next-page"]');
  const pageLabel = requireElement(root, "[data-page-label]");

  const rows = new Map();
  const fetchQueue = [];
  const highlightTimers = new WeakMap();
  let activeFetches = 0;
  let burstReloadTimer = null;
  let selectedId = null;

  const state = {
    filters: { status: "", type: "", queue: "" },
    cursor: null,
    pageNumber: 1,
    nextCursor: null,
    // True once rows were prepended and the oldest trimmed: nextCursor then points past rows
    // that were never shown, so "Next page" requests a fresh first-page cursor first.
    cursorStale: false,
    loadToken: 0,
    loading: false,
    loadedOnce: false,
    bufferedEvents: [],
    bufferOverflowed: false,
  };

  function updatePagination() {
    pageLabel.textContent = `Page ${state.pageNumber}`;
    firstPageButton.disabled = state.loading || state.cursor === null;
    nextPageButton.disabled = state.loading || (state.nextCursor === null && !state.cursorStale);
  }

  function showEmptyMessage() {
    const filterText = describeFilters(state.filters);
    let text = "No jobs yet. Create one with the New job button.";
    if (filterText !== "") {
      text = `No jobs match ${filterText}.`;
    } else if (state.cursor !== null) {
      text = "This page is empty.";
    }
    tableBody.replaceChildren(buildMessageRow(text));
  }

  function removeMessageRow() {
    for (const row of tableBody.querySelectorAll("[data-table-message]")) {
      row.remove();
    }
  }

  function buildRow(job) {
    const row = cloneTemplate("job-row");
    fillRow(row, job, state.filters);
    row.classList.toggle("is-selected", job.id === selectedId);
    return row;
  }

  function renderJobs(jobs) {
    rows.clear();
    fetchQueue.length = 0;
    const newRows = jobs.map((job) => {
      const row = buildRow(job);
      rows.set(job.id, { row, job });
      return row;
    });
    if (newRows.length === 0) {
      showEmptyMessage();
    } else {
      tableBody.replaceChildren(...newRows);
    }
  }

  async function loadPage(cursor, pageNumber) {
    state.loadToken += 1;
    const token = state.loadToken;
    state.loading = true;
    state.bufferedEvents = [];
    state.bufferOverflowed = false;
    updatePagination();
    root.setAttribute("aria-busy", "true");

    try {
      const page = await fetchJobs(state.filters, cursor, PAGE_SIZE);
      if (token !== state.loadToken) {
        return;
      }
      state.cursor = cursor;
      state.pageNumber = pageNumber;
      state.nextCursor = page.nextCursor ?? null;
      state.cursorStale = false;
      state.loadedOnce = true;
      renderJobs(Array.isArray(page.jobs) ? page.jobs : []);
    } catch (error) {
      if (token !== state.loadToken) {
        return;
      }
      rows.clear();
      tableBody.replaceChildren(
        buildMessageRow(`Could not load jobs: ${error.message}`, { isError: true, retryLabel: "Try again" }),
      );
    } finally {
      if (token === state.loadToken) {
        finishLoad();
      }
    }
  }

  function finishLoad() {
    state.loading = false;
    root.removeAttribute("aria-busy");
    updatePagination();
    const buffered = state.bufferedEvents;
    const overflowed = state.bufferOverflowed;
    state.bufferedEvents = [];
    state.bufferOverflowed = false;
    if (overflowed) {
      reload();
      return;
    }
    for (const event of buffered) {
      applyEvent(event);
    }
  }

  // Marks a changed row for HIGHLIGHT_MS. A row that changes again meanwhile keeps its running
  // animation, so a busy server does not restart animations many times a second.
  function highlight(row) {
    clearTimeout(highlightTimers.get(row));
    row.classList.add("is-updated");
    highlightTimers.set(
      row,
      setTimeout(() => row.classList.remove("is-updated"), HIGHLIGHT_MS),
    );
  }

  function scheduleBurstReload() {
    fetchQueue.length = 0;
    if (burstReloadTimer !== null) {
      return;
    }
    burstReloadTimer = setTimeout(() => {
      burstReloadTimer = null;
      if (state.cursor === null) {
        reload();
      }
    }, BURST_RELOAD_DELAY_MS);
  }

  function trimToPageSize() {
    while (rows.size > PAGE_SIZE) {
      const lastRow = tableBody.lastElementChild;
      if (lastRow === null) {
        return;
      }
      rows.delete(lastRow.dataset.jobId);
      lastRow.remove();
      state.cursorStale = true;
    }
    updatePagination();
  }

  function prependJob(job) {
    removeMessageRow();
    const row = buildRow(job);
    rows.set(job.id, { row, job });
    tableBody.prepend(row);
    highlight(row);
    trimToPageSize();
  }

  function removeJob(id) {
    const entry = rows.get(id);
    if (entry === undefined) {
      return;
    }
    rows.delete(id);
    entry.row.remove();
    if (rows.size === 0) {
      showEmptyMessage();
    }
  }

  function updateRow(entry, job) {
    entry.job = job;
    fillRow(entry.row, job, state.filters);
    highlight(entry.row);
  }

  // Fetches full jobs for rows made from `created` events, FETCH_CONCURRENCY at a time.
  // Rows trimmed off the page before their turn are skipped, so the queue stays bounded.
  function pumpFetchQueue() {
    while (activeFetches < FETCH_CONCURRENCY && fetchQueue.length > 0) {
      const id = fetchQueue.shift();
      if (!rows.has(id)) {
        continue;
      }
      activeFetches += 1;
      fetchJob(id)
        .then((fetched) => {
          const entry = rows.get(id);
          if (entry !== undefined) {
            entry.job = mergeFetchedJob(entry.job, fetched);
            fillRow(entry.row, entry.job, state.filters);
          }
        })
        .catch((error) => {
          // The row keeps the fields that the event carried. A deleted job gets its own event.
          console.warn(`Could not fetch job ${id} for the table`, error);
        })
        .finally(() => {
          activeFetches -= 1;
          pumpFetchQueue();
        });
    }
  }

  function applyEvent(event) {
    if (typeof event.jobId !== "string") {
      return;
    }
    const entry = rows.get(event.jobId);
    if (event.kind === "deleted") {
      removeJob(event.jobId);
      return;
    }
    if (entry !== undefined) {
      const updated = applyEventToJob(entry.job, event);
      if (updated !== null) {
        updateRow(entry, updated);
      }
      return;
    }
    if (event.kind === "created" && state.cursor === null) {
      const job = jobFromCreatedEvent(event);
      if (matchesFilters(job, state.filters)) {
        prependJob(job);
        fetchQueue.push(job.id);
        if (fetchQueue.length > MAX_QUEUED_FETCHES) {
          scheduleBurstReload();
        } else {
          pumpFetchQueue();
        }
      }
    }
  }

  function handleEvent(event) {
    if (state.loading) {
      if (state.bufferedEvents.length < MAX_BUFFERED_EVENTS) {
        state.bufferedEvents.push(event);
      } else {
        state.bufferOverflowed = true;
      }
      return;
    }
    applyEvent(event);
  }

  // Shows a job that this browser created (the POST /jobs response), in case its live
  // event is late or live updates are paused.
  function showCreatedJob(job) {
    const entry = rows.get(job.id);
    if (entry !== undefined) {
      const merged = mergeFetchedJob(entry.job, job);
      entry.job = merged;
      fillRow(entry.row, merged, state.filters);
      return;
    }
    if (state.cursor === null && !state.loading && matchesFilters(job, state.filters)) {
      prependJob(job);
    }
  }

  function showUpdatedJob(job) {
    const entry = rows.get(job.id);
    if (entry !== undefined) {
      updateRow(entry, mergeFetchedJob(entry.job, job));
    }
  }

  async function goToNextPage() {
    let cursor = state.nextCursor;
    if (state.cursorStale) {
      try {
        const firstPage = await fetchJobs(state.filters, null, PAGE_SIZE);
        cursor = firstPage.nextCursor ?? null;
      } catch (error) {
        tableBody.replaceChildren(
          buildMessageRow(`Could not load the next page: ${error.message}`, { isError: true, retryLabel: "Try again" }),
        );
        rows.clear();
        return;
      }
    }
    if (cursor === null) {
      state.nextCursor = null;
      state.cursorStale = false;
      updatePagination();
      return;
    }
    await loadPage(cursor, state.pageNumber + 1);
  }

  function setSelected(id) {
    selectedId = id;
    for (const [jobId, entry] of rows) {
      entry.row.classList.toggle("is-selected", jobId === id);
    }
  }

  function reload() {
    return loadPage(state.cursor, state.pageNumber);
  }

  tableBody.addEventListener("click", (event) => {
    const row = event.target.closest("tr[data-job-id]");
    if (row === null || event.target.closest("a, input, select, textarea")) {
      return;
    }
    const button = requireElement(row, '[data-cell="id"]');
    onOpenJob(row.dataset.jobId, button);
  });

  return {
    setFilters(filters) {
      state.filters = { ...filters };
      return loadPage(null, 1);
    },
    reload,
    goToFirstPage: () => loadPage(null, 1),
    goToNextPage,
    handleEvent,
    showCreatedJob,
    showUpdatedJob,
    removeJob,
    setSelected,
    hasLoaded: () => state.loadedOnce,
  };
}
