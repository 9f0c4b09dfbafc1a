"""A throwaway PostgreSQL server on 127.0.0.1, for the tests and the benchmarks.

``TemporaryServer`` runs ``initdb`` into a fresh temporary directory, starts the server with
``pg_ctl`` on a free loopback port (its unix socket in the same directory) and removes everything
on ``stop()``. The superuser is ``coinbt`` with trust authentication, so a DSN needs no password.

PostgreSQL refuses to run as root. When the tests run as root, the server runs as the ``postgres``
system user (Debian's package creates it); as any other user, it runs as that user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ("PostgresUnavailableError", "TemporaryServer", "find_bindir", "temporary_server")

SUPERUSER = "coinbt"
_DEBIAN = Path("/usr/lib/postgresql")
_TOOLS = ("initdb", "pg_ctl", "postgres", "psql")


class PostgresUnavailableError(RuntimeError):
    """No PostgreSQL server can be started here; the message says what is missing."""


def find_bindir() -> Path | None:
    """The directory with ``initdb``, ``pg_ctl``, ``postgres`` and ``psql``; None if none has.

    ``COINBT_PG_BINDIR`` wins; then Debian's ``/usr/lib/postgresql/<newest>/bin``; then the PATH.
    """
    candidates: list[Path] = []
    if override := os.environ.get("COINBT_PG_BINDIR"):
        candidates.append(Path(override))
    if _DEBIAN.is_dir():
        versions = [p for p in _DEBIAN.iterdir() if re.fullmatch(r"\d+(\.\d+)?", p.name)]
        versions.sort(key=lambda p: [int(part) for part in p.name.split(".")], reverse=True)
        candidates += [p / "bin" for p in versions]
    if found := shutil.which("pg_ctl"):
        candidates.append(Path(found).resolve().parent)
    for bindir in candidates:
        if all(os.access(bindir / tool, os.X_OK) for tool in _TOOLS):
            return bindir
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class _RunAs:
    uid: int
    gid: int

    @classmethod
    def choose(cls) -> _RunAs | None:
        """None: run as ourselves. As root: the ``postgres`` user (initdb refuses root)."""
        if os.geteuid() != 0:
            return None
        try:
            entry = pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresUnavailableError(
                "running as root and there is no 'postgres' user to run the server as "
                "(scripts/ensure-postgres installs Debian's postgresql package, which creates it)"
            ) from None
        return cls(entry.pw_uid, entry.pw_gid)


class TemporaryServer:
    """One PostgreSQL cluster in a temporary directory. ``start()``, use ``dsn()``, ``stop()``.

    ``durable=False`` (the tests) turns fsync off: fast, and a crash of the machine loses the
    throwaway cluster, which nobody needs. The benchmarks keep PostgreSQL's durable defaults.
    """

    def __init__(self, bindir: Path | None = None, *, durable: bool = False) -> None:
        found = bindir or find_bindir()
        if found is None:
            raise PostgresUnavailableError(
                "PostgreSQL server binaries (initdb, pg_ctl, postgres, psql) not found in "
                f"{_DEBIAN}/<version>/bin or on the PATH; run scripts/ensure-postgres "
                "(as root on Debian) or set COINBT_PG_BINDIR"
            )
        self.bindir = found
        self.durable = durable
        self.port = 0
        self._run_as = _RunAs.choose()
        self._root: Path | None = None
        self._running = False

    @property
    def socket_dir(self) -> Path:
        assert self._root is not None, "the server is not started"
        return self._root

    def dsn(self, database: str = "postgres") -> str:
        """A DSN for ``database`` over TCP on 127.0.0.1."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create an empty database (as the superuser); returns its DSN."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError(f"not a plain database name: {name!r}")
        self._run("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", self.dsn("postgres"),
                  "-c", f"CREATE DATABASE {name}")  # fmt: skip
        return self.dsn(name)

    def psql(self, database: str, sql: str) -> str:
        """Run ``sql`` with psql as the superuser; returns its unaligned, tuples-only output."""
        return self._run("psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                         self.dsn(database), "-c", sql)  # fmt: skip

    def start(self) -> None:
        self._root = Path(tempfile.mkdtemp(prefix="coinbt-pg-"))
        try:
            if self._run_as is not None:
                os.chown(self._root, self._run_as.uid, self._run_as.gid)
            data = self._root / "data"
            self._run(
                "initdb",
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                *([] if self.durable else ["--no-sync"]),
            )
            for attempt in range(3):
                self.port = _free_port()
                self._configure(data)
                try:
                    self._run("pg_ctl", "-D", str(data), "-l", str(self._root / "server.log"),
                              "-w", "-t", "60", "start")  # fmt: skip
                except PostgresUnavailableError:
                    if attempt == 2 or "could not bind" not in self.log():
                        raise
                    continue
                self._running = True
                return
        except BaseException:
            self.stop()
            raise

    def _configure(self, data: Path) -> None:
        settings = {
            "port": str(self.port),
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self._root}'",
            "max_connections": "200",
            "fsync": "on" if self.durable else "off",
            "full_page_writes": "on" if self.durable else "off",
        }
        # Appended after initdb's own lines: PostgreSQL keeps the last value of a setting.
        with (data / "postgresql.conf").open("a") as conf:
            conf.write("".join(f"{key} = {value}\n" for key, value in settings.items()))

    def log(self) -> str:
        """The server's log so far ("" if there is none)."""
        if self._root is None:
            return ""
        try:
            return (self._root / "server.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the server (immediately: it is thrown away) and remove its directory."""
        root, self._root = self._root, None
        if root is None:
            return
        try:
            if self._running:
                self._running = False
                with contextlib.suppress(PostgresUnavailableError):
                    self._run("pg_ctl", "-D", str(root / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(root, ignore_errors=True)

    def _run(self, tool: str, *args: str) -> str:
        run_as = self._run_as
        try:
            done = subprocess.run(
                [str(self.bindir / tool), *args],
                check=True,
                capture_output=True,
                text=True,
                cwd=self._root,
                stdin=subprocess.DEVNULL,
                user=None if run_as is None else run_as.uid,
                group=None if run_as is None else run_as.gid,
                extra_groups=None if run_as is None else [],
                timeout=120,
            )
        except subprocess.CalledProcessError as e:
            output = (e.stdout + e.stderr).strip()
            raise PostgresUnavailableError(
                f"{tool} failed (exit {e.returncode}): {output}\n{self.log()}".strip()
            ) from None
        except (OSError, subprocess.TimeoutExpired) as e:
            raise PostgresUnavailableError(f"{tool} could not run: {e}") from None
        return done.stdout

    def __enter__(self) -> TemporaryServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def temporary_server(*, durable: bool = False) -> Iterator[TemporaryServer]:
    """``with temporary_server() as server: server.dsn("postgres")``."""
    with TemporaryServer(durable=durable) as server:
        yield server
