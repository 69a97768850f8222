"""End-to-end tests of the dashboard in web/: headless Chromium drives a live node.

The node runs the demo job types plus LONG_REPORT, which sleeps for 30 s so that a job stays
RUNNING. The browser is Debian's Chromium at /usr/bin/chromium, and these tests never download
one. The screenshot test also writes docs/dashboard.png, which the README shows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import httpx
import pytest
from uuid_utils.compat import uuid7

from jobd.demo import registry as demo_registry
from jobd.handlers import JobContext, Registry

pytest.importorskip("playwright", reason="Playwright is not installed. Install the test extras: pip install -e '.[test]'")

from playwright.async_api import (  # noqa: E402
    Browser,
    ConsoleMessage,
    Dialog,
    Locator,
    Page,
    Response,
    async_playwright,
    expect,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1440, "height": 900}
SCREENSHOT = Path(__file__).parent.parent / "docs" / "dashboard.png"

# Deadlines in milliseconds for Playwright's expect. The dashboard polls GET /stats every 5 s
# and sooner after live events, but never twice within 2 s.
STATS_TIMEOUT_MS = 12_000
JOB_TIMEOUT_MS = 10_000
# The DATA_SYNC preset schedules the job 5 s ahead, and it then runs for 1 s.
DATA_SYNC_TIMEOUT_MS = 15_000
# The chart groups finishes into 10 s buckets, and a quiet dashboard polls GET /stats every 5 s.
THROUGHPUT_TIMEOUT_MS = 20_000

LONG_REPORT_SECONDS = 30

# Markup in a job's type, payload, error and event data. If the dashboard ever parsed it as
# HTML, the script or the onerror handler would set window.__xss.
XSS_MARKUP = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"Chromium not found at {CHROMIUM}. Install Debian's package: apt-get install -y chromium",
    ),
]

# Records each status that every table row shows, in order, in window.__statusHistory. A page
# reload would drop the record, so a full history also shows that the rows changed in place.
RECORD_STATUS_HISTORY = """
() => {
  const history = {};
  const body = document.querySelector("[data-job-rows]");
  const record = () => {
    for (const row of body.querySelectorAll("tr[data-job-id]")) {
      const statuses = (history[row.dataset.jobId] ??= []);
      if (statuses.at(-1) !== row.dataset.status) {
        statuses.push(row.dataset.status);
      }
    }
  };
  record();
  new MutationObserver(record).observe(body, {
    subtree: true,
    childList: true,
    attributes: true,
    attributeFilter: ["data-status"],
  });
  window.__statusHistory = history;
}
"""

# Runs before the page's own scripts, so it also records violations during the first load.
RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} blocked ${event.blockedURI}`);
});
"""


async def long_report(job: JobContext) -> dict:
    await anyio.sleep(LONG_REPORT_SECONDS)
    return {"report": f"long-report-{job.id}.pdf"}


@pytest.fixture
def registry() -> Registry:
    """The demo job types plus LONG_REPORT, in place of conftest's probe registry."""
    registry = Registry()
    for job_type in demo_registry.types:
        registry.register(job_type, demo_registry.get(job_type).handler)
    registry.register("LONG_REPORT", long_report)
    return registry


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@pytest.fixture
async def api(live_server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live_server) as client:
        yield client


class Dashboard:
    """One browser page on the dashboard, with the console errors and dialogs it produced."""

    def __init__(self, page: Page, base_url: str):
        self.page = page
        self.base_url = base_url
        self.console_errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("console", self._record_console_message)
        page.on("pageerror", lambda error: self.console_errors.append(f"uncaught error: {error}"))
        page.on("dialog", self._dismiss_dialog)

    def _record_console_message(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(f"{message.text} (at {message.location['url']})")

    async def _dismiss_dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        await dialog.dismiss()

    async def open(self) -> Response:
        """Load the dashboard, wait until it is live with the table loaded, and record statuses."""
        response = await self.page.goto(self.base_url + "/")
        await expect(self.page.get_by_test_id("connection-state")).to_have_attribute("data-connection-state", "live")
        # The first open of the event stream may reload the table. Rows created during that
        # load would be replaced, so wait until no load is running.
        await expect(self.page.locator("section.jobs")).not_to_have_attribute("aria-busy", "true")
        await expect(self.page.locator("[data-job-rows]")).not_to_contain_text("Loading jobs")
        await self.page.evaluate(RECORD_STATUS_HISTORY)
        return response

    def row(self, job_id: str) -> Locator:
        return self.page.locator(f'[data-testid="job-row"][data-job-id="{job_id}"]')

    def badge(self, job_id: str) -> Locator:
        return self.row(job_id).get_by_test_id("status-badge")

    def counter(self, status: str) -> Locator:
        return self.page.get_by_test_id(f"counter-{status}").locator("[data-counter-value]")

    async def status_history(self, job_id: str) -> list[str]:
        """Return the statuses that the job's row showed since open(), oldest first."""
        history = await self.page.evaluate(
            "(id) => window.__statusHistory === undefined ? null : (window.__statusHistory[id] ?? [])", job_id
        )
        assert history is not None, "the page was reloaded after open(), so the status record is gone"
        return history

    async def submit_form(self) -> dict:
        """Press "Create job" and return the job from the POST /jobs response."""
        async with self.page.expect_response(
            lambda response: response.request.method == "POST" and response.url == f"{self.base_url}/jobs"
        ) as response_info:
            await self.page.get_by_test_id("submit-job").click()
        response = await response_info.value
        assert response.status == 201, await response.text()
        await expect(self.page.get_by_test_id("new-job-dialog")).to_be_hidden()
        return await response.json()

    async def open_form_with_preset(self, preset: str) -> None:
        await self.page.get_by_test_id("new-job-button").click()
        await expect(self.page.get_by_test_id("new-job-dialog")).to_be_visible()
        await self.page.get_by_test_id(f"preset-{preset}").click()

    async def create_from_preset(self, preset: str) -> dict:
        await self.open_form_with_preset(preset)
        return await self.submit_form()

    async def open_detail(self, job_id: str) -> Locator:
        await self.row(job_id).locator('[data-action="open-job"]').click()
        panel = self.page.get_by_test_id("detail-panel")
        await expect(panel).to_be_visible()
        await expect(panel.locator('[data-field="id"]')).to_have_text(job_id)
        return panel

    async def run_action(self, action: str, *, confirm: bool = True) -> None:
        """Press a detail panel action, then "Yes" or "Go back" in the confirm dialog."""
        await self.page.get_by_test_id(f"action-{action}").click()
        dialog = self.page.get_by_test_id("confirm-dialog")
        await expect(dialog).to_be_visible()
        await self.page.get_by_test_id("confirm-yes" if confirm else "confirm-no").click()
        await expect(dialog).to_be_hidden()


@pytest.fixture
async def dashboard(browser, live_server) -> AsyncIterator[Dashboard]:
    context = await browser.new_context(viewport=VIEWPORT, timezone_id="UTC", locale="en-US")
    page = await context.new_page()
    yield Dashboard(page, live_server)
    # Closing the page ends its event stream before live_server stops uvicorn.
    await context.close()


async def test_dashboard_loads_live_without_errors(dashboard, registry):
    page = dashboard.page
    await page.add_init_script(RECORD_CSP_VIOLATIONS)

    response = await dashboard.open()

    policy = response.headers.get("content-security-policy", "")
    assert "default-src 'self'" in policy
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    await expect(page.get_by_test_id("connection-state")).to_have_text("Live")
    await expect(page.get_by_test_id("job-table")).to_contain_text("No jobs yet")
    await expect(dashboard.counter("COMPLETED")).to_have_text("0", timeout=STATS_TIMEOUT_MS)
    await expect(page.get_by_test_id("throughput-summary")).to_contain_text("Last 15 minutes: 0 completed, 0 failed.")
    type_options = page.get_by_test_id("new-job-type").locator("option")
    await expect(type_options).to_have_text(["Choose a type", *registry.types])
    assert await page.evaluate("window.__cspViolations") == []
    assert dashboard.console_errors == []


async def test_report_generation_runs_then_completes(dashboard):
    await dashboard.open()
    await expect(dashboard.counter("COMPLETED")).to_have_text("0", timeout=STATS_TIMEOUT_MS)

    job = await dashboard.create_from_preset("REPORT_GENERATION")

    assert job["type"] == "REPORT_GENERATION"
    assert job["payload"] == {"userId": 123, "format": "PDF"}
    assert job["retryMaxAttempts"] == 3
    assert job["retryBackoffSeconds"] == 10
    await expect(dashboard.badge(job["id"])).to_have_text("COMPLETED", timeout=JOB_TIMEOUT_MS)
    history = await dashboard.status_history(job["id"])
    assert "RUNNING" in history, f"the row never showed RUNNING: {history}"
    assert history[-1] == "COMPLETED"
    assert history.index("RUNNING") < history.index("COMPLETED")
    await expect(dashboard.counter("COMPLETED")).to_have_text("1", timeout=STATS_TIMEOUT_MS)
    assert dashboard.console_errors == []


async def test_data_sync_pending_then_completed(dashboard):
    await dashboard.open()

    job = await dashboard.create_from_preset("DATA_SYNC")

    assert job["status"] == "PENDING"
    delay = datetime.fromisoformat(job["scheduleAt"]) - datetime.fromisoformat(job["createdAt"])
    assert timedelta(seconds=4) <= delay <= timedelta(seconds=6)
    await expect(dashboard.badge(job["id"])).to_have_text("PENDING")
    await expect(dashboard.badge(job["id"])).to_have_text("COMPLETED", timeout=DATA_SYNC_TIMEOUT_MS)
    history = await dashboard.status_history(job["id"])
    assert history[0] == "PENDING"
    assert "RUNNING" in history, f"the row never showed RUNNING: {history}"
    assert history[-1] == "COMPLETED"
    assert dashboard.console_errors == []


async def test_always_fail_attempts_appear_live(dashboard):
    await dashboard.open()

    job = await dashboard.create_from_preset("ALWAYS_FAIL")
    panel = await dashboard.open_detail(job["id"])

    # The preset waits 2 s before attempt 2, so the open panel first shows one attempt and
    # must then receive the second one from the event stream.
    attempts = panel.get_by_test_id("attempt-row")
    first = panel.locator('[data-testid="attempt-row"][data-attempt="1"]')
    second = panel.locator('[data-testid="attempt-row"][data-attempt="2"]')
    await expect(first.get_by_test_id("attempt-outcome")).to_have_text("FAILED")
    await expect(attempts).to_have_count(1)
    await expect(second.get_by_test_id("attempt-outcome")).to_have_text("FAILED", timeout=JOB_TIMEOUT_MS)
    await expect(first.locator('[data-attempt="error"]')).to_contain_text("ALWAYS_FAIL fails on purpose (attempt 1 of 6)")
    await expect(second.locator('[data-attempt="error"]')).to_contain_text("ALWAYS_FAIL fails on purpose (attempt 2 of 6)")
    await expect(panel.locator('[data-field="lastError"]')).to_contain_text("attempt 2 of 6")
    await expect(dashboard.row(job["id"]).locator('[data-cell="attempts"]')).to_have_text("2/6")
    assert dashboard.console_errors == []


async def test_cancel_retry_and_delete_from_detail(dashboard, api):
    page = dashboard.page
    await dashboard.open()
    await dashboard.open_form_with_preset("DATA_SYNC")
    run_at = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    await page.get_by_test_id("schedule-at").check()
    # The browser context runs in UTC, so the local time in the form is a UTC time.
    await page.get_by_test_id("new-job-schedule-at").fill(run_at.strftime("%Y-%m-%dT%H:%M:%S"))
    job = await dashboard.submit_form()
    job_id = job["id"]
    assert job["status"] == "PENDING"
    assert datetime.fromisoformat(job["scheduleAt"]) == run_at

    panel = await dashboard.open_detail(job_id)
    status = panel.get_by_test_id("detail-status")
    await expect(status).to_have_text("PENDING")
    await expect(page.get_by_test_id("action-retry")).to_be_hidden()
    await expect(page.get_by_test_id("action-delete")).to_be_hidden()

    await dashboard.run_action("cancel", confirm=False)
    await expect(status).to_have_text("PENDING")
    assert (await api.get(f"/jobs/{job_id}")).json()["status"] == "PENDING"

    await dashboard.run_action("cancel")
    await expect(status).to_have_text("CANCELLED")
    await expect(dashboard.badge(job_id)).to_have_text("CANCELLED")
    assert (await api.get(f"/jobs/{job_id}")).json()["status"] == "CANCELLED"
    await expect(page.get_by_test_id("action-cancel")).to_be_hidden()

    await dashboard.run_action("retry")
    await expect(status).to_have_text("COMPLETED", timeout=JOB_TIMEOUT_MS)
    await expect(dashboard.badge(job_id)).to_have_text("COMPLETED")
    history = await dashboard.status_history(job_id)
    assert history[:2] == ["PENDING", "CANCELLED"]
    assert history[-1] == "COMPLETED"
    await expect(panel.get_by_test_id("attempt-row")).to_have_count(1)
    await expect(panel.get_by_test_id("attempt-outcome")).to_have_text("COMPLETED")

    await dashboard.run_action("delete")
    await expect(panel).to_be_hidden()
    await expect(dashboard.row(job_id)).to_have_count(0)
    assert (await api.get(f"/jobs/{job_id}")).status_code == 404
    assert dashboard.console_errors == []


async def insert_job_with_markup(store) -> str:
    """Insert a FAILED job with XSS_MARKUP in its type, payload, error, attempt and event.

    The API rejects such a type, so the rows go straight into PostgreSQL. The `created` event
    makes the job reach open dashboards through the event stream.
    """
    job_id = uuid7()
    async with store.pool.acquire() as connection, connection.transaction():
        await connection.execute(
            """
            INSERT INTO jobs (id, type, queue, payload, status, schedule_at, attempt, max_retries,
                              backoff_seconds, last_error, started_at, finished_at)
            VALUES ($1, $2, 'default', $3, 'FAILED', now(), 1, 0, 0, $4, now(), now())
            """,
            job_id,
            XSS_MARKUP,
            {"note": XSS_MARKUP},
            f"RuntimeError: {XSS_MARKUP}",
        )
        await connection.execute(
            """
            INSERT INTO job_attempts (job_id, attempt, node, started_at, finished_at, outcome, error, traceback)
            VALUES ($1, 1, $2, now(), now(), 'FAILED', $3, $4)
            """,
            job_id,
            XSS_MARKUP,
            f"RuntimeError: {XSS_MARKUP}",
            f"Traceback (most recent call last):\n{XSS_MARKUP}",
        )
        await connection.execute(
            """
            INSERT INTO job_events (job_id, kind, type, queue, status, attempt, data)
            VALUES ($1, 'created', $2, 'default', 'FAILED', 1, $3)
            """,
            job_id,
            XSS_MARKUP,
            {"maxAttempts": 1, "note": XSS_MARKUP},
        )
    return str(job_id)


async def assert_markup_is_inert(dashboard: Dashboard) -> None:
    page = dashboard.page
    assert await page.evaluate("window.__xss") is None
    assert dashboard.dialogs == []
    await expect(page.locator("img[onerror]")).to_have_count(0)
    await expect(page.locator("[data-job-rows] script, [data-detail-panel] script")).to_have_count(0)


async def test_markup_in_job_shows_as_text(dashboard, store):
    page = dashboard.page
    # An injected <img src=x> would request /x from the server.
    image_requests: list[str] = []

    def record_image_request(request) -> None:
        if request.url.endswith("/x"):
            image_requests.append(request.url)

    page.on("request", record_image_request)
    await dashboard.open()

    job_id = await insert_job_with_markup(store)

    # The row comes from the live `created` event and then GET /jobs/{id}.
    type_cell = dashboard.row(job_id).locator('[data-cell="type"]')
    await expect(type_cell).to_have_text(XSS_MARKUP)
    await expect(dashboard.badge(job_id)).to_have_text("FAILED")
    panel = await dashboard.open_detail(job_id)
    await expect(panel.locator('[data-field="type"]')).to_have_text(XSS_MARKUP)
    await expect(panel.locator('[data-field="lastError"]')).to_have_text(f"RuntimeError: {XSS_MARKUP}")
    await expect(panel.get_by_test_id("detail-payload")).to_contain_text("<script>window.__xss=1</script>")
    attempt = panel.get_by_test_id("attempt-row")
    await expect(attempt.locator('[data-attempt="error"]')).to_have_text(f"RuntimeError: {XSS_MARKUP}")
    await expect(attempt.locator('[data-attempt="node"]')).to_have_text(f"on {XSS_MARKUP}")
    await expect(panel.get_by_test_id("event-list")).to_contain_text("<script>window.__xss=1</script>")
    await assert_markup_is_inert(dashboard)

    # After a reload the row comes from GET /jobs instead.
    await dashboard.open()
    await expect(type_cell).to_have_text(XSS_MARKUP)
    await assert_markup_is_inert(dashboard)
    assert image_requests == []
    assert dashboard.console_errors == []


async def test_server_validation_error_shows_at_field(dashboard, api):
    page = dashboard.page
    await dashboard.open()
    await dashboard.open_form_with_preset("REPORT_GENERATION")
    max_retries = page.get_by_test_id("new-job-max-retries")
    await max_retries.fill("101")

    async with page.expect_response(lambda response: response.url == f"{dashboard.base_url}/jobs") as response_info:
        await page.get_by_test_id("submit-job").click()

    response = await response_info.value
    assert response.status == 400
    error = page.locator("#error-maxRetries")
    await expect(error).to_be_visible()
    await expect(error).to_have_text("retryPolicy.maxRetries must be from 0 to 100; got 101")
    await expect(max_retries).to_have_attribute("aria-invalid", "true")
    await expect(max_retries).to_have_attribute("aria-describedby", "error-maxRetries")
    await expect(max_retries).to_be_focused()
    await expect(page.get_by_test_id("new-job-error")).to_have_text("The server rejected the job. See the highlighted field.")
    await expect(page.get_by_test_id("new-job-dialog")).to_be_visible()
    assert (await api.get("/jobs")).json()["jobs"] == []

    await max_retries.fill("3")
    await expect(error).to_be_hidden()
    job = await dashboard.submit_form()
    assert job["retryMaxAttempts"] == 3


async def test_screenshot_shows_jobs_in_every_state(dashboard, api):
    page = dashboard.page
    await dashboard.open()
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    much_later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    retry_policy = {"maxRetries": 3, "backoffSeconds": 600}

    # Each job with the status it settles in, oldest first. The test node works only the
    # default queue, so jobs in the reports queue are all scheduled for later. The ALWAYS_FAIL
    # job with retries left waits PENDING for 10 minutes after its first failed attempt.
    cases = [
        ("COMPLETED", {"type": "REPORT_GENERATION", "payload": {"userId": 101, "format": "PDF"}}),
        ("PENDING", {"type": "DATA_SYNC", "payload": {"source": "S3"}, "queue": "reports", "scheduleAt": later}),
        ("FAILED", {"type": "ALWAYS_FAIL", "payload": {}, "retryPolicy": {"maxRetries": 0, "backoffSeconds": 0}}),
        ("COMPLETED", {"type": "REPORT_GENERATION", "payload": {"userId": 102, "format": "CSV"}, "priority": 5}),
        ("COMPLETED", {"type": "DATA_SYNC", "payload": {"source": "Postgres", "target": "S3"}}),
        ("PENDING", {"type": "ALWAYS_FAIL", "payload": {"debug": True}, "retryPolicy": retry_policy}),
        ("CANCELLED", {"type": "DATA_SYNC", "payload": {"source": "GCS"}, "scheduleAt": later}),
        ("COMPLETED", {"type": "REPORT_GENERATION", "payload": {"userId": 103, "format": "XLSX"}, "priority": 5}),
        ("RUNNING", {"type": "LONG_REPORT", "payload": {"userId": 104, "year": 2025}, "priority": 10}),
        ("PENDING", {"type": "DATA_SYNC", "payload": {"source": "Redis"}, "queue": "reports", "scheduleAt": much_later}),
    ]
    jobs = []
    for status, body in cases:
        response = await api.post("/jobs", json=body)
        assert response.status_code == 201, response.text
        job = response.json()
        jobs.append(job)
        if status == "CANCELLED":
            assert (await api.post(f"/jobs/{job['id']}/cancel")).status_code == 200

    for job, (status, _) in zip(jobs, cases, strict=True):
        await expect(dashboard.badge(job["id"])).to_have_text(status, timeout=JOB_TIMEOUT_MS)
    retrying = jobs[5]
    await expect(dashboard.row(retrying["id"]).locator('[data-cell="attempts"]')).to_have_text("1/4")
    for status in ("PENDING", "QUEUED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"):
        count = sum(1 for expected, _ in cases if expected == status)
        await expect(dashboard.counter(status)).to_have_text(str(count), timeout=STATS_TIMEOUT_MS)
    await expect(page.get_by_test_id("throughput-summary")).to_contain_text(
        "Last 15 minutes: 4 completed, 1 failed.", timeout=THROUGHPUT_TIMEOUT_MS
    )
    # Changed rows stay highlighted for 1.5 s, and the screenshot shows the table at rest.
    await expect(page.locator(".job-row.is-updated")).to_have_count(0)

    SCREENSHOT.parent.mkdir(exist_ok=True)
    await page.screenshot(path=SCREENSHOT)
    assert SCREENSHOT.stat().st_size > 10_000
    assert dashboard.console_errors == []
