-- Counts by queue and status, and finishes per second, kept by statement triggers so that
-- /stats never scans the jobs table. Triggers append signed deltas instead of updating one
-- counter row, so concurrent transactions never wait on each other's counter locks; the
-- maintenance pass folds the deltas into job_counts.

CREATE TABLE job_counts (
    queue  text   NOT NULL,
    status text   NOT NULL,
    count  bigint NOT NULL,
    PRIMARY KEY (queue, status)
);

CREATE TABLE job_count_deltas (
    queue  text   NOT NULL,
    status text   NOT NULL,
    delta  bigint NOT NULL
);

CREATE TABLE job_finishes (
    second    timestamptz NOT NULL,
    completed integer     NOT NULL,
    failed    integer     NOT NULL
);

CREATE INDEX job_finishes_second ON job_finishes (second);

CREATE FUNCTION jobd_count_inserts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_count_deltas (queue, status, delta)
    SELECT queue, status, count(*) FROM new_rows GROUP BY queue, status;
    RETURN NULL;
END
$$;

CREATE FUNCTION jobd_count_deletes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_count_deltas (queue, status, delta)
    SELECT queue, status, -count(*) FROM old_rows GROUP BY queue, status;
    RETURN NULL;
END
$$;

CREATE FUNCTION jobd_count_updates() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_count_deltas (queue, status, delta)
    SELECT queue, status, sum(delta)
    FROM (
        SELECT queue, status, -1 AS delta FROM old_rows
        UNION ALL
        SELECT queue, status, 1 AS delta FROM new_rows
    ) AS changes
    GROUP BY queue, status
    HAVING sum(delta) <> 0;

    INSERT INTO job_finishes (second, completed, failed)
    SELECT date_trunc('second', n.finished_at),
           count(*) FILTER (WHERE n.status = 'COMPLETED'),
           count(*) FILTER (WHERE n.status = 'FAILED')
    FROM new_rows AS n
    JOIN old_rows AS o ON o.id = n.id
    WHERE n.status IN ('COMPLETED', 'FAILED') AND o.status = 'RUNNING'
    GROUP BY 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_count_inserts AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION jobd_count_inserts();

CREATE TRIGGER jobs_count_deletes AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION jobd_count_deletes();

CREATE TRIGGER jobs_count_updates AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION jobd_count_updates();
