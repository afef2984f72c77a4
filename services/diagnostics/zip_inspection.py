"""ZIP archives inspected as their bytes stream in, before the upload is accepted.

A ZIP can promise little and inflate to terabytes (a zip bomb), or hide more entries
than it seems to hold. The inspector reads the archive front to back as the bytes
pass (the object being sealed into storage cannot be read back mid-upload, and S3
cannot read a multipart upload before it completes), inflating each entry in bounded
pieces and counting what comes out, never trusting the sizes the headers declare:

- at most `entries` entries, and the central directory must list exactly the entries
  the archive holds (overlapping entries, the trick of the densest bombs, do not);
- at most `uncompressed` bytes inflated in all;
- no entry inflating to more than `ratio` times its compressed size, once past
  `RATIO_FLOOR` (a small file of zeros compresses well and is harmless);
- only stored and deflated entries, not encrypted (neither can be inspected
  otherwise), not archives themselves (a ZIP inside a ZIP multiplies any limit), and
  a whole, well-formed archive: each entry's size and CRC-32 what its headers say.

Inflating stops at the first refusal, so a bomb costs no more than its limits. The
verdict is asked for once the last byte is in.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

LOCAL = b"PK\x03\x04"
CENTRAL = b"PK\x01\x02"
END = b"PK\x05\x06"
ZIP64_END = b"PK\x06\x06"
ZIP64_LOCATOR = b"PK\x06\x07"
DESCRIPTOR = b"PK\x07\x08"
_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")  # 30 bytes
_CENTRAL_HEADER = struct.Struct("<4sHHHHHHIIIHHHHHII")  # 46 bytes
_END_RECORD = struct.Struct("<4sHHHHIIH")  # 22 bytes
STORED, DEFLATED = 0, 8
ENCRYPTED, HAS_DESCRIPTOR = 0x1, 0x8
RATIO_FLOOR = 1024 * 1024
_OUT = 256 * 1024  # inflated bytes per step, so memory stays bounded
_NESTED = (".zip", ".jar", ".7z", ".rar", ".gz", ".tgz", ".bz2", ".xz", ".tar")
_UNKNOWN = 0xFFFFFFFF


@dataclass(frozen=True)
class ZipLimits:
    entries: int = 10_000
    uncompressed: int = 1024 * 1024 * 1024
    ratio: int = 100

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> ZipLimits:
        return cls(
            settings["DCT_ZIP_MAX_ENTRIES"],
            settings["DCT_ZIP_MAX_UNCOMPRESSED_BYTES"],
            settings["DCT_ZIP_MAX_RATIO"],
        )


class ZipInspector:
    """Fed every byte of a file in order; when the file is a ZIP, `problem` says why it
    may not be accepted (or None). Any other file is left alone."""

    def __init__(self, limits: ZipLimits) -> None:
        self.limits = limits
        self.entries = 0
        self.inflated = 0
        self._buffer = bytearray()
        self._step = self._start
        self._problem: str | None = None
        self._listed = 0  # entries in the central directory
        self._entry = _Entry("", 0, False, 0, None)
        self._inflater: Any = None

    @property
    def is_zip(self) -> bool:
        return self._step not in (self._start, self._other)

    def feed(self, chunk: bytes) -> None:
        if self._problem is not None or self._step in (self._other, self._done):
            return
        self._buffer += chunk
        try:
            while self._problem is None and self._step():
                pass
        except (struct.error, zlib.error, StopIteration) as exc:
            self._problem = f"the archive is malformed ({exc})"

    def problem(self) -> str | None:
        """Why the ZIP is refused, or None; asked once every byte was fed."""
        if not self.is_zip or self._problem is not None:
            return self._problem
        if self._step != self._done:
            return "the archive ends before its end record: it is cut short or not a ZIP"
        return None

    # Each step consumes what it can and says whether another step may follow now.

    def _start(self) -> bool:
        if len(self._buffer) < 4:
            return False
        self._step = self._signature if bytes(self._buffer[:4]) in (LOCAL, END) else self._other
        return True

    def _other(self) -> bool:
        self._buffer.clear()
        return False

    def _done(self) -> bool:
        self._buffer.clear()
        return False

    def _signature(self) -> bool:
        if len(self._buffer) < 4:
            return False
        signature = bytes(self._buffer[:4])
        steps = {
            LOCAL: self._local_header,
            CENTRAL: self._central_header,
            END: self._end_record,
            ZIP64_END: self._zip64_end,
            ZIP64_LOCATOR: self._zip64_locator,
        }
        if signature not in steps:
            return self._refuse("the archive holds bytes that are no ZIP record")
        self._step = steps[signature]
        return True

    def _local_header(self) -> bool:
        if len(self._buffer) < _LOCAL_HEADER.size:
            return False
        fields = _LOCAL_HEADER.unpack_from(self._buffer)
        _, _, flags, method, _, _, crc, compressed, size, name_length, extra_length = fields
        end = _LOCAL_HEADER.size + name_length + extra_length
        if len(self._buffer) < end:
            return False
        name = bytes(self._buffer[_LOCAL_HEADER.size : _LOCAL_HEADER.size + name_length])
        extra = bytes(self._buffer[_LOCAL_HEADER.size + name_length : end])
        del self._buffer[:end]
        shown = name.decode("utf-8", "replace")
        self.entries += 1
        if self.entries > self.limits.entries:
            return self._refuse(f"it holds more than {self.limits.entries} entries")
        if flags & ENCRYPTED:
            return self._refuse(f"entry {shown!r} is encrypted, so it cannot be inspected")
        if method not in (STORED, DEFLATED):
            return self._refuse(
                f"entry {shown!r} is compressed with method {method}: only stored and "
                "deflated entries can be inspected"
            )
        if shown.lower().endswith(_NESTED):
            return self._refuse(f"entry {shown!r} is itself an archive")
        zip64 = _zip64_sizes(extra, size, compressed)
        if zip64 is not None:
            size, compressed = zip64
        descriptor = bool(flags & HAS_DESCRIPTOR)
        if method == STORED and descriptor:
            return self._refuse(f"entry {shown!r} is stored with no length before its data")
        declared = None if descriptor else size
        self._entry = _Entry(shown, compressed, descriptor, 0, declared, zip64 is not None)
        self._entry.crc = None if descriptor else crc
        if method == STORED:
            self._step = self._stored
        else:
            self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            self._step = self._deflated
        return True

    def _stored(self) -> bool:
        entry = self._entry
        take = min(entry.remaining, len(self._buffer))
        if not self._count(bytes(self._buffer[:take]), take):
            return False
        del self._buffer[:take]
        entry.remaining -= take
        if entry.remaining:
            return False
        return self._entry_end()

    def _deflated(self) -> bool:
        data = bytes(self._buffer)
        self._buffer.clear()
        inflater = self._inflater
        while data and not inflater.eof:
            out = inflater.decompress(data, _OUT)
            rest = inflater.unconsumed_tail or inflater.unused_data
            if not self._count(out, len(data) - len(rest)):
                return False
            data = inflater.unconsumed_tail
        if not inflater.eof:
            return False
        self._buffer[:0] = inflater.unused_data
        return self._entry_end()

    def _count(self, out: bytes, consumed: int) -> bool:
        """Add an entry's inflated bytes; False once a limit is passed."""
        entry = self._entry
        if entry.inflated == 0 and out[:4] in (LOCAL, END) and len(out) >= 4:
            return self._refuse(f"entry {entry.name!r} is itself an archive")
        entry.inflated += len(out)
        entry.consumed += consumed
        entry.running_crc = zlib.crc32(out, entry.running_crc)
        self.inflated += len(out)
        if self.inflated > self.limits.uncompressed:
            return self._refuse(f"it inflates to more than {self.limits.uncompressed} bytes in all")
        ratio = entry.inflated / max(entry.consumed, 1)
        if entry.inflated > RATIO_FLOOR and ratio > self.limits.ratio:
            return self._refuse(
                f"entry {entry.name!r} inflates to more than {self.limits.ratio} times its "
                "compressed size"
            )
        return True

    def _entry_end(self) -> bool:
        entry = self._entry
        if entry.declared is not None and entry.declared != entry.inflated:
            return self._refuse(
                f"entry {entry.name!r} declares {entry.declared} bytes but inflates to "
                f"{entry.inflated}"
            )
        if entry.crc is not None and entry.crc != entry.running_crc:
            return self._damaged()
        self._step = self._descriptor if entry.descriptor else self._signature
        return True

    def _damaged(self) -> bool:
        return self._refuse(f"entry {self._entry.name!r} fails its CRC-32: it is damaged")

    def _descriptor(self) -> bool:
        """CRC-32 and sizes after the data; the signature before them is optional."""
        if len(self._buffer) < 4:
            return False
        start = 4 if bytes(self._buffer[:4]) == DESCRIPTOR else 0
        size = start + (20 if self._entry.zip64 else 12)
        if len(self._buffer) < size:
            return False
        (crc,) = struct.unpack_from("<I", self._buffer, start)
        del self._buffer[:size]
        if crc != self._entry.running_crc:
            return self._damaged()
        self._step = self._signature
        return True

    def _central_header(self) -> bool:
        if len(self._buffer) < _CENTRAL_HEADER.size:
            return False
        fields = _CENTRAL_HEADER.unpack_from(self._buffer)
        size = _CENTRAL_HEADER.size + fields[10] + fields[11] + fields[12]
        if len(self._buffer) < size:
            return False
        del self._buffer[:size]
        self._listed += 1
        self._step = self._signature
        return True

    def _zip64_end(self) -> bool:
        if len(self._buffer) < 12:
            return False
        (record,) = struct.unpack_from("<Q", self._buffer, 4)
        if len(self._buffer) < 12 + record:
            return False
        del self._buffer[: 12 + record]
        self._step = self._signature
        return True

    def _zip64_locator(self) -> bool:
        if len(self._buffer) < 20:
            return False
        del self._buffer[:20]
        self._step = self._signature
        return True

    def _end_record(self) -> bool:
        if len(self._buffer) < _END_RECORD.size:
            return False
        total = _END_RECORD.unpack_from(self._buffer)[4]
        if self._listed != self.entries or (total != 0xFFFF and total != self.entries):
            return self._refuse(
                f"its central directory lists {self._listed} entries but it holds {self.entries}"
            )
        self._step = self._done
        return True

    def _refuse(self, why: str) -> bool:
        self._problem = why
        self._inflater = None
        self._buffer.clear()
        return False


@dataclass
class _Entry:
    name: str
    remaining: int  # stored: data bytes still to come
    descriptor: bool
    inflated: int
    declared: int | None
    zip64: bool = False
    consumed: int = 0
    crc: int | None = None  # as declared before the data; None: it follows the data
    running_crc: int = 0


def _zip64_sizes(extra: bytes, size: int, compressed: int) -> tuple[int, int] | None:
    """The sizes of a ZIP64 extra field (0x0001), each present when its 32-bit field is
    0xFFFFFFFF; None without one."""
    at = 0
    while at + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, at)
        if tag == 1:
            values = iter(struct.unpack_from(f"<{length // 8}Q", extra, at + 4))
            size = next(values) if size == _UNKNOWN else size
            compressed = next(values) if compressed == _UNKNOWN else compressed
            return size, compressed
        at += 4 + length
    return None
