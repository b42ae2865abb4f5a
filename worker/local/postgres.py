"""PostgreSQL for the local stack: the Iceberg SQL catalog's database.

Debian's ``postgresql`` package provides the binaries (``make postgres`` installs it when
missing); the stack runs a private cluster of its own under ``<stack_dir>/data/postgres`` on the
loopback port of ``SLUICE_ICEBERG_CATALOG_URI``, never the system's cluster. PostgreSQL refuses
to run as root, so under root the cluster belongs to the ``postgres`` system user (created by the
package) and the server runs as that user; otherwise it runs as the current user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url


class PostgresUnavailable(Exception):
    """PostgreSQL's binaries are missing, or the cluster could not be prepared."""


@dataclass(frozen=True)
class PostgresTarget:
    """What the catalog URI asks of the local stack: port, role and database."""

    port: int
    user: str
    database: str


def local_target(catalog_uri: str | None) -> PostgresTarget | None:
    """The local cluster the catalog URI points at, or None (SQLite, REST, a remote server)."""
    if not catalog_uri or not catalog_uri.startswith("postgresql"):
        return None
    url = make_url(catalog_uri)
    if url.host not in {"127.0.0.1", "localhost"}:
        return None
    return PostgresTarget(port=url.port or 5432, user=url.username or "sluice",
                          database=url.database or "iceberg")


def binaries() -> Path:
    """The directory of the newest installed PostgreSQL server's binaries."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                   key=lambda path: int(Path(path).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("postgres")
    if on_path:
        return Path(on_path).parent
    raise PostgresUnavailable(
        "PostgreSQL is not installed: `make postgres` (Debian's `postgresql` package) installs "
        "it; the Iceberg SQL catalog of the local stack needs it")


def run_as() -> str | None:
    """The system user the server runs as: `postgres` under root, else None (ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError as error:
        raise PostgresUnavailable(
            "running as root, PostgreSQL needs the `postgres` system user: install Debian's "
            "`postgresql` package (`make postgres`)") from error
    return "postgres"


def _as_user(command: list[str], user: str | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 (fixed argv, no shell)
        command, user=user, group=group_of(user), extra_groups=[] if user else None,
        capture_output=True, text=True, check=False, cwd="/",
    )


def group_of(user: str | None) -> int | None:
    """The primary group of `user` (None for ourselves)."""
    return pwd.getpwnam(user).pw_gid if user else None


def prepare_cluster(data_dir: Path, target: PostgresTarget) -> None:
    """Create the cluster (``initdb``, trust on loopback only) unless it exists."""
    if (data_dir / "PG_VERSION").exists():
        return
    user = run_as()
    data_dir.mkdir(parents=True, exist_ok=True)
    if user:
        entry = pwd.getpwnam(user)
        os.chown(data_dir, entry.pw_uid, entry.pw_gid)
    data_dir.chmod(0o700)
    result = _as_user([str(binaries() / "initdb"), "-D", str(data_dir), "-U", target.user,
                       "--auth=trust", "--encoding=UTF8", "--no-instructions"], user)
    if result.returncode != 0:
        raise PostgresUnavailable(f"initdb failed in {data_dir}:\n{result.stdout}{result.stderr}")


def server_command(data_dir: Path, port: int) -> list[str]:
    """The server in the foreground, on loopback only, its socket in its data directory."""
    return [str(binaries() / "postgres"), "-D", str(data_dir), "-h", "127.0.0.1",
            "-p", str(port), "-k", str(data_dir), "-c", "max_connections=200"]


def is_ready(target: PostgresTarget) -> bool:
    """Ready when the server accepts connections for the catalog's role."""
    try:
        pg_isready = binaries() / "pg_isready"
    except PostgresUnavailable:
        return False
    result = subprocess.run(  # noqa: S603 (fixed argv, no shell)
        [str(pg_isready), "-q", "-h", "127.0.0.1", "-p", str(target.port), "-U", target.user,
         "-d", "postgres", "-t", "2"], capture_output=True, check=False)
    return result.returncode == 0


def ensure_database(target: PostgresTarget) -> None:
    """Create the catalog's database if it does not exist yet."""
    result = subprocess.run(  # noqa: S603 (fixed argv, no shell)
        [str(binaries().parent / "bin" / "createdb"), "-h", "127.0.0.1", "-p", str(target.port),
         "-U", target.user, target.database], capture_output=True, text=True, check=False)
    if result.returncode != 0 and "already exists" not in result.stderr:
        raise PostgresUnavailable(f"createdb {target.database} failed: {result.stderr.strip()}")
