// Applies live events from GET /events to job objects. Pure functions, no DOM.

export function matchesFilters(job, filters) {
  return (
    (filters.status === "" || job.status === filters.status) &&
    (filters.type === "" || job.type === filters.type) &&
    (filters.queue === "" || job.queue === filters.queue)
  );
}

function timeMs(iso) {
  return typeof iso === "string" ? Date.parse(iso) : Number.NaN;
}

// Returns the job with the event's status, attempt and time, or null when the event is older
// than the job's updatedAt (a replayed event after a reconnect must not undo a newer state).
export function applyEventToJob(job, event) {
  if (timeMs(event.at) < timeMs(job.updatedAt)) {
    return null;
  }
  return {
    ...job,
    status: event.status ?? job.status,
    attempt: Number.isInteger(event.attempt) ? event.attempt : job.attempt,
    type: event.type ?? job.type,
    queue: event.queue ?? job.queue,
    updatedAt: event.at ?? job.updatedAt,
  };
}

// Builds a table job from a `created` event. The event has no priority or maxAttempts, so
// those stay null until GET /jobs/{id} fills them in, unless the event data carries them.
export function jobFromCreatedEvent(event) {
  const data = event.data !== null && typeof event.data === "object" ? event.data : {};
  return {
    id: event.jobId,
    type: event.type,
    queue: event.queue,
    priority: Number.isInteger(data.priority) ? data.priority : null,
    status: event.status,
    attempt: Number.isInteger(event.attempt) ? event.attempt : 0,
    maxAttempts: Number.isInteger(data.maxAttempts) ? data.maxAttempts : null,
    createdAt: event.at,
    updatedAt: event.at,
  };
}

// Combines a job fetched from the server with the table's copy, which live events may have
// moved past the fetched state while the request was in flight.
export function mergeFetchedJob(current, fetched) {
  if (timeMs(current.updatedAt) > timeMs(fetched.updatedAt)) {
    return {
      ...fetched,
      status: current.status,
      attempt: current.attempt,
      updatedAt: current.updatedAt,
    };
  }
  return { ...fetched };
}
