"""Settings from JOBD_* variables, and errors that name the setting, the rule and the value."""

from pathlib import Path

import pytest

from jobd.config import from_env, parse_queues
from jobd.errors import ConfigError


def test_defaults():
    settings = from_env({})

    assert settings.port == 8081
    assert settings.host == "127.0.0.1"
    assert settings.concurrency == 100
    assert dict(settings.queues) == {"default": None}
    assert settings.embedded


def test_environment_is_read():
    settings = from_env(
        {
            "JOBD_PORT": "9000",
            "JOBD_QUEUES": "default=5, emails",
            "JOBD_LEASE_SECONDS": "12.5",
            "JOBD_DATA_DIR": "/tmp/x",
            "JOBD_DATABASE_URL": "postgresql://db/jobd",
            "JOBD_REDIS_URL": "redis://r",
        }
    )

    assert settings.port == 9000
    assert dict(settings.queues) == {"default": 5, "emails": None}
    assert settings.lease_seconds == 12.5
    assert settings.data_dir == Path("/tmp/x")
    assert not settings.embedded


def test_overrides_win_over_environment():
    settings = from_env({"JOBD_PORT": "9000"}, port=9100)

    assert settings.port == 9100


@pytest.mark.parametrize(
    ("environ", "setting"),
    [
        ({"JOBD_PORT": "eighty"}, "JOBD_PORT"),
        ({"JOBD_PORT": "70000"}, "JOBD_PORT"),
        ({"JOBD_CONCURRENCY": "0"}, "JOBD_CONCURRENCY"),
        ({"JOBD_LEASE_SECONDS": "10", "JOBD_HEARTBEAT_SECONDS": "6"}, "JOBD_HEARTBEAT_SECONDS"),
        ({"JOBD_QUEUES": "bad name"}, "JOBD_QUEUES"),
        ({"JOBD_QUEUES": "a=0"}, "JOBD_QUEUES"),
        ({"JOBD_QUEUES": " , "}, "JOBD_QUEUES"),
        ({"JOBD_LOG_LEVEL": "LOUD"}, "JOBD_LOG_LEVEL"),
        ({"JOBD_MAX_PAYLOAD_BYTES": "10"}, "JOBD_MAX_PAYLOAD_BYTES"),
    ],
)
def test_invalid_setting_is_named(environ, setting):
    with pytest.raises(ConfigError, match=setting):
        from_env(environ)


def test_parse_queues_keeps_order():
    assert list(parse_queues("b,a=2,c")) == ["b", "a", "c"]
