-- The job table, the attempt history and the append-only event log: jobd's whole durable state.
-- PostgreSQL is the source of truth; Redis only ever holds copies of job ids.

CREATE TABLE jobs (
    id               uuid PRIMARY KEY,
    type             text        NOT NULL,
    queue            text        NOT NULL,
    priority         integer     NOT NULL DEFAULT 0,
    payload          jsonb       NOT NULL,
    status           text        NOT NULL
        CHECK (status IN ('PENDING', 'QUEUED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED')),
    -- When the job is due: the submitted scheduleAt, or the time its next retry may start.
    schedule_at      timestamptz NOT NULL,
    -- Attempts started so far; a RUNNING job is on attempt number `attempt`.
    attempt          integer     NOT NULL DEFAULT 0,
    -- Attempts made before the last manual retry: the retry rule counts only the ones after it.
    attempt_base     integer     NOT NULL DEFAULT 0,
    max_retries      integer     NOT NULL CHECK (max_retries >= 0),
    backoff_seconds  integer     NOT NULL CHECK (backoff_seconds >= 0),
    timeout_seconds  integer              CHECK (timeout_seconds > 0),
    result           jsonb,
    last_error       text,
    -- The node running the job and how long its lease lasts; both NULL unless RUNNING.
    node             text,
    lease_expires_at timestamptz,
    queued_at        timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz
);

-- Partial indexes keep the scheduler, recovery and claim paths independent of how many
-- finished jobs the table holds.
CREATE INDEX jobs_pending_due ON jobs (schedule_at) WHERE status = 'PENDING';
CREATE INDEX jobs_queued_since ON jobs (queue, queued_at) WHERE status = 'QUEUED';
CREATE INDEX jobs_running_lease ON jobs (lease_expires_at) WHERE status = 'RUNNING';

-- Listing is newest first by id (UUID v7 ids sort by creation time), with optional filters.
CREATE INDEX jobs_by_status ON jobs (status, id DESC);
CREATE INDEX jobs_by_type ON jobs (type, id DESC);
CREATE INDEX jobs_by_queue ON jobs (queue, id DESC);

CREATE TABLE job_attempts (
    job_id      uuid        NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt     integer     NOT NULL,
    node        text        NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz,
    outcome     text        NOT NULL
        CHECK (outcome IN ('RUNNING', 'COMPLETED', 'FAILED', 'TIMED_OUT', 'RESCUED', 'CANCELLED')),
    error       text,
    traceback   text,
    PRIMARY KEY (job_id, attempt)
);

-- Every state change, written in the transaction that made it. Rows outlive a deleted job so
-- that subscribers see the deletion. `tx` is the writing transaction's id: a reader takes only
-- rows whose transaction is older than every running one, so it never skips an id that an
-- uncommitted transaction drew before a committed one.
CREATE TABLE job_events (
    id      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tx      xid8        NOT NULL DEFAULT pg_current_xact_id(),
    job_id  uuid        NOT NULL,
    kind    text        NOT NULL,
    type    text        NOT NULL,
    queue   text        NOT NULL,
    status  text        NOT NULL,
    attempt integer     NOT NULL,
    data    jsonb,
    at      timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX job_events_by_job ON job_events (job_id, id);
CREATE INDEX job_events_at ON job_events (at);

-- One NOTIFY per transaction that wrote events, however many rows it wrote: PostgreSQL folds
-- identical notifications within a transaction, and the payload stays empty because readers
-- fetch the rows themselves.
CREATE FUNCTION jobd_notify_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('jobd_events', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER job_events_notify AFTER INSERT ON job_events
    FOR EACH STATEMENT EXECUTE FUNCTION jobd_notify_events();
