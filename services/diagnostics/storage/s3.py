"""S3-compatible object storage (AWS S3, MinIO, Ceph...) behind the `Storage` protocol of
`services/diagnostics/storage/__init__.py`, for deployments with several app instances or
no durable disk.

Layout under the configured prefix:
- `objects/<hex key>`: committed files;
- `tus/<transfer hex>/<offset, 20 digits>`: a resumable transfer's parts, one object per
  request (or per 16 MiB of it), named by the offset of its first byte.

S3 has no rename, so a file being written goes straight to a fresh, random final key: a
multipart upload is invisible until completed, and a completed object is still unreachable
until the database row that names its key commits (keys are random, never derived from
input). Nothing is therefore written under `tmp/`; uploads a crashed process never
completed or aborted are left to the bucket's AbortIncompleteMultipartUpload lifecycle
rule. Credentials come from the standard AWS environment, config files or instance role.
"""

from __future__ import annotations

import uuid
from collections.abc import Generator, Iterable, Iterator
from typing import Any, NamedTuple

import boto3

from services.diagnostics.storage import CHUNK, Staged, new_key

STAGE_PART = 8 * 1024 * 1024  # a staged file's multipart part size
TUS_PART = 16 * 1024 * 1024  # largest tus part object one request buffers before writing
COPY_PART_MIN = 5 * 1024 * 1024  # S3's smallest part, except the last
MAX_PARTS = 10_000  # S3's most parts in one multipart upload


class _Part(NamedTuple):
    offset: int
    size: int
    key: str


class _S3Staged:
    """Streams into a multipart upload in `STAGE_PART` pieces, so memory holds at most one
    part; a file smaller than one part is a single `put_object` at commit."""

    def __init__(self, client: Any, bucket: str, key: str) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    def write(self, chunk: bytes | bytearray) -> None:
        self._buffer += chunk
        while len(self._buffer) >= STAGE_PART:
            self._upload_part(bytes(self._buffer[:STAGE_PART]))
            del self._buffer[:STAGE_PART]

    def _upload_part(self, body: bytes) -> None:
        if self._upload_id is None:
            created = self._client.create_multipart_upload(Bucket=self._bucket, Key=self._key)
            self._upload_id = created["UploadId"]
        number = len(self._parts) + 1
        uploaded = self._client.upload_part(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=body,
        )
        self._parts.append({"PartNumber": number, "ETag": uploaded["ETag"]})

    def commit(self) -> str:
        if self._upload_id is None:
            self._client.put_object(Bucket=self._bucket, Key=self._key, Body=bytes(self._buffer))
        else:
            if self._buffer:
                self._upload_part(bytes(self._buffer))
            self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        self._buffer.clear()
        self._upload_id = None
        return self._key.rsplit("/", 1)[1]

    def discard(self) -> None:
        """After a commit there is nothing left to discard (as with a local file)."""
        self._buffer.clear()
        if self._upload_id is not None:
            self._client.abort_multipart_upload(
                Bucket=self._bucket, Key=self._key, UploadId=self._upload_id
            )
            self._upload_id = None


class S3Storage:
    """One bucket and key prefix; thread-safe as the boto3 client is."""

    name = "s3"

    def __init__(
        self,
        bucket: str,
        prefix: str,
        endpoint_url: str | None = None,
        region: str | None = None,
        client: Any = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.client = client or boto3.client("s3", endpoint_url=endpoint_url, region_name=region)

    def _object(self, key: str) -> str:
        if not key.isalnum():  # keys are ours (hex); anything else is not a key
            raise FileNotFoundError(key)
        return f"{self.prefix}objects/{key}"

    def _transfer(self, transfer_id: uuid.UUID) -> str:
        return f"{self.prefix}tus/{transfer_id.hex}/"

    def stage(self) -> Staged:
        return _S3Staged(self.client, self.bucket, self._object(new_key()))

    def open(self, key: str) -> Iterator[bytes]:
        yield from self._read(self._object(key))

    def _read(self, object_key: str, byte_range: str | None = None) -> Iterator[bytes]:
        ranged = {"Range": byte_range} if byte_range else {}
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=object_key, **ranged)["Body"]
        except self.client.exceptions.NoSuchKey:
            raise FileNotFoundError(object_key) from None
        try:
            yield from body.iter_chunks(CHUNK)
        finally:
            body.close()

    # Resumable (tus) transfers

    def _listed_parts(self, transfer_id: uuid.UUID) -> list[_Part]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._transfer(transfer_id)
        )
        parts = [
            _Part(int(item["Key"].rsplit("/", 1)[1]), item["Size"], item["Key"])
            for page in pages
            for item in page.get("Contents", [])
        ]
        return sorted(parts)

    def _chain(self, transfer_id: uuid.UUID) -> tuple[list[_Part], list[_Part]]:
        """The parts that continue each other from offset 0, and the rest: a part past a
        gap or overlapping another (a request that never finished) holds no counted byte."""
        chain: list[_Part] = []
        stray: list[_Part] = []
        end = 0
        for part in self._listed_parts(transfer_id):
            if part.offset == end and part.size:
                chain.append(part)
                end += part.size
            else:
                stray.append(part)
        return chain, stray

    def _delete(self, object_keys: list[str]) -> None:
        for start in range(0, len(object_keys), 1000):  # DeleteObjects' limit per call
            batch = [{"Key": key} for key in object_keys[start : start + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    def _truncate(self, transfer_id: uuid.UUID, offset: int) -> None:
        """Keep exactly the first `offset` bytes, as the local backend's truncate does, so
        a tail the caller never accounted for is dropped."""
        chain, stray = self._chain(transfer_id)
        size = sum(part.size for part in chain)
        if offset > size:
            raise ValueError(f"offset {offset} is past the {size} staged bytes")
        self._delete([p.key for p in stray] + [p.key for p in chain if p.offset >= offset])
        cut = next((p for p in chain if p.offset < offset < p.offset + p.size), None)
        if cut is not None:  # at most TUS_PART bytes, so reading it whole is bounded
            kept = self.client.get_object(
                Bucket=self.bucket, Key=cut.key, Range=f"bytes=0-{offset - cut.offset - 1}"
            )["Body"].read()
            self.client.put_object(Bucket=self.bucket, Key=cut.key, Body=kept)

    def _put_part(self, transfer_id: uuid.UUID, offset: int, body: bytes) -> None:
        key = f"{self._transfer(transfer_id)}{offset:020d}"
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body)

    def append(
        self, transfer_id: uuid.UUID, offset: int, chunks: Iterable[bytes | bytearray]
    ) -> int:
        """One part object per request, split every `TUS_PART` bytes; on a failure the
        bytes received so far are still written as a part before the error propagates."""
        self._truncate(transfer_id, offset)
        written = 0
        buffer = bytearray()
        try:
            for chunk in chunks:
                buffer += chunk
                while len(buffer) >= TUS_PART:
                    self._put_part(transfer_id, offset + written, bytes(buffer[:TUS_PART]))
                    written += TUS_PART
                    del buffer[:TUS_PART]
        finally:
            if buffer:
                self._put_part(transfer_id, offset + written, bytes(buffer))
                written += len(buffer)
        return written

    def staged_size(self, transfer_id: uuid.UUID) -> int:
        chain, _ = self._chain(transfer_id)
        return sum(part.size for part in chain)

    def read_staged(self, transfer_id: uuid.UUID, start: int = 0) -> Generator[bytes, None, None]:
        chain, _ = self._chain(transfer_id)
        for part in chain:
            if part.offset + part.size <= start:
                continue
            skip = max(start - part.offset, 0)
            yield from self._read(part.key, f"bytes={skip}-" if skip else None)

    def promote(self, transfer_id: uuid.UUID) -> str:
        """Server-side copy when S3 accepts the parts as multipart parts (all but the last
        at least 5 MiB), otherwise streamed through a staged object."""
        chain, _ = self._chain(transfer_id)
        copyable = len(chain) <= MAX_PARTS and all(p.size >= COPY_PART_MIN for p in chain[:-1])
        key = self._copy(chain) if chain and copyable else self._stream(transfer_id)
        self.drop_staged(transfer_id)
        return key

    def _copy(self, chain: list[_Part]) -> str:
        key = new_key()
        target = self._object(key)
        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=target)["UploadId"]
        try:
            parts = [
                {
                    "PartNumber": number,
                    "ETag": self.client.upload_part_copy(
                        Bucket=self.bucket,
                        Key=target,
                        UploadId=upload_id,
                        PartNumber=number,
                        CopySource={"Bucket": self.bucket, "Key": part.key},
                    )["CopyPartResult"]["ETag"],
                }
                for number, part in enumerate(chain, start=1)
            ]
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=target,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=target, UploadId=upload_id)
            raise
        return key

    def _stream(self, transfer_id: uuid.UUID) -> str:
        staged = self.stage()
        try:
            for chunk in self.read_staged(transfer_id):
                staged.write(chunk)
            return staged.commit()
        except BaseException:
            staged.discard()
            raise

    def drop_staged(self, transfer_id: uuid.UUID) -> None:
        self._delete([part.key for part in self._listed_parts(transfer_id)])
