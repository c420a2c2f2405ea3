"""Servers a deployment test starts for itself, on loopback only, stopped when it ends.

- ``PasswordPostgres``: a PostgreSQL cluster of its own (initdb, pg_ctl) that listens on
  127.0.0.1 only, has no Unix socket and asks every client for a scram-sha-256 password.
- ``LoopbackMetastore``: a standalone Hive metastore service from the jars inside PySpark,
  over Derby in a folder of its own, serving Thrift on 127.0.0.1 only.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import psycopg
import pyspark
from psycopg import sql

HERE = Path(__file__).resolve().parent
PYSPARK_JARS = Path(pyspark.__file__).resolve().parent / "jars"
START_TIMEOUT_S = 300


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening_addresses(pid: int) -> set[tuple[str, int]]:
    """The (address, port) pairs process ``pid`` listens on for TCP, read from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = set()
    for table, size in (("tcp", 4), ("tcp6", 16)):
        lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:  # 0A: LISTEN
                found.add(_decode_address(local, size))
    return found


def _decode_address(text: str, size: int) -> tuple[str, int]:
    hex_address, hex_port = text.split(":")
    raw = bytes.fromhex(hex_address)
    # /proc prints the address as 32-bit words in host (little-endian) order.
    raw = b"".join(raw[i : i + 4][::-1] for i in range(0, size, 4))
    if size == 16 and raw[:12] == b"\0" * 10 + b"\xff\xff":
        raw, size = raw[12:], 4  # an IPv4-mapped IPv6 address
    family = socket.AF_INET if size == 4 else socket.AF_INET6
    return socket.inet_ntop(family, raw), int(hex_port, 16)


def _wait_for(ready, what: str, log: Path, alive=lambda: True) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready():
        if not alive() or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(f"{what} did not start; its log ends with:\n{tail}")
        time.sleep(0.5)


def postgres_bindir() -> Path | None:
    """The newest PostgreSQL server binaries of the machine, else those pgserver ships."""
    machine = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3])
    )
    if machine:
        return Path(machine[-1]).parent
    try:
        import pgserver
    except ImportError:
        return None
    shipped = Path(pgserver.__file__).parent / "pginstall" / "bin"
    return shipped if (shipped / "initdb").exists() else None


class PasswordPostgres:
    """A PostgreSQL cluster on 127.0.0.1:PORT where every login needs a scram-sha-256 password."""

    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.port = free_port()
        self._admin_password = secrets.token_urlsafe(18)
        # Not under pytest's folder: the server's account must be able to enter it.
        self.root = Path(tempfile.mkdtemp(prefix="usage-elt-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._run_as = None
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            self._run_as = pwd.getpwnam("postgres")
            os.chown(self.root, self._run_as.pw_uid, self._run_as.pw_gid)

    @property
    def admin_uri(self) -> str:
        return f"postgresql://postgres:{self._admin_password}@127.0.0.1:{self.port}/postgres"

    def uri(self, user: str, password: str, database: str) -> str:
        return f"postgresql://{user}:{quote(password, safe='')}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._run_as is not None:
            command = ["runuser", "-u", self._run_as.pw_name, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=START_TIMEOUT_S)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr[-2000:]}")

    def _write_owned(self, path: Path, text: str) -> Path:
        """Write a file the server's account owns and only it reads."""
        path.write_text(text)
        path.chmod(0o600)
        if self._run_as is not None:
            os.chown(path, self._run_as.pw_uid, self._run_as.pw_gid)
        return path

    def start(self) -> PasswordPostgres:
        pwfile = self._write_owned(self.root / "pwfile", self._admin_password + "\n")
        try:
            self._run(
                "initdb", "-D", str(self.data), "-U", "postgres", f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256", "--auth-local=scram-sha-256",
                "-E", "UTF8", "--no-locale",
            )  # fmt: skip
        finally:
            pwfile.unlink()
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                "listen_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                "unix_socket_directories = ''\n"  # TCP only: no socket to fall back on
                "password_encryption = 'scram-sha-256'\n"
                "log_connections = on\n"
                "log_line_prefix = '%m [%p] %r '\n"
                "fsync = off\n"
                "shared_buffers = 32MB\n"
            )
        self._write_owned(self.log, "")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "start")
        return self

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().splitlines()[0])

    def create_login(self, role: str, password: str) -> str:
        """A role that logs in with ``password`` and a database it owns; returns the database."""
        database = f"{role}_db"
        with psycopg.connect(self.admin_uri, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(password)
                )
            )
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(database), sql.Identifier(role)
                )
            )
        return database

    def drop_login(self, role: str, database: str) -> None:
        with psycopg.connect(self.admin_uri, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(database)))  # fmt: skip
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


class LoopbackMetastore:
    """A standalone Hive metastore (Thrift) over Derby in ``root``, on 127.0.0.1 only."""

    def __init__(self, root: Path):
        self.root = root
        self.log = root / "metastore.log"
        self.warehouse = root / "warehouse"
        self.port: int | None = None
        self._process: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"thrift://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self) -> LoopbackMetastore:
        hive = {
            "javax.jdo.option.ConnectionURL":
                f"jdbc:derby:;databaseName={self.root / 'metastore_db'};create=true",
            "datanucleus.schema.autoCreateAll": "true",
            "hive.metastore.schema.verification": "false",
            "hive.metastore.warehouse.dir": self.warehouse.as_uri(),
        }  # fmt: skip
        command = [
            "java", "-Xmx512m", f"-Dderby.system.home={self.root}",
            "-cp", f"{PYSPARK_JARS}/*",
            # Java's single-file source launcher: compiled in memory, no JDK tools needed.
            str(HERE / "LoopbackMetastore.java"), "0",
            *(f"{key}={value}" for key, value in hive.items()),
        ]  # fmt: skip
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                command, cwd=self.root, stdout=log, stderr=subprocess.STDOUT
            )
        _wait_for(
            lambda: self._read_port() is not None,
            "the Hive metastore",
            self.log,
            alive=lambda: self._process.poll() is None,
        )
        self.port = self._read_port()
        return self

    def _read_port(self) -> int | None:
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("listening on 127.0.0.1:"):
                return int(line.rsplit(":", 1)[1])
        return None

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=60)
