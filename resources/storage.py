"""Where the offline store keeps its files: a local folder or an S3 prefix, behind one pyarrow
filesystem.

Locations are URIs as DuckDB and users see them: an absolute path, or `s3://bucket/key`.
DuckDB reads and writes `s3://` through fsspec's wrapper of the same pyarrow filesystem,
registered on each connection (its own httpfs extension is a download, which machines without
internet cannot make, and would need its own credentials setup).

What differs between the two is one thing: S3 has no rename. An object appears whole when
its upload completes, so a write is atomic there as a rename is on disk, but a day cannot
be switched by replacing a file under a fixed name while readers hold the old one open
(resources/offline_store.py keeps a manifest per day on S3).
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import duckdb
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from fsspec.implementations.arrow import ArrowFSWrapper

from feature_assets.kernel.errors import StoreUnavailableError

S3_SCHEME = "s3://"
# pyarrow's default is 3 attempts; a busy endpoint deserves botocore's standard count.
S3_MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class StoredFile:
    uri: str
    name: str
    modified_ns: int


class Storage:
    """A root folder (local or `s3://bucket/prefix`) and the few operations the offline store
    needs on it."""

    def __init__(
        self,
        root: str | Path,
        *,
        s3_endpoint: str | None = None,
        region: str | None = None,
        max_attempts: int = S3_MAX_ATTEMPTS,
    ) -> None:
        text = str(root)
        self.remote = text.startswith(S3_SCHEME)
        if self.remote:
            self.root = text.rstrip("/")
            credentials = {}
            if s3_endpoint and boto3.Session().get_credentials() is None:
                # A local server accepts any credentials; AWS uses the normal credential chain.
                credentials = {"access_key": "local", "secret_key": "local"}
            self.fs: pafs.FileSystem = pafs.S3FileSystem(
                **credentials,
                endpoint_override=s3_endpoint or None,
                scheme="http" if (s3_endpoint or "").startswith("http://") else "https",
                region=region,
                retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=max_attempts),
            )
        else:
            self.root = text
            self.fs = pafs.LocalFileSystem()

    def uri(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def path(self, uri: str) -> str:
        return uri.removeprefix(S3_SCHEME) if self.remote else uri

    def _uri(self, path: str) -> str:
        return S3_SCHEME + path if self.remote else path

    # --- reads ------------------------------------------------------------------------------

    def exists(self, uri: str) -> bool:
        return self.fs.get_file_info(self.path(uri)).type == pafs.FileType.File

    def files(self, prefix: str) -> list[StoredFile]:
        """Every file under the folder `prefix`, at any depth (none when it does not exist)."""
        selector = pafs.FileSelector(
            self.path(prefix.rstrip("/")), recursive=True, allow_not_found=True
        )
        with self._reaching(prefix):
            found = self.fs.get_file_info(selector)
            if not found and self.remote:
                self._check_bucket()
        return [
            StoredFile(self._uri(info.path), info.base_name, info.mtime_ns or 0)
            for info in found
            if info.type == pafs.FileType.File
        ]

    def read_text(self, uri: str) -> str | None:
        """The file's text, or None when there is no such file."""
        try:
            with self._reaching(uri), self.fs.open_input_stream(self.path(uri)) as stream:
                return stream.read().decode()
        except FileNotFoundError:
            return None

    def sha256(self, uri: str) -> str:
        sha = hashlib.sha256()
        with self.fs.open_input_stream(self.path(uri)) as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                sha.update(block)
        return sha.hexdigest()

    def read_table(self, uri: str) -> pa.Table:
        return pq.read_table(self.path(uri), filesystem=self.fs)

    def modified_ns(self, uri: str) -> int:
        return self.fs.get_file_info(self.path(uri)).mtime_ns or 0

    # --- writes: each one whole or not at all -----------------------------------------------

    def write_text(self, uri: str, text: str) -> None:
        self._write(uri, lambda sink: sink.write(text.encode()))

    def write_table(self, table: pa.Table, uri: str) -> None:
        self._write(uri, lambda sink: pq.write_table(table, sink))

    def put(self, local: Path, uri: str) -> None:
        """Move a finished local file to `uri` (a rename on disk, an upload to S3)."""
        if not self.remote:
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
            local.replace(uri)
            return
        with self._reaching(uri):
            pafs.copy_files(
                str(local),
                self.path(uri),
                source_filesystem=pafs.LocalFileSystem(),
                destination_filesystem=self.fs,
            )
        local.unlink()

    def _write(self, uri: str, write) -> None:
        if self.remote:  # an S3 object appears when its upload completes: never half of one
            with self._reaching(uri), self.fs.open_output_stream(self.path(uri)) as sink:
                write(sink)
            return
        final = Path(uri)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex[:8]}")
        with self.fs.open_output_stream(str(tmp)) as sink:
            write(sink)
        tmp.replace(final)

    def delete(self, uri: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_file(self.path(uri))

    def _check_bucket(self) -> None:
        """A root in a bucket that does not exist is a mistake, not an empty store."""
        bucket = self.root.removeprefix(S3_SCHEME).split("/")[0]
        if self.fs.get_file_info(bucket).type == pafs.FileType.NotFound:
            raise StoreUnavailableError(
                f"offline root {self.root}: bucket {bucket!r} does not exist"
            )

    @contextlib.contextmanager
    def _reaching(self, uri: str) -> Iterator[None]:
        """S3 errors other than a missing file become the store's own, naming the root and
        the location (which names the table)."""
        try:
            yield
        except FileNotFoundError:
            raise
        except OSError as error:
            if not self.remote:
                raise
            raise StoreUnavailableError(
                f"offline root {self.root}: cannot use {uri}: {error}"
            ) from error

    # --- DuckDB -----------------------------------------------------------------------------

    def register(self, con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
        """Let `con` read and write this root's URIs."""
        if self.remote:
            con.register_filesystem(ArrowFSWrapper(self.fs))
        return con
