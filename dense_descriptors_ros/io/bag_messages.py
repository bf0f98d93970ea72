"""Raw messages of one topic of a rosbag2: read with ``rosbags``, or salvaged record by record from a damaged bag.

A bag that ``rosbags`` cannot open (a truncated .mcap or .db3 file, no metadata.yaml after a crash) is read from its
storage files directly: the messages that can be read are returned and a warning says what was skipped.
"""

from __future__ import annotations

import io
import logging
import shutil
import sqlite3
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path

from rosbags.highlevel import AnyReader

from dense_descriptors_ros.io.bag_writer import jazzy_typestore

log = logging.getLogger(__name__)

BAG_SUFFIXES = (".mcap", ".db3")


class BagMessages:
    """(receive_ns, raw CDR) of one topic, through rosbags, or salvaged when rosbags cannot open the bag."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.topics: dict[str, str] = {}
        self._reader: AnyReader | None = None
        self._salvage: _SalvagedBag | None = None

    def __enter__(self) -> BagMessages:
        bag_dir = self.path if self.path.is_dir() else None
        if bag_dir is not None and (bag_dir / "metadata.yaml").is_file():
            try:
                self._reader = AnyReader([bag_dir], default_typestore=jazzy_typestore())
                self._reader.open()
                self.topics = {c.topic: c.msgtype for c in self._reader.connections}
                return self
            except Exception as exc:  # rosbags raises ReaderError and also raw struct/sqlite errors
                log.warning("%s: rosbags cannot open it (%s); salvaging readable messages", self.path, exc)
                self._reader = None
        elif bag_dir is not None:
            log.warning("%s: no metadata.yaml (bag not closed?); salvaging readable messages", self.path)
        self._salvage = _SalvagedBag(self.path)
        self.topics = self._salvage.topics
        return self

    def read(self, topic: str) -> Iterator[tuple[int, bytes]]:
        if self._salvage is not None:
            yield from self._salvage.read(topic)
            return
        assert self._reader is not None
        connections = [c for c in self._reader.connections if c.topic == topic]
        count = 0
        try:
            for _, receive_ns, raw in self._reader.messages(connections=connections):
                count += 1
                yield receive_ns, bytes(raw)
        except Exception as exc:  # a damaged chunk or page met while iterating
            log.warning("%s: stopped after %d message(s) of %s: %s; the rest was skipped", self.path, count, topic, exc)

    def __exit__(self, *exc_info: object) -> None:
        if self._reader is not None:
            self._reader.close()
        if self._salvage is not None:
            self._salvage.close()


class _SalvagedBag:
    """Reads what it can from the .mcap / .db3 storage files of a damaged bag, warning about the rest."""

    def __init__(self, path: Path) -> None:
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix in BAG_SUFFIXES)
        else:
            files = [path] if path.suffix in BAG_SUFFIXES else []
        if not files:
            raise ValueError(f"{path}: not a rosbag2 (no metadata.yaml and no .mcap/.db3 storage file)")
        self.files = files
        self.topics: dict[str, str] = {}
        self._tmp = Path(tempfile.mkdtemp(prefix="ddr_bag_salvage_"))
        self._sources: list[_McapSalvage | _SqliteSalvage] = []
        try:
            for f in files:
                self._sources.append(_McapSalvage(f) if f.suffix == ".mcap" else _SqliteSalvage(f, self._tmp))
        except BaseException:
            self.close()  # a file beyond salvage must not leave the copies of the others in the temp folder
            raise
        for source in self._sources:
            self.topics.update(source.topics)

    def read(self, topic: str) -> Iterator[tuple[int, bytes]]:
        for source in self._sources:
            yield from source.read(topic)

    def close(self) -> None:
        for source in self._sources:
            source.close()
        shutil.rmtree(self._tmp, ignore_errors=True)


MCAP_MAGIC = b"\x89MCAP0\r\n"


class _McapSalvage:
    """Sequential MCAP record scan that stops cleanly at the first truncated or damaged record."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data = path.read_bytes()
        if not self.data.startswith(MCAP_MAGIC):
            raise ValueError(f"{path}: not an MCAP file (bad magic)")
        self.topics: dict[str, str] = {}
        self._channels: dict[int, str] = {}
        self._messages: list[tuple[int, int, bytes]] = []  # (channel id, receive ns, raw)
        self._scan()

    def _scan(self) -> None:
        schemas: dict[int, str] = {}
        try:
            for opcode, body, complete in _mcap_records(self.data, len(MCAP_MAGIC)):
                if opcode != 0x06:
                    if not complete:
                        raise ValueError(f"record (op {opcode:#04x}) cut short by the end of the file")
                    self._record(opcode, body, schemas)
                    continue
                # A chunk holds records, maybe compressed; an uncompressed chunk cut short is read up to the cut.
                for inner_op, inner, inner_complete in _mcap_records(_mcap_chunk_payload(body, complete), 0):
                    if not inner_complete:
                        raise ValueError(f"record (op {inner_op:#04x}) inside a chunk cut short")
                    self._record(inner_op, inner, schemas)
                if not complete:
                    raise ValueError("the last chunk is cut short")
        except (ValueError, struct.error) as exc:
            log.warning(
                "%s: damaged or truncated (%s); kept the %d message(s) before that, skipped the rest",
                self.path,
                exc,
                len(self._messages),
            )

    def _record(self, opcode: int, body: bytes, schemas: dict[int, str]) -> None:
        stream = io.BytesIO(body)
        if opcode == 0x03:  # schema
            (schema_id,) = struct.unpack("<H", _read(stream, 2))
            schemas[schema_id] = _read_string(stream)
        elif opcode == 0x04:  # channel
            channel_id, schema_id = struct.unpack("<HH", _read(stream, 4))
            topic = _read_string(stream)
            self._channels[channel_id] = topic
            self.topics[topic] = schemas.get(schema_id, "")
        elif opcode == 0x05:  # message
            channel_id, _, log_time, _ = struct.unpack("<HIQQ", _read(stream, 22))
            self._messages.append((channel_id, log_time, body[22:]))

    def read(self, topic: str) -> Iterator[tuple[int, bytes]]:
        for channel_id, receive_ns, raw in self._messages:
            if self._channels.get(channel_id) == topic:
                yield receive_ns, raw

    def close(self) -> None:
        self._messages.clear()


def _read(stream: io.BytesIO, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise ValueError(f"record cut short: wanted {size} bytes, got {len(data)}")
    return data


def _read_string(stream: io.BytesIO) -> str:
    (size,) = struct.unpack("<I", _read(stream, 4))
    return _read(stream, size).decode()


def _mcap_records(data: bytes, offset: int) -> Iterator[tuple[int, bytes, bool]]:
    """(opcode, body, complete) of each record from ``offset``; the last one may be cut short by the data end."""
    while offset < len(data):
        if data[offset : offset + 8] == MCAP_MAGIC:  # closing magic after the footer
            return
        if offset + 9 > len(data):
            raise ValueError(f"record header cut at byte {offset} of {len(data)}")
        opcode = data[offset]
        (size,) = struct.unpack_from("<Q", data, offset + 1)
        end = offset + 9 + size
        yield opcode, data[offset + 9 : end], end <= len(data)
        offset = end


def _mcap_chunk_payload(body: bytes, complete: bool) -> bytes:
    """The records inside a chunk; for a chunk cut short, the uncompressed records that are there."""
    stream = io.BytesIO(body)
    _, _, uncompressed_size, _ = struct.unpack("<QQQI", _read(stream, 28))
    compression = _read_string(stream)
    _read(stream, 8)  # compressed size
    payload = stream.read()
    if compression == "":
        return payload
    if not complete:
        raise ValueError(f"the last chunk ({compression}-compressed) is cut short and cannot be decompressed")
    from rosbags.rosbag2.storage_mcap import decompress  # lz4 / zstd, as rosbags itself reads them

    try:
        return decompress(payload, compression, uncompressed_size, None)
    except Exception as exc:
        raise ValueError(f"{compression} chunk could not be decompressed ({exc})") from None


class _SqliteSalvage:
    """Reads a damaged rosbag2 .db3: pads a truncated copy back to its page count and reads row by row."""

    MISSES_BEFORE_END = 256  # consecutive unreadable/missing ids after which the table is taken to end

    def __init__(self, path: Path, tmp: Path) -> None:
        self.path = path
        self.copy = tmp / path.name
        shutil.copyfile(path, self.copy)
        self._pad_to_page_count()
        self.connection = sqlite3.connect(f"file:{self.copy}?immutable=1", uri=True)
        try:
            rows = self.connection.execute("SELECT id, name, type FROM topics").fetchall()
        except sqlite3.DatabaseError as exc:
            self.connection.close()
            raise ValueError(f"{path}: the topics table is unreadable ({exc}); nothing can be salvaged") from None
        self._ids = {name: topic_id for topic_id, name, _ in rows}
        self.topics = {name: msgtype for _, name, msgtype in rows}

    def _pad_to_page_count(self) -> None:
        with self.copy.open("rb") as f:
            header = f.read(100)
        if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
            raise ValueError(f"{self.path}: not an SQLite database (header missing or cut)")
        (page_size,) = struct.unpack(">H", header[16:18])
        page_size = 65536 if page_size == 1 else page_size
        (pages,) = struct.unpack(">I", header[28:32])
        missing = page_size * pages - self.copy.stat().st_size
        if missing > 0:
            log.warning("%s: truncated, %d byte(s) missing at the end; those messages are skipped", self.path, missing)
            with self.copy.open("ab") as f:
                f.write(b"\0" * missing)

    def read(self, topic: str) -> Iterator[tuple[int, bytes]]:
        topic_id = self._ids[topic]
        row_id, last_good, misses, unreadable, skipped = 0, 0, 0, 0, 0
        while misses < self.MISSES_BEFORE_END:
            row_id += 1
            try:
                row = self.connection.execute(
                    "SELECT topic_id, timestamp, data FROM messages WHERE id = ?", (row_id,)
                ).fetchone()
            except sqlite3.DatabaseError:
                row = None
                unreadable += 1
            if row is None:
                misses += 1
                continue
            skipped += unreadable  # unreadable rows between two good ones
            misses, unreadable, last_good = 0, 0, row_id
            if row[0] == topic_id:
                yield int(row[1]), bytes(row[2])
        if skipped:
            log.warning("%s: %d damaged message row(s) skipped", self.path, skipped)
        if unreadable:
            log.warning("%s: message rows after id %d are unreadable and were skipped", self.path, last_good)

    def close(self) -> None:
        self.connection.close()
