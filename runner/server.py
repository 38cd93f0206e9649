"""python -m runner.server [--port 5000] [--root .cache/server]: a shared tracking server on this machine.

PostgreSQL holds the runs (its own cluster under ROOT, listening on 127.0.0.1 only, password
authentication with a generated password kept in ROOT/postgres/password, mode 0600) and `mlflow server
--serve-artifacts` stores artifacts under ROOT/artifacts and serves both on 127.0.0.1:PORT, until Ctrl-C
or SIGTERM stops them. Send runs there with `tracking=server tracking.uri=http://127.0.0.1:PORT`; to reach it from
other machines, put it behind your own authenticated proxy (it has no authentication of its own).
"""
from __future__ import annotations

import argparse
import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from runner.schema import PROJECT_ROOT, ConfigError

DATABASE = USER = "mlflow"
BACKEND_STORE_VARIABLE = "MLFLOW_BACKEND_STORE_URI"   # `mlflow server --backend-store-uri`'s environment variable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_bin() -> Path:
    """The directory of PostgreSQL's server programs (Debian keeps them out of PATH)."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    if not versions:
        raise ConfigError("PostgreSQL is not installed: allowed a machine with its server programs "
                          "(Debian: apt-get install postgresql)")
    return Path(versions[-1]).parent


class LocalPostgres:
    """A private PostgreSQL cluster in `root` on 127.0.0.1:port, whose user `mlflow` logs in with a password
    generated when the cluster is made (scram-sha-256; kept in root/password, readable by its owner only).
    PostgreSQL refuses to run as root: as root, its programs run as the `postgres` system user."""

    def __init__(self, root: Path, port: int) -> None:
        self.root, self.port = Path(root).resolve(), port
        self.data, self.log = self.root / "data", self.root / "postgres.log"
        self.password_file = self.root / "password"
        self.bin = postgres_bin()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @property
    def password(self) -> str:
        return self.password_file.read_text().strip()

    @property
    def uri(self) -> str:
        return f"postgresql+psycopg2://{USER}:{self.password}@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def shown_uri(self) -> str:
        """The URI without its password, for messages."""
        return f"postgresql+psycopg2://{USER}:***@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, program: str, *args: str) -> subprocess.CompletedProcess:
        environment = {**os.environ, "PGPASSWORD": self.password} if self.password_file.is_file() else None
        return subprocess.run([*self.as_user, str(self.bin / program), *args], capture_output=True, text=True,
                              cwd=self.root, env=environment)

    def _make_password(self) -> None:
        descriptor = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(24) + "\n")
        os.chmod(self.password_file, 0o600)
        if self.as_user:  # initdb reads it as the `postgres` user
            shutil.chown(self.password_file, "postgres", "postgres")

    def start(self) -> LocalPostgres:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.as_user:
            shutil.chown(self.root, "postgres", "postgres")
        if (self.data / "PG_VERSION").is_file() and not self.password_file.is_file():
            raise RuntimeError(f"the database cluster in {self.data} has no password file (it was made with "
                               f"passwordless local logins): remove {self.root} to make a new one")
        if not (self.data / "PG_VERSION").is_file():
            self._make_password()
            done = self._run("initdb", "-D", str(self.data), "-U", USER, "--auth=scram-sha-256",
                             f"--pwfile={self.password_file}", "-E", "UTF8")
            if done.returncode:
                raise RuntimeError(f"initdb failed: {done.stderr.strip().splitlines()[-1:]}")
        done = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start", "-o",
                         f"-h 127.0.0.1 -p {self.port} -k {self.root}")
        if done.returncode:
            raise RuntimeError(f"PostgreSQL did not start (see {self.log}): {done.stderr.strip()[-300:]}")
        created = self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, DATABASE)
        if created.returncode and "already exists" not in created.stderr:
            raise RuntimeError(f"createdb failed: {created.stderr.strip()}")
        return self

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


class MlflowServer:
    """`mlflow server` on 127.0.0.1:port over `backend` with served artifacts under `artifacts`."""

    def __init__(self, backend: str, artifacts: Path, port: int) -> None:
        self.backend, self.artifacts, self.port = backend, Path(artifacts).resolve(), port
        self.process: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180.0, log=None) -> MlflowServer:
        self.artifacts.mkdir(parents=True, exist_ok=True)
        # The backend URI carries the database's password: any user can read a command line (ps), only the
        # owner a process's environment, where `mlflow server` also reads its --backend-store-uri.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
             "--serve-artifacts", "--artifacts-destination", self.artifacts.as_uri(), "--workers", "2"],
            stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "MLFLOW_LOGGING_LEVEL": "WARNING", BACKEND_STORE_VARIABLE: self.backend})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # the first start creates the schema in PostgreSQL
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited with code {self.process.returncode}")
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(1)
        self.stop()
        raise RuntimeError(f"mlflow server did not answer on {self.uri} within {timeout:.0f} s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runner.server", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=5000, help="the MLflow server's port on 127.0.0.1")
    parser.add_argument("--postgres-port", type=int, default=0, help="PostgreSQL's port (default: a free one)")
    parser.add_argument("--root", type=Path, default=PROJECT_ROOT / ".cache" / "server",
                        help="where the database cluster and the artifacts live")
    args = parser.parse_args(argv)

    def stop_on_sigterm(_signum, _frame):
        raise KeyboardInterrupt  # SIGTERM stops both servers, like Ctrl-C

    signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        database = LocalPostgres(args.root / "postgres", args.postgres_port or free_port()).start()
    except (ConfigError, RuntimeError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    server = MlflowServer(database.uri, args.root / "artifacts", args.port)
    try:
        server.start()
        print(f"tracking server: {server.uri} (runs in {database.shown_uri}, password in {database.password_file}, "
              f"artifacts in {server.artifacts})\n"
              f"  python -m runner tracking=server tracking.uri={server.uri} ...    Ctrl-C or SIGTERM stops it",
              flush=True)
        assert server.process is not None, "start() launched it"
        server.process.wait()
    except KeyboardInterrupt:
        pass
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        server.stop()
        database.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
