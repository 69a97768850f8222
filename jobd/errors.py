"""The jobd exception hierarchy: every error jobd raises on purpose derives from `JobdError`."""


class JobdError(Exception):
    """Base class of the errors that jobd raises."""


class ConfigError(JobdError):
    """A setting is missing or invalid; the message names the setting, the rule and the value."""


class InvalidInput(JobdError):
    """A request field breaks a rule. `field` is its JSON path, for example `retryPolicy.maxRetries`."""

    def __init__(self, field: str | None, message: str, *, code: str = "invalid_field", status: int = 400):
        super().__init__(message)
        self.field = field
        self.message = message
        self.code = code
        self.status = status


class JobNotFound(JobdError):
    """No job has the requested id."""

    def __init__(self, job_id: object):
        super().__init__(f"job {job_id} not found")
        self.job_id = job_id


class EmbeddedServerError(JobdError):
    """An embedded PostgreSQL or Redis server failed to start or stop."""
