"""A real, throw-away PostgreSQL server for tests: a fresh cluster in a temp folder, on a free
loopback port, stopped and removed afterwards.

The server programs come from the system (``scripts/setup_env.sh`` installs Debian's
``postgresql`` package where it is missing). PostgreSQL refuses to run as root; as root the server
runs as the ``postgres`` user that the package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


class Unavailable(RuntimeError):
    """No PostgreSQL server can be started here; the message says why and how to fix it."""


def server_programs() -> Path:
    """The folder holding ``initdb`` and ``postgres``."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if candidates:
        return Path(candidates[-1]).parent
    raise Unavailable("PostgreSQL server programs (initdb, postgres) not found; run `bash scripts/setup_env.sh` "
                      "as root to install them, or `apt-get install postgresql`")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """Start with :meth:`start`; ``url`` is a SQLAlchemy URL of an empty database ``designgym``."""

    user = "designgym"
    database = "designgym"

    def __init__(self) -> None:
        self.bin = server_programs()
        self.folder = Path(tempfile.mkdtemp(prefix="designgym-pg-"))
        self.port = _free_port()
        self.process: subprocess.Popen | None = None
        self.run_as: list[str] = []
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise Unavailable("running as root and there is no 'postgres' user to run the server as; "
                                  "install Debian's postgresql package, which creates it") from None
            os.chown(self.folder, owner.pw_uid, owner.pw_gid)
            runuser = shutil.which("runuser")
            if runuser is None:
                raise Unavailable("running as root without `runuser` to start the server as 'postgres'")
            self.run_as = [runuser, "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def start(self) -> PostgresServer:
        data = self.folder / "data"
        subprocess.run([*self.run_as, str(self.bin / "initdb"), "-D", str(data), "-U", self.user, "--auth=trust",
                        "--no-sync", "-E", "UTF8"], check=True, capture_output=True, text=True, timeout=120)
        self.log = open(self.folder / "server.log", "wb")  # noqa: SIM115  (closed in stop)
        self.process = subprocess.Popen(
            [*self.run_as, str(self.bin / "postgres"), "-D", str(data), "-p", str(self.port), "-k", str(self.folder),
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=50"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        import psycopg2

        deadline = time.monotonic() + 60
        while True:
            try:
                connection = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, dbname="postgres")
                break
            except psycopg2.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = (self.folder / "server.log").read_text(errors="replace")
                    self.stop()
                    raise RuntimeError(f"PostgreSQL did not start; its log:\n{log}") from None
                time.sleep(0.2)
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {self.database}")
        connection.close()
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # "fast" shutdown: ends any client sessions a killed test left behind.
            subprocess.run([*self.run_as, str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"), "stop",
                            "-m", "fast", "-w"], capture_output=True, timeout=60)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if getattr(self, "log", None) is not None:
            self.log.close()
        shutil.rmtree(self.folder, ignore_errors=True)
