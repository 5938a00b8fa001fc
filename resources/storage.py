"""Where the offline store keeps its files: a local folder or an S3 prefix, behind one pyarrow
filesystem.

Locations are URIs as users see them: an absolute path, or `s3://bucket/key`. DuckDB reads
an S3 root's files as Arrow datasets over this filesystem (`dataset`), never by URI: its own
httpfs extension is a download at first use, which machines without internet cannot make,
and would need its own credentials setup.

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
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from feature_assets.kernel.errors import StoreUnavailableError

S3_SCHEME = "s3://"
# pyarrow's default is 3 attempts; the same 8 as the DynamoDB client's (settings).
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
        # What listings found, by path: a dataset given a file's size skips a HEAD request.
        # Data and push files are never rewritten (each has a name of its own), so an entry
        # cannot go stale for them, the only files read as datasets.
        self._listed: dict[str, pafs.FileInfo] = {}
        # Once the bucket is known to exist, an empty listing is an empty folder.
        self._bucket_seen = False
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

    def files(self, prefix: str) -> list[StoredFile]:
        """Every file under the folder `prefix`, at any depth (none when it does not exist)."""
        selector = pafs.FileSelector(
            self.path(prefix.rstrip("/")), recursive=True, allow_not_found=True
        )
        with self._reaching(prefix):
            found = self.fs.get_file_info(selector)
            if not found and self.remote and not self._bucket_seen:
                self._check_bucket()
        self._bucket_seen = self._bucket_seen or bool(found)
        files = [info for info in found if info.type == pafs.FileType.File]
        if self.remote:
            self._listed.update((info.path, info) for info in files)
        return [StoredFile(self._uri(i.path), i.base_name, i.mtime_ns or 0) for i in files]

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

    def dataset(self, uris: list[str]) -> ds.Dataset:
        """The Parquet files as one Arrow dataset (columns matched by name)."""
        paths = [self.path(u) for u in uris]
        known = [self._listed.get(p) for p in paths]
        sources = known if all(known) else paths
        with self._reaching(uris[0]):
            return ds.dataset(sources, filesystem=self.fs, format="parquet")

    def column_bounds(self, dataset: ds.Dataset, column: str) -> dict[str, tuple[Any, Any] | None]:
        """Per file of `dataset` with rows, the least and greatest value of `column` by its
        statistics (None when they are missing). The footers read stay with the dataset."""
        bounds: dict[str, tuple[Any, Any] | None] = {}
        for fragment in dataset.get_fragments():
            uri = self._uri(fragment.path)
            with self._reaching(uri):
                metadata = fragment.metadata
            index = metadata.schema.to_arrow_schema().get_field_index(column)
            groups = [metadata.row_group(g) for g in range(metadata.num_row_groups)]
            stats = [g.column(index).statistics for g in groups if g.num_rows]
            if not stats:
                continue  # no rows
            if all(s is not None and s.has_min_max for s in stats):
                bounds[uri] = (min(s.min for s in stats), max(s.max for s in stats))
            else:
                bounds[uri] = None
        return bounds

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
        self._bucket_seen = True

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
