"""Every storage behaviour on both backends: a local folder, and S3 as served by moto's
server (real HTTP through boto3, so multipart limits such as the 5 MiB part minimum
apply as on AWS)."""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from api import config
from services.diagnostics.storage import CHUNK, Storage, make_storage
from services.diagnostics.storage.local import LocalStorage
from services.diagnostics.storage.s3 import S3Storage
from tests.fakes.s3 import BUCKET

MiB = 1024 * 1024


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path)
    endpoint = request.getfixturevalue("s3_endpoint")
    # A prefix per test: tests share the bucket but never see each other's objects.
    prefix = f"test-{uuid.uuid4().hex}/"
    return S3Storage(BUCKET, prefix, endpoint_url=endpoint, region="us-east-1")


def stored(storage: Storage) -> set[str]:
    """Everything the backend holds, relative to its root or prefix; an S3 multipart
    upload still pending counts too (it holds parts, and costs)."""
    if isinstance(storage, LocalStorage):
        return {
            path.relative_to(storage.root).as_posix()
            for path in storage.root.rglob("*")
            if path.is_file()
        }
    assert isinstance(storage, S3Storage)
    client, prefix = storage.client, storage.prefix
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    pending = client.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix).get("Uploads", [])
    return {item["Key"].removeprefix(prefix) for item in listed} | {
        "pending:" + upload["Key"].removeprefix(prefix) for upload in pending
    }


def etag(storage: S3Storage, key: str) -> str:
    head = storage.client.head_object(Bucket=BUCKET, Key=f"{storage.prefix}objects/{key}")
    return head["ETag"].strip('"')


def read(chunks: Iterable[bytes]) -> bytes:
    return b"".join(chunks)


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[start : start + size] for start in range(0, len(data), size)]


def failing(chunks: list[bytes]) -> Iterator[bytes]:
    """A request body whose client goes away after sending `chunks`."""
    yield from chunks
    raise ConnectionError("client went away")


def test_round_trip_streams_a_large_file_in_parts(storage: Storage) -> None:
    data = os.urandom(20 * MiB)
    staged = storage.stage()
    for chunk in pieces(data, 64 * 1024):
        staged.write(chunk)
    if isinstance(storage, S3Storage):  # two full 8 MiB parts sent, the rest buffered
        (upload,) = storage.client.list_multipart_uploads(Bucket=BUCKET, Prefix=storage.prefix)[
            "Uploads"
        ]
        parts = storage.client.list_parts(
            Bucket=BUCKET, Key=upload["Key"], UploadId=upload["UploadId"]
        )["Parts"]
        assert [part["Size"] for part in parts] == [8 * MiB, 8 * MiB]

    key = staged.commit()

    assert stored(storage) == {f"objects/{key}"}
    chunks = list(storage.open(key))
    assert max(len(chunk) for chunk in chunks) <= CHUNK
    assert hashlib.sha256(read(chunks)).digest() == hashlib.sha256(data).digest()
    if isinstance(storage, S3Storage):
        assert etag(storage, key).endswith("-3")


@pytest.mark.parametrize("size", [0, 1000])
def test_small_file_round_trip(storage: Storage, size: int) -> None:
    data = os.urandom(size)
    staged = storage.stage()
    staged.write(data)
    key = staged.commit()

    assert read(storage.open(key)) == data
    assert stored(storage) == {f"objects/{key}"}
    if isinstance(storage, S3Storage):  # one put_object, no multipart upload
        assert "-" not in etag(storage, key)


@pytest.mark.parametrize("size", [1000, 9 * MiB])
def test_discard_leaves_nothing(storage: Storage, size: int) -> None:
    staged = storage.stage()
    for chunk in pieces(os.urandom(size), MiB):
        staged.write(chunk)

    staged.discard()

    assert stored(storage) == set()


def test_keys_are_fresh_opaque_hex(storage: Storage) -> None:
    keys = []
    for _ in range(2):
        staged = storage.stage()
        staged.write(b"same content, same client file name")
        keys.append(staged.commit())

    assert keys[0] != keys[1]
    assert all(re.fullmatch(r"[0-9a-f]{32}", key) for key in keys)
    for not_ours in ("../objects/" + keys[0], "tmp/x", "", uuid.uuid4().hex):
        with pytest.raises(FileNotFoundError):
            read(storage.open(not_ours))


def test_tus_append_keeps_what_a_failed_request_wrote(storage: Storage) -> None:
    transfer = uuid.uuid4()
    data = os.urandom(17 * MiB + 500 * 1024)
    cut = 17 * MiB + 300 * 1024
    first, interrupted, rest = data[: 17 * MiB], data[17 * MiB : cut], data[cut:]

    assert storage.append(transfer, 0, pieces(first, MiB)) == len(first)
    with pytest.raises(ConnectionError):
        storage.append(transfer, len(first), failing(pieces(interrupted, 100 * 1024)))
    assert storage.staged_size(transfer) == len(first) + len(interrupted)
    offset = storage.staged_size(transfer)
    assert storage.append(transfer, offset, pieces(rest, 64 * 1024)) == len(rest)

    assert storage.staged_size(transfer) == len(data)
    assert read(storage.read_staged(transfer)) == data
    if isinstance(storage, S3Storage):  # 16 MiB split, one part per request otherwise
        assert stored(storage) == {
            f"tus/{transfer.hex}/{start:020d}"
            for start in (0, 16 * MiB, len(first), len(first) + len(interrupted))
        }
    key = storage.promote(transfer)
    assert read(storage.open(key)) == data
    assert stored(storage) == {f"objects/{key}"}


def test_tus_append_drops_a_tail_the_caller_never_accounted(storage: Storage) -> None:
    transfer = uuid.uuid4()
    storage.append(transfer, 0, [b"a" * 400])
    storage.append(transfer, 400, [b"b" * 600])

    storage.append(transfer, 700, [b"c" * 50])

    assert storage.staged_size(transfer) == 750
    assert read(storage.read_staged(transfer)) == b"a" * 400 + b"b" * 300 + b"c" * 50


@pytest.mark.parametrize(
    ("requests", "multipart_parts"),
    [
        ([6 * MiB, 6 * MiB, MiB], 3),  # parts S3 accepts: copied server-side, one by one
        ([MiB] * 9, 2),  # parts below 5 MiB: streamed again in 8 MiB parts
    ],
)
def test_promote_gives_the_exact_bytes(
    storage: Storage, requests: list[int], multipart_parts: int
) -> None:
    transfer = uuid.uuid4()
    data = os.urandom(sum(requests))
    offset = 0
    for size in requests:
        storage.append(transfer, offset, pieces(data[offset : offset + size], MiB))
        offset += size

    key = storage.promote(transfer)

    assert read(storage.open(key)) == data
    assert stored(storage) == {f"objects/{key}"}
    if isinstance(storage, S3Storage):
        assert etag(storage, key).endswith(f"-{multipart_parts}")


def test_drop_staged_leaves_nothing(storage: Storage) -> None:
    transfer = uuid.uuid4()
    storage.append(transfer, 0, [os.urandom(1000)])
    with pytest.raises(ConnectionError):
        storage.append(transfer, 1000, failing([os.urandom(10)]))

    storage.drop_staged(transfer)

    assert storage.staged_size(transfer) == 0
    assert stored(storage) == set()


def test_s3_ignores_parts_past_a_gap_and_drops_them_on_append(s3_endpoint: str) -> None:
    storage = S3Storage(BUCKET, f"test-{uuid.uuid4().hex}/", endpoint_url=s3_endpoint)
    transfer = uuid.uuid4()
    storage.append(transfer, 0, [b"a" * 100])
    stray = f"{storage.prefix}tus/{transfer.hex}/{150:020d}"
    storage.client.put_object(Bucket=BUCKET, Key=stray, Body=b"x" * 10)

    assert storage.staged_size(transfer) == 100
    assert read(storage.read_staged(transfer)) == b"a" * 100
    storage.append(transfer, 100, [b"b" * 50])
    assert read(storage.read_staged(transfer)) == b"a" * 100 + b"b" * 50
    assert stored(storage) == {f"tus/{transfer.hex}/{0:020d}", f"tus/{transfer.hex}/{100:020d}"}


def test_make_storage_builds_s3_from_settings() -> None:
    settings = config.load(
        {
            "DCT_STORAGE_BACKEND": "s3",
            "DCT_S3_BUCKET": "trial-files",
            "DCT_S3_PREFIX": "site-a/",
            "DCT_S3_ENDPOINT_URL": "http://127.0.0.1:9000",
            "DCT_S3_REGION": "eu-central-1",
        }
    )

    storage = make_storage(settings)

    assert isinstance(storage, S3Storage)
    assert (storage.name, storage.bucket, storage.prefix) == ("s3", "trial-files", "site-a/")
    assert storage.client.meta.endpoint_url == "http://127.0.0.1:9000"
    assert storage.client.meta.region_name == "eu-central-1"


def test_make_storage_defaults_to_the_local_folder(tmp_path: Path) -> None:
    storage = make_storage(
        config.load({"DCT_STORAGE_BACKEND": "local", "DCT_UPLOAD_DIR": str(tmp_path)})
    )

    assert isinstance(storage, LocalStorage)
    assert storage.root == tmp_path


def test_config_refuses_s3_without_a_bucket() -> None:
    with pytest.raises(RuntimeError, match="DCT_S3_BUCKET"):
        config.load({"DCT_STORAGE_BACKEND": "s3", "DCT_S3_BUCKET": ""})
