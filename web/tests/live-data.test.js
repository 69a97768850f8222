import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { isActionAllowed } from "../job-actions.js";
import { applyEventToJob, jobFromCreatedEvent, matchesFilters, mergeFetchedJob } from "../job-events.js";
import { buildEventsUrl, reconnectDelayMs } from "../live.js";
import { buildThroughputSeries, summarizeThroughput } from "../throughput.js";
import { formatAttempts, formatDuration, isUuid, shortId } from "../format.js";

const JOB = {
  id: "0193a5b2-7c1d-7e4f-8a90-1b2c3d4e5f60",
  type: "DATA_SYNC",
  queue: "default",
  priority: 0,
  status: "QUEUED",
  attempt: 0,
  maxAttempts: 4,
  createdAt: "2026-12-04T20:15:03.123456Z",
  updatedAt: "2026-12-04T20:15:03.123456Z",
};

function jobEvent(overrides = {}) {
  return {
    id: 7,
    jobId: JOB.id,
    kind: "running",
    type: "DATA_SYNC",
    queue: "default",
    status: "RUNNING",
    attempt: 1,
    at: "2026-12-04T20:15:04.000001Z",
    data: null,
    ...overrides,
  };
}

describe("reconnectDelayMs", () => {
  it("doubles from 1 s and stops at 30 s", () => {
    const noJitter = () => 0.999999;
    assert.equal(reconnectDelayMs(0, noJitter), 1000);
    assert.equal(reconnectDelayMs(1, noJitter), 2000);
    assert.equal(reconnectDelayMs(4, noJitter), 16_000);
    assert.equal(reconnectDelayMs(5, noJitter), 30_000);
    assert.equal(reconnectDelayMs(50, noJitter), 30_000);
  });

  it("jitters down to half the step", () => {
    assert.equal(reconnectDelayMs(0, () => 0), 500);
    assert.equal(reconnectDelayMs(5, () => 0), 15_000);
  });
});

describe("buildEventsUrl", () => {
  it("adds lastEventId only when known", () => {
    assert.equal(buildEventsUrl(null), "/events");
    assert.equal(buildEventsUrl("42"), "/events?lastEventId=42");
  });
});

describe("applyEventToJob", () => {
  it("takes status, attempt and time from the event", () => {
    const updated = applyEventToJob(JOB, jobEvent());
    assert.equal(updated.status, "RUNNING");
    assert.equal(updated.attempt, 1);
    assert.equal(updated.updatedAt, "2026-12-04T20:15:04.000001Z");
    assert.equal(updated.maxAttempts, 4);
  });

  it("ignores an event older than the job", () => {
    assert.equal(applyEventToJob(JOB, jobEvent({ at: "2026-12-04T20:15:02Z" })), null);
  });
});

describe("jobFromCreatedEvent", () => {
  it("leaves unknown fields null", () => {
    const job = jobFromCreatedEvent(jobEvent({ kind: "created", status: "QUEUED", attempt: 0 }));
    assert.equal(job.id, JOB.id);
    assert.equal(job.status, "QUEUED");
    assert.equal(job.priority, null);
    assert.equal(job.maxAttempts, null);
    assert.equal(job.createdAt, "2026-12-04T20:15:04.000001Z");
  });

  it("uses priority and maxAttempts from event data", () => {
    const job = jobFromCreatedEvent(jobEvent({ kind: "created", data: { priority: 5, maxAttempts: 2 } }));
    assert.equal(job.priority, 5);
    assert.equal(job.maxAttempts, 2);
  });
});

describe("mergeFetchedJob", () => {
  it("keeps a newer live state over the fetched one", () => {
    const live = { ...JOB, status: "COMPLETED", attempt: 1, updatedAt: "2026-12-04T20:15:09Z" };
    const merged = mergeFetchedJob(live, { ...JOB, priority: 3 });
    assert.equal(merged.status, "COMPLETED");
    assert.equal(merged.priority, 3);
  });

  it("takes the fetched job when it is newer", () => {
    const fetched = { ...JOB, status: "FAILED", updatedAt: "2026-12-04T20:16:00Z" };
    assert.equal(mergeFetchedJob(JOB, fetched).status, "FAILED");
  });
});

describe("matchesFilters", () => {
  it("treats empty filters as any", () => {
    assert.equal(matchesFilters(JOB, { status: "", type: "", queue: "" }), true);
    assert.equal(matchesFilters(JOB, { status: "QUEUED", type: "DATA_SYNC", queue: "default" }), true);
    assert.equal(matchesFilters(JOB, { status: "FAILED", type: "", queue: "" }), false);
    assert.equal(matchesFilters(JOB, { status: "", type: "", queue: "reports" }), false);
  });
});

describe("isActionAllowed", () => {
  const cases = [
    ["retry", "FAILED", true],
    ["retry", "CANCELLED", true],
    ["retry", "COMPLETED", false],
    ["cancel", "PENDING", true],
    ["cancel", "QUEUED", true],
    ["cancel", "RUNNING", true],
    ["cancel", "FAILED", false],
    ["delete", "COMPLETED", true],
    ["delete", "RUNNING", false],
    ["unknown", "FAILED", false],
  ];
  for (const [action, status, expected] of cases) {
    it(`${action} in ${status} is ${expected ? "allowed" : "rejected"}`, () => {
      assert.equal(isActionAllowed(action, status), expected);
    });
  }
});

describe("buildThroughputSeries", () => {
  const now = Date.parse("2026-12-04T20:15:07Z");

  it("covers 15 minutes and fills missing buckets with zero", () => {
    const throughput = {
      bucketSeconds: 10,
      buckets: [
        { at: "2026-12-04T20:14:50Z", completed: 20, failed: 5 },
        { at: "2026-12-04T20:15:00Z", completed: 10, failed: 0 },
      ],
    };
    const series = buildThroughputSeries(throughput, now);
    assert.equal(series.times.length, 90);
    assert.equal(series.times.at(-1), Date.parse("2026-12-04T20:15:00Z") / 1000);
    // 7 s of the newest bucket have passed, so its 10 jobs are 10/7 per second.
    assert.equal(series.completed.at(-1), 10 / 7);
    assert.equal(series.completed.at(-2), 2);
    assert.equal(series.failed.at(-2), 0.5);
    assert.equal(series.completed[0], 0);
  });

  it("sums 1 s server buckets into 10 s display buckets", () => {
    const buckets = [
      { at: "2026-12-04T20:14:51Z", completed: 3, failed: 1 },
      { at: "2026-12-04T20:14:52Z", completed: 2, failed: 0 },
      { at: "2026-12-04T20:14:59Z", completed: 5, failed: 1 },
    ];
    const series = buildThroughputSeries({ bucketSeconds: 1, buckets }, now);
    assert.equal(series.bucketSeconds, 10);
    assert.equal(series.times.length, 90);
    assert.equal(series.times.at(-2), Date.parse("2026-12-04T20:14:50Z") / 1000);
    assert.equal(series.completed.at(-2), 1);
    assert.equal(series.failed.at(-2), 0.2);
  });

  it("survives a missing throughput object", () => {
    const series = buildThroughputSeries(undefined, now);
    assert.equal(series.times.length, 90);
    assert.ok(series.completed.every((rate) => rate === 0));
  });

  it("summarizes the last complete minute and the totals", () => {
    const buckets = [];
    for (let second = 0; second < 120; second += 10) {
      buckets.push({ at: new Date(now - 120_000 + second * 1000).toISOString(), completed: 10, failed: 1 });
    }
    const summary = summarizeThroughput(buildThroughputSeries({ bucketSeconds: 10, buckets }, now));
    assert.match(summary, /Last minute: 1\.00 completed and 0\.10 failed per second\./);
    assert.match(summary, /Last 15 minutes: 120 completed, 12 failed\./);
  });
});

describe("format helpers", () => {
  it("shortens ids to their random tail", () => {
    assert.equal(shortId(JOB.id), "…3d4e5f60");
    assert.equal(isUuid(JOB.id), true);
    assert.equal(isUuid("3d4e5f60"), false);
  });

  it("formats attempts and durations", () => {
    assert.equal(formatAttempts(1, 4), "1/4");
    assert.equal(formatAttempts(0, null), "0/?");
    assert.equal(formatDuration(250), "250 ms");
    assert.equal(formatDuration(1500), "1.5 s");
    assert.equal(formatDuration(125_000), "2 min 05 s");
    assert.equal(formatDuration(3_720_000), "1 h 02 min");
    assert.equal(formatDuration(null), "—");
  });
});

describe("summarizeThroughput totals", () => {
  it("counts the newest, still-filling bucket once", () => {
    const now = Date.parse("2026-12-04T20:15:03Z");
    const buckets = [
      { at: "2026-12-04T20:15:00Z", completed: 4, failed: 1 },
    ];
    const summary = summarizeThroughput(buildThroughputSeries({ bucketSeconds: 1, buckets }, now));
    assert.match(summary, /Last 15 minutes: 4 completed, 1 failed\./);
  });
});
