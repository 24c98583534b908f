"""Content-addressed blobs: the one way bytes cross a process or machine boundary.

A target, a liberty file or a user's test is handed to another process as the sha256 digest of its
bytes, never as a local path: the receiver fetches the bytes by digest and checks them against it.
``BlobStore`` is the interface (``put`` / ``get`` / ``has``); ``SqlBlobStore`` keeps blobs in the
``blobs`` table of the store, so a PostgreSQL deployment needs nothing else. An object store (S3,
GCS) would be another class with the same three methods.

``materialise`` turns a digest into a local file for programs that want a path (OpenSTA reads a
liberty file, cocotb imports a test module by its file name): written once per machine under a cache
folder, atomically, and checked against the digest before it is trusted.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from evoforge.errors import BadInputError, NotFoundError, StoreError
from evoforge.store._convert import DB_HINT
from evoforge.store.engine import Store
from evoforge.store.models import Blob, utcnow

DIGEST = re.compile(r"[0-9a-f]{64}")
#: the largest blob accepted (a liberty file of a big PDK corner is tens of MB)
MAX_BLOB_BYTES = 512 * 1024 * 1024


def digest_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_digest(digest: str) -> str:
    if not DIGEST.fullmatch(digest):
        raise BadInputError(f"{digest!r} is not a blob digest", hint="a blob is named by its sha256 in hex")
    return digest


class BlobStore(Protocol):
    """Bytes by their sha256 digest; ``put`` is idempotent and race-free."""

    def put(self, data: bytes) -> str: ...
    def get(self, digest: str) -> bytes: ...
    def has(self, digest: str) -> bool: ...


class SqlBlobStore:
    """Blobs in the store's ``blobs`` table (SQLite or PostgreSQL)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def put(self, data: bytes) -> str:
        if len(data) > MAX_BLOB_BYTES:
            raise BadInputError(
                f"a blob of {len(data)} bytes is larger than {MAX_BLOB_BYTES}", hint="use a smaller file"
            )
        digest = digest_of(data)
        if self.has(digest):
            return digest
        values = {"digest": digest, "size_bytes": len(data), "data": data, "created_at": utcnow()}
        with self.store.transaction() as session:
            dialect = session.get_bind().dialect.name
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            if dialect not in ("sqlite", "postgresql"):  # pragma: no cover - the two supported backends
                raise StoreError(f"blobs are not supported on {dialect}", hint="use SQLite or PostgreSQL")
            session.execute(insert(Blob).values(**values).on_conflict_do_nothing(index_elements=["digest"]))
        return digest

    def get(self, digest: str) -> bytes:
        check_digest(digest)
        with self.store.transaction() as session:
            data = session.scalar(select(Blob.data).where(Blob.digest == digest))
        if data is None:
            raise NotFoundError(
                f"blob {digest[:16]}… is not in the store",
                hint="the job was created against another database; check --db / EVOFORGE_DB",
            )
        data = bytes(data)
        if digest_of(data) != digest:
            raise StoreError(f"blob {digest[:16]}… does not match its digest (corrupted)", hint=DB_HINT)
        return data

    def has(self, digest: str) -> bool:
        check_digest(digest)
        with self.store.transaction() as session:
            return session.scalar(select(Blob.digest).where(Blob.digest == digest)) is not None


#: what a materialised file may be called (a user's test keeps its module name)
SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def materialise(blobs: BlobStore, digest: str, folder: Path, name: str) -> Path:
    """The blob as the file ``folder/<digest>/<name>``, fetched once and checked against its digest."""
    check_digest(digest)
    if not SAFE_NAME.fullmatch(name) or name in (".", ".."):
        raise BadInputError(f"{name!r} is not a usable file name for a blob", hint="rename the file")
    path = folder / digest / name
    if path.is_file() and digest_of(path.read_bytes()) == digest:
        return path
    data = blobs.get(digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".blob-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
