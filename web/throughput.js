// Turns the `throughput` part of GET /stats into chart series. Pure functions, no DOM.

import { formatCount, formatRate } from "./format.js";

export const WINDOW_SECONDS = 15 * 60;
// The chart draws buckets of at least this many seconds: 1 s buckets over 15 minutes
// give 900 points, mostly zero spikes, which are hard to read.
export const MIN_DISPLAY_BUCKET_SECONDS = 10;
const DEFAULT_BUCKET_SECONDS = 1;

function addBucket(totalsByStart, bucket, displayBucketSeconds) {
  const atMs = Date.parse(bucket.at);
  if (Number.isNaN(atMs)) {
    return;
  }
  const start = Math.floor(atMs / 1000 / displayBucketSeconds) * displayBucketSeconds;
  const totals = totalsByStart.get(start) ?? { completed: 0, failed: 0 };
  totals.completed += Number.isFinite(bucket.completed) ? bucket.completed : 0;
  totals.failed += Number.isFinite(bucket.failed) ? bucket.failed : 0;
  totalsByStart.set(start, totals);
}

// Returns { bucketSeconds, times, completed, failed, totalCompleted, totalFailed }: one entry per display bucket over the
// last 15 minutes, times in Unix seconds (as uPlot expects) and rates in jobs per second.
// Server buckets are summed into display buckets of a whole multiple of the server's size,
// and buckets that the server left out count as zero. The newest bucket is still filling,
// so its rate divides by the seconds elapsed in it (at least 1) rather than by its full length.
export function buildThroughputSeries(throughput, nowMs = Date.now()) {
  const serverBucketSeconds =
    Number.isInteger(throughput?.bucketSeconds) && throughput.bucketSeconds > 0
      ? throughput.bucketSeconds
      : DEFAULT_BUCKET_SECONDS;
  const bucketSeconds = Math.ceil(MIN_DISPLAY_BUCKET_SECONDS / serverBucketSeconds) * serverBucketSeconds;

  const totalsByStart = new Map();
  for (const bucket of throughput?.buckets ?? []) {
    addBucket(totalsByStart, bucket, bucketSeconds);
  }

  // The window ends at the later of the browser clock and the newest bucket, so a browser
  // clock that runs behind the server does not hide the newest data.
  const nowSeconds = nowMs / 1000;
  const nowBucket = Math.floor(nowSeconds / bucketSeconds) * bucketSeconds;
  const newest = Math.max(nowBucket, ...totalsByStart.keys());
  const count = Math.max(1, Math.floor(WINDOW_SECONDS / bucketSeconds));
  const newestElapsed = Math.min(bucketSeconds, Math.max(1, nowSeconds - newest));

  const series = { bucketSeconds, times: [], completed: [], failed: [], totalCompleted: 0, totalFailed: 0 };
  for (let index = count - 1; index >= 0; index -= 1) {
    const start = newest - index * bucketSeconds;
    const totals = totalsByStart.get(start) ?? { completed: 0, failed: 0 };
    const seconds = index === 0 ? newestElapsed : bucketSeconds;
    series.times.push(start);
    series.completed.push(totals.completed / seconds);
    series.failed.push(totals.failed / seconds);
    series.totalCompleted += totals.completed;
    series.totalFailed += totals.failed;
  }
  return series;
}

// Describes the series in one sentence for screen readers and as the chart caption.
// The newest bucket is still filling, so the recent rate uses the complete buckets of the
// last minute before it.
export function summarizeThroughput(series) {
  // Totals are counts, not rates times bucket length: the newest bucket's rate divides by the
  // seconds elapsed in it, so multiplying it back by a full bucket would inflate the total.
  const { bucketSeconds, completed, failed, totalCompleted, totalFailed } = series;
  const recentCount = Math.max(1, Math.round(60 / bucketSeconds));
  const recentEnd = completed.length - 1;
  const recentStart = Math.max(0, recentEnd - recentCount);

  const averageRate = (rates) => {
    const window = rates.slice(recentStart, recentEnd);
    return window.length === 0 ? 0 : window.reduce((sum, rate) => sum + rate, 0) / window.length;
  };

  return (
    `Last minute: ${formatRate(averageRate(completed))} completed and ` +
    `${formatRate(averageRate(failed))} failed per second. ` +
    `Last 15 minutes: ${formatCount(totalCompleted)} completed, ` +
    `${formatCount(totalFailed)} failed.`
  );
}
