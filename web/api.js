// HTTP client for the jobd JSON API. Every function returns parsed JSON or throws ApiError.

export class ApiError extends Error {
  constructor({ status, code, message, field = null }) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

async function requestJson(method, path, body) {
  const init = { method, headers: { Accept: "application/json" }, cache: "no-store" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }

  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new ApiError({
      status: 0,
      code: "network_error",
      message: `Could not reach the server for ${method} ${path}: ${error.message}`,
    });
  }

  const text = await response.text();
  let data = null;
  if (text !== "") {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }

  if (!response.ok) {
    throw createErrorFromResponse(method, path, response.status, data);
  }
  if (data === null && response.status !== 204) {
    throw new ApiError({
      status: response.status,
      code: "invalid_response",
      message: `The server returned no valid JSON for ${method} ${path}.`,
    });
  }
  return data;
}

function createErrorFromResponse(method, path, status, data) {
  const error = data !== null && typeof data === "object" ? data.error : null;
  if (error && typeof error === "object") {
    return new ApiError({
      status,
      code: typeof error.code === "string" ? error.code : "http_error",
      message: typeof error.message === "string" ? error.message : `${method} ${path} failed with HTTP ${status}.`,
      field: typeof error.field === "string" ? error.field : null,
    });
  }
  return new ApiError({
    status,
    code: "http_error",
    message: `${method} ${path} failed with HTTP ${status}.`,
  });
}

function jobPath(id, suffix = "") {
  return `/jobs/${encodeURIComponent(id)}${suffix}`;
}

// Requests one page of jobs, newest first. Empty filter values are left out of the query.
export function fetchJobs({ status = "", type = "", queue = "" } = {}, cursor = null, limit = 50) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries({ status, type, queue })) {
    if (value) {
      query.set(name, value);
    }
  }
  query.set("limit", String(limit));
  if (cursor) {
    query.set("cursor", cursor);
  }
  return requestJson("GET", `/jobs?${query}`);
}

export function fetchJob(id) {
  return requestJson("GET", jobPath(id));
}

export function fetchJobEvents(id) {
  return requestJson("GET", jobPath(id, "/events"));
}

export function fetchTypes() {
  return requestJson("GET", "/types");
}

export function fetchStats() {
  return requestJson("GET", "/stats");
}

export function createJob(request) {
  return requestJson("POST", "/jobs", request);
}

export function cancelJob(id) {
  return requestJson("POST", jobPath(id, "/cancel"));
}

export function retryJob(id) {
  return requestJson("POST", jobPath(id, "/retry"));
}

export function deleteJob(id) {
  return requestJson("DELETE", jobPath(id));
}
