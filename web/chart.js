// Throughput chart: completed and failed jobs per second, drawn with the vendored uPlot.

import uPlot from "./vendor/uplot/uPlot.esm.js";
import { formatRate } from "./format.js";
import { buildThroughputSeries, summarizeThroughput } from "./throughput.js";

const CHART_HEIGHT_PX = 150;

// 24-hour clock times, matching the job table.
const axisTimeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
const legendTimeFormat = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hourCycle: "h23",
});
const MIN_CHART_WIDTH_PX = 240;

function readCssColor(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

// Formats y-axis ticks with as many decimals as the tick step needs: 0, 10, 20 or 0.25, 0.50.
function formatTickValues(splits) {
  const step = splits.length > 1 ? Math.abs(splits[1] - splits[0]) : 1;
  let decimals = 0;
  while (decimals < 3 && Math.abs(step * 10 ** decimals - Math.round(step * 10 ** decimals)) > 1e-6) {
    decimals += 1;
  }
  return splits.map((value) => value.toFixed(decimals));
}

function buildAxis(colors) {
  return {
    stroke: colors.axis,
    grid: { stroke: colors.grid, width: 1 },
    ticks: { stroke: colors.grid, width: 1 },
  };
}

function buildOptions(width) {
  const colors = {
    axis: readCssColor("--chart-axis"),
    grid: readCssColor("--chart-grid"),
    completed: readCssColor("--chart-completed"),
    completedFill: readCssColor("--chart-completed-fill"),
    failed: readCssColor("--chart-failed"),
  };
  const formatLegendValue = (plot, value) => (value === null ? "—" : formatRate(value));

  return {
    width,
    height: CHART_HEIGHT_PX,
    scales: {
      x: { time: true },
      y: { range: (plot, min, max) => [0, Math.max(0.5, max * 1.15)] },
    },
    series: [
      { label: "Time", value: (plot, seconds) => (seconds === null ? "—" : legendTimeFormat.format(seconds * 1000)) },
      {
        label: "Completed/s",
        stroke: colors.completed,
        fill: colors.completedFill,
        width: 2,
        points: { show: false },
        value: formatLegendValue,
      },
      {
        label: "Failed/s",
        stroke: colors.failed,
        width: 2,
        points: { show: false },
        value: formatLegendValue,
      },
    ],
    axes: [
      { ...buildAxis(colors), values: (plot, splits) => splits.map((seconds) => axisTimeFormat.format(seconds * 1000)) },
      { ...buildAxis(colors), size: 52, values: (plot, splits) => formatTickValues(splits) },
    ],
    legend: { show: true },
  };
}

export function createThroughputChart(container, summaryElement) {
  let plot = null;

  function measureWidth() {
    return Math.max(MIN_CHART_WIDTH_PX, Math.floor(container.clientWidth));
  }

  function update(throughput) {
    const series = buildThroughputSeries(throughput);
    const data = [series.times, series.completed, series.failed];
    if (plot === null) {
      plot = new uPlot(buildOptions(measureWidth()), data, container);
    } else {
      plot.setData(data);
    }
    summaryElement.textContent = summarizeThroughput(series);
    summaryElement.classList.remove("is-error");
  }

  function showError(message) {
    summaryElement.textContent = `Could not load throughput: ${message} The chart retries every few seconds.`;
    summaryElement.classList.add("is-error");
  }

  const resizeObserver = new ResizeObserver(() => {
    if (plot !== null) {
      plot.setSize({ width: measureWidth(), height: CHART_HEIGHT_PX });
    }
  });
  resizeObserver.observe(container);

  return { update, showError };
}
