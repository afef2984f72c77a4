"""The sealed object format on its own (`services/diagnostics/envelope.py`): round trips at every
size around a chunk, resumable staging at arbitrary request boundaries (on both
storage backends), each kind of tampering, and memory that stays bounded however large
the file."""

from __future__ import annotations

import itertools
import os
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.diagnostics import envelope
from services.diagnostics.envelope import (
    CHUNK,
    HEADER_SIZE,
    RECORD,
    SealedStaged,
    SealedStaging,
    Tampered,
)
from services.diagnostics.storage import Storage
from services.diagnostics.storage.local import LocalStorage
from services.diagnostics.storage.s3 import S3Storage
from tests.fakes.s3 import BUCKET

MiB = 1024 * 1024
SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 17]


def seal(storage: Storage, data: bytes, key: bytes, piece: int = 10_000) -> str:
    staged = SealedStaged(storage.stage(), key)
    for start in range(0, len(data), piece):
        staged.write(data[start : start + piece])
    return staged.commit()


def raw_object(storage: LocalStorage, key: str) -> bytes:
    return (storage.root / "objects" / key).read_bytes()


def opened(storage: Storage, key: str, data_key: bytes) -> bytes:
    return b"".join(envelope.opened(storage.open(key), data_key))


@pytest.fixture
def local(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path)


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path)
    endpoint = request.getfixturevalue("s3_endpoint")
    return S3Storage(BUCKET, f"test-{uuid.uuid4().hex}/", endpoint_url=endpoint)


@pytest.mark.parametrize("size", SIZES)
def test_round_trip_at_every_size_around_a_chunk(local: LocalStorage, size: int):
    data, key = os.urandom(size), envelope.new_data_key()

    stored = seal(local, data, key)

    raw = raw_object(local, stored)
    assert len(raw) == envelope.sealed_size(size)
    assert raw.startswith(envelope.HEADER)
    assert opened(local, stored, key) == data


def test_nothing_of_the_plaintext_is_stored(local: LocalStorage):
    data = b"name,dob\nJan Peeters,1961-04-02\n" * 5000
    stored = seal(local, data, envelope.new_data_key())

    raw = raw_object(local, stored)
    assert b"Jan Peeters" not in raw and b"name,dob" not in raw


def test_another_data_key_opens_nothing(local: LocalStorage):
    stored = seal(local, b"x" * 1000, envelope.new_data_key())

    with pytest.raises(Tampered, match="record 0 fails authentication"):
        opened(local, stored, envelope.new_data_key())


def tampered(raw: bytes, how: str) -> bytes:
    records = [raw[at : at + RECORD] for at in range(HEADER_SIZE, len(raw), RECORD)]
    header = raw[:HEADER_SIZE]
    return {
        "flipped": raw[:-40] + bytes([raw[-40] ^ 1]) + raw[-39:],
        "swapped": header + records[1] + records[0] + b"".join(records[2:]),
        "repeated": header + records[0] + b"".join(records[:-1]) + records[-1],
        "cut-at-a-record": header + b"".join(records[:-1]),
        "cut-in-a-record": raw[:-10],
        "extended": raw + records[0],
        "no-header": raw[HEADER_SIZE:],
        "empty": b"",
    }[how]


@pytest.mark.parametrize(
    "how",
    [
        "flipped",
        "swapped",
        "repeated",
        "cut-at-a-record",
        "cut-in-a-record",
        "extended",
        "no-header",
        "empty",
    ],
)
def test_tampering_is_detected_before_the_bad_chunk_is_handed_on(local: LocalStorage, how: str):
    data, key = os.urandom(3 * CHUNK + 500), envelope.new_data_key()
    stored = seal(local, data, key)
    path = local.root / "objects" / stored
    path.write_bytes(tampered(path.read_bytes(), how))

    good = bytearray()
    with pytest.raises(Tampered):
        for piece in envelope.opened(local.open(stored), key):
            good += piece

    assert data.startswith(bytes(good)) and len(good) < len(data)


def test_chunks_of_another_object_do_not_open(local: LocalStorage):
    key = envelope.new_data_key()
    first = raw_object(local, seal(local, os.urandom(2 * CHUNK + 5), key))
    second_key = seal(local, os.urandom(2 * CHUNK + 5), envelope.new_data_key())
    second = raw_object(local, second_key)
    mixed = first[: HEADER_SIZE + RECORD] + second[HEADER_SIZE + RECORD :]
    (local.root / "objects" / second_key).write_bytes(mixed)

    with pytest.raises(Tampered, match="record 1"):
        opened(local, second_key, key)


def requests_of(data: bytes, cuts: list[int]) -> Iterator[tuple[int, bytes]]:
    bounds = [0, *cuts, len(data)]
    for start, end in itertools.pairwise(bounds):
        yield start, data[start:end]


@pytest.mark.parametrize(
    "cuts",
    [
        [],
        [100, CHUNK, CHUNK + 1, 2 * CHUNK + 7],  # mid-chunk, on a boundary, just past it
        [CHUNK - 1, 2 * CHUNK - 1],
        [7 * MiB],  # S3: a part large enough to be copied server-side
    ],
    ids=["one-request", "ragged", "just-short", "large"],
)
def test_staging_in_any_requests_promotes_to_a_sealed_object(storage: Storage, cuts: list[int]):
    data = os.urandom(max(3 * CHUNK + 333, (cuts[-1] + 1000) if cuts else 0))
    key, transfer = envelope.new_data_key(), uuid.uuid4()
    staging = SealedStaging(storage, key, len(data))

    for offset, body in requests_of(data, cuts):
        assert staging.staged_size(transfer) == offset
        written = staging.append(
            transfer, offset, [body[i : i + 5000] for i in range(0, len(body), 5000)]
        )
        assert written == len(body)
        assert b"".join(staging.read_staged(transfer)) == data[: offset + len(body)]

    stored = staging.promote(transfer)
    assert opened(storage, stored, key) == data
    assert b"".join(storage.open(stored)) != data
    if isinstance(storage, LocalStorage):
        assert len(raw_object(storage, stored)) == envelope.sealed_size(len(data))


def test_staging_never_holds_plaintext_between_requests(local: LocalStorage):
    data = b"Jan Peeters;" * 20_000
    transfer = uuid.uuid4()
    staging = SealedStaging(local, envelope.new_data_key(), len(data))

    staging.append(transfer, 0, [data[:5000]])  # inside the first chunk

    raw = (local.root / "tus" / transfer.hex).read_bytes()
    assert b"Jan Peeters" not in raw
    assert staging.staged_size(transfer) == 5000


def test_a_cut_after_a_failed_request_restores_the_tail(storage: Storage):
    """A request that wrote past the tail (sealing it into a full chunk) and is then
    refused: cutting back to the offset keeps exactly the bytes before it."""
    data = os.urandom(3 * CHUNK)
    transfer = uuid.uuid4()
    staging = SealedStaging(storage, envelope.new_data_key(), len(data))
    staging.append(transfer, 0, [data[:1000]])
    staging.append(transfer, 1000, [os.urandom(2 * CHUNK)])  # wrong bytes, refused later

    staging.append(transfer, 1000, ())

    assert staging.staged_size(transfer) == 1000
    assert b"".join(staging.read_staged(transfer)) == data[:1000]
    staging.append(transfer, 1000, [data[1000:]])
    assert b"".join(staging.read_staged(transfer)) == data


def test_an_interrupted_request_keeps_what_arrived_sealed(local: LocalStorage):
    data = os.urandom(2 * CHUNK)
    transfer = uuid.uuid4()
    staging = SealedStaging(local, envelope.new_data_key(), len(data))

    def dropped() -> Iterator[bytes]:
        yield data[: CHUNK + 300]
        raise ConnectionError("the phone lost its network")

    with pytest.raises(ConnectionError):
        staging.append(transfer, 0, dropped())

    assert staging.staged_size(transfer) == CHUNK + 300
    assert b"".join(staging.read_staged(transfer)) == data[: CHUNK + 300]


def test_a_cut_back_to_nothing_leaves_nothing(local: LocalStorage):
    transfer = uuid.uuid4()
    staging = SealedStaging(local, envelope.new_data_key(), 100)
    staging.append(transfer, 0, [b"x" * 50])

    staging.append(transfer, 0, ())

    assert (local.root / "tus" / transfer.hex).stat().st_size == 0


def test_memory_stays_bounded_whatever_the_size(local: LocalStorage):
    """64 MiB sealed, staged and opened in 1 MiB pieces: Python never holds more than a
    few pieces at once (tracemalloc counts every buffer)."""
    size, piece = 64 * MiB, os.urandom(MiB)
    key = envelope.new_data_key()
    tracemalloc.start()
    try:
        staged = SealedStaged(local.stage(), key)
        for _ in range(size // MiB):
            staged.write(piece)
        stored = staged.commit()
        transfer = uuid.uuid4()
        staging = SealedStaging(local, key, size)
        staging.append(transfer, 0, (piece for _ in range(size // MiB // 2)))
        staging.append(transfer, size // 2, (piece for _ in range(size // MiB // 2)))
        read = sum(len(chunk) for chunk in envelope.opened(local.open(stored), key))
        read += sum(len(chunk) for chunk in staging.read_staged(transfer))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert read == 2 * size
    assert peak < 8 * MiB, f"peak {peak / MiB:.1f} MiB"
