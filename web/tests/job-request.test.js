import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  buildJobRequest,
  formFieldForApiField,
  formatLocalDateTime,
  parseInteger,
  parseLocalDateTime,
  parsePayload,
  presetFormValues,
} from "../job-request.js";

const NOW_MS = Date.parse("2026-12-04T20:15:00.000Z");

function formValues(overrides = {}) {
  return {
    type: "REPORT_GENERATION",
    payload: "{}",
    scheduleMode: "now",
    scheduleAt: "",
    delaySeconds: "",
    maxRetries: "",
    backoffSeconds: "",
    queue: "",
    priority: "",
    timeoutSeconds: "",
    ...overrides,
  };
}

describe("presetFormValues", () => {
  it("fills the report generation sample", () => {
    const values = presetFormValues("REPORT_GENERATION");
    assert.equal(values.type, "REPORT_GENERATION");
    assert.deepEqual(JSON.parse(values.payload), { userId: 123, format: "PDF" });
    assert.equal(values.scheduleMode, "now");
    assert.equal(values.maxRetries, "3");
    assert.equal(values.backoffSeconds, "10");
  });

  it("schedules the data sync sample 5 s ahead", () => {
    const values = presetFormValues("DATA_SYNC");
    assert.deepEqual(JSON.parse(values.payload), { source: "S3", target: "BigQuery" });
    assert.equal(values.scheduleMode, "delay");
    assert.equal(values.delaySeconds, "5");
    assert.equal(values.maxRetries, "");
  });

  it("fills the always-fail sample", () => {
    const values = presetFormValues("ALWAYS_FAIL");
    assert.deepEqual(JSON.parse(values.payload), { debug: true });
    assert.equal(values.maxRetries, "5");
    assert.equal(values.backoffSeconds, "2");
  });

  it("rejects an unknown preset", () => {
    assert.throws(() => presetFormValues("NOPE"), /Unknown preset NOPE/);
  });
});

describe("parsePayload", () => {
  it("accepts any JSON value", () => {
    assert.deepEqual(parsePayload('{"a": [1, 2]}'), { value: { a: [1, 2] } });
    assert.deepEqual(parsePayload("42"), { value: 42 });
    assert.deepEqual(parsePayload("null"), { value: null });
  });

  it("rejects invalid and empty text", () => {
    assert.match(parsePayload("{a: 1}").error, /not valid JSON/);
    assert.match(parsePayload("   ").error, /Enter a JSON value/);
  });
});

describe("parseLocalDateTime", () => {
  it("reads minutes, seconds and milliseconds", () => {
    const date = parseLocalDateTime("2026-12-04T21:30:05.25");
    assert.equal(date.getFullYear(), 2026);
    assert.equal(date.getMonth(), 11);
    assert.equal(date.getDate(), 4);
    assert.equal(date.getHours(), 21);
    assert.equal(date.getMinutes(), 30);
    assert.equal(date.getSeconds(), 5);
    assert.equal(date.getMilliseconds(), 250);
    assert.notEqual(parseLocalDateTime("2026-12-04T21:30"), null);
  });

  it("rejects impossible dates and other formats", () => {
    assert.equal(parseLocalDateTime("2026-02-30T10:00"), null);
    assert.equal(parseLocalDateTime("2026-12-04 21:30"), null);
    assert.equal(parseLocalDateTime(""), null);
  });

  it("round-trips formatLocalDateTime", () => {
    const date = new Date(2026, 0, 2, 3, 4, 5);
    assert.equal(formatLocalDateTime(date), "2026-01-02T03:04:05");
    assert.equal(parseLocalDateTime(formatLocalDateTime(date)).getTime(), date.getTime());
  });
});

describe("parseInteger", () => {
  it("returns null for an empty field", () => {
    assert.deepEqual(parseInteger("  ", { label: "X" }), { value: null });
  });

  it("checks whole numbers and the minimum", () => {
    assert.deepEqual(parseInteger("7", { label: "X", min: 0 }), { value: 7 });
    assert.deepEqual(parseInteger("-3", { label: "X" }), { value: -3 });
    assert.match(parseInteger("1.5", { label: "X" }).error, /whole number/);
    assert.match(parseInteger("-1", { label: "X", min: 0 }).error, /at least 0/);
    assert.match(parseInteger("99999999999999999999", { label: "X" }).error, /too large/);
  });
});

describe("buildJobRequest", () => {
  it("sends only type and payload for a plain job", () => {
    const { request, errors } = buildJobRequest(formValues({ payload: '{"userId": 1}' }), NOW_MS);
    assert.deepEqual(errors, []);
    assert.deepEqual(request, { type: "REPORT_GENERATION", payload: { userId: 1 } });
  });

  it("sends every optional field", () => {
    const values = formValues({
      maxRetries: "3",
      backoffSeconds: "10",
      queue: " reports ",
      priority: "-2",
      timeoutSeconds: "30",
    });
    const { request, errors } = buildJobRequest(values, NOW_MS);
    assert.deepEqual(errors, []);
    assert.deepEqual(request.retryPolicy, { maxRetries: 3, backoffSeconds: 10 });
    assert.equal(request.queue, "reports");
    assert.equal(request.priority, -2);
    assert.equal(request.timeoutSeconds, 30);
  });

  it("turns a delay into a UTC scheduleAt", () => {
    const { request } = buildJobRequest(formValues({ scheduleMode: "delay", delaySeconds: "5" }), NOW_MS);
    assert.equal(request.scheduleAt, "2026-12-04T20:15:05.000Z");
  });

  it("turns a local date and time into UTC", () => {
    const local = "2026-12-04T21:30:00";
    const { request } = buildJobRequest(formValues({ scheduleMode: "at", scheduleAt: local }), NOW_MS);
    assert.equal(request.scheduleAt, parseLocalDateTime(local).toISOString());
    assert.match(request.scheduleAt, /Z$/);
  });

  it("ignores schedule inputs of other modes", () => {
    const values = formValues({ scheduleMode: "now", scheduleAt: "2026-12-04T21:30", delaySeconds: "9" });
    assert.equal(buildJobRequest(values, NOW_MS).request.scheduleAt, undefined);
  });

  it("lists every invalid field", () => {
    const values = formValues({
      type: "",
      payload: "{",
      scheduleMode: "delay",
      delaySeconds: "",
      maxRetries: "-1",
      timeoutSeconds: "0",
    });
    const fields = buildJobRequest(values, NOW_MS).errors.map((error) => error.field);
    assert.deepEqual(fields, ["type", "payload", "delaySeconds", "maxRetries", "timeoutSeconds"]);
  });

  it("requires a date in at mode", () => {
    const { errors } = buildJobRequest(formValues({ scheduleMode: "at" }), NOW_MS);
    assert.deepEqual(errors.map((error) => error.field), ["scheduleAt"]);
  });
});

describe("formFieldForApiField", () => {
  it("maps nested retry policy fields", () => {
    assert.equal(formFieldForApiField("retryPolicy.maxRetries", "now"), "maxRetries");
    assert.equal(formFieldForApiField("retryPolicy.backoffSeconds", "now"), "backoffSeconds");
  });

  it("maps scheduleAt to the input of the current mode", () => {
    assert.equal(formFieldForApiField("scheduleAt", "at"), "scheduleAt");
    assert.equal(formFieldForApiField("scheduleAt", "delay"), "delaySeconds");
  });

  it("maps payload paths to the payload field", () => {
    assert.equal(formFieldForApiField("payload.userId", "now"), "payload");
  });

  it("returns null for unknown or missing fields", () => {
    assert.equal(formFieldForApiField(null, "now"), null);
    assert.equal(formFieldForApiField("somethingElse", "now"), null);
  });
});
