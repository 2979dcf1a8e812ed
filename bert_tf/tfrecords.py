"""TFRecord files of `tf.train.Example` protos, written without TensorFlow.

Importing TensorFlow costs seconds and ~650 MB per process, which would
dominate a pool of data-generation workers. The two formats involved are
small and stable, so they are encoded here directly:

* `encode_example` writes the protobuf wire format of `tf.train.Example`
  (features map of packed `Int64List` / `FloatList` values);
* `TFRecordWriter` frames records as TensorFlow does: little-endian uint64
  length, masked CRC32C of the length, data, masked CRC32C of the data.

CRC32C is linear over GF(2), so the checksum of a record is the XOR of one
table entry per byte (indexed by the byte value and its distance from the
end) plus a constant per length. That turns the bytewise loop into a single
vectorised numpy gather-and-reduce over a whole batch of records.

    >>> import os, tempfile
    >>> record = encode_example({"ids": [101, 102]}, {"weights": [1.0]})
    >>> path = os.path.join(tempfile.mkdtemp(), "example.tfrecord")
    >>> with TFRecordWriter(path) as writer:
    ...     writer.write_batch([record])
    >>> os.path.getsize(path) == 16 + len(record)  # length, its CRC, the record, its CRC
    True
"""

from __future__ import annotations

import functools
import os
import struct
from typing import Mapping, Sequence

import numpy as np

_CASTAGNOLI_REFLECTED = 0x82F63B78
_MASK_DELTA = 0xA282EAD8


def _byte_table() -> np.ndarray:
    """CRC32C state update for one byte, started from state 0."""
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(_CASTAGNOLI_REFLECTED), table >> 1)
    return table.astype(np.uint32)


class _Crc32c:
    """Vectorised CRC32C over many messages at once."""

    def __init__(self):
        self._byte = _byte_table()
        # _contribution[k, b]: state after byte b followed by k zero bytes.
        self._contribution = self._byte[None, :].copy()
        # _zeros[n]: crc32c of n zero bytes (the affine part of the checksum).
        self._zeros = np.array([0], dtype=np.uint32)
        self._extend(4096)

    def _advance(self, state: np.ndarray) -> np.ndarray:
        """Feeds one zero byte into each state."""
        return self._byte[state & 0xFF] ^ (state >> 8)

    def _extend(self, length: int) -> None:
        old = len(self._contribution)
        if length <= old:
            return
        rows = [self._contribution]
        row = self._contribution[-1]
        for _ in range(length - old):
            row = self._advance(row)
            rows.append(row[None, :])
        self._contribution = np.concatenate(rows)
        zeros = [int(self._zeros[-1]) ^ 0xFFFFFFFF]
        for _ in range(length + 1 - len(self._zeros)):
            zeros.append(int(self._advance(np.uint32(zeros[-1]))))
        self._zeros = np.concatenate(
            [self._zeros, np.array(zeros[1:], dtype=np.uint32) ^ np.uint32(0xFFFFFFFF)])

    def masked(self, messages: Sequence[bytes]) -> np.ndarray:
        """Masked CRC32C (TFRecord's variant) of each message, as uint32."""
        results, batch, batch_bytes = [], [], 0
        for message in messages:
            batch.append(message)
            batch_bytes += len(message)
            if batch_bytes >= self._BATCH_BYTES:
                results.append(self._masked_batch(batch))
                batch, batch_bytes = [], 0
        results.append(self._masked_batch(batch))
        return np.concatenate(results)

    # Bounds the temporary arrays (~12 bytes per message byte).
    _BATCH_BYTES = 1 << 20

    def _masked_batch(self, messages: Sequence[bytes]) -> np.ndarray:
        if not messages:
            return np.zeros(0, dtype=np.uint32)
        lengths = np.fromiter(map(len, messages), dtype=np.int64, count=len(messages))
        self._extend(int(lengths.max()))
        data = np.frombuffer(b"".join(messages), dtype=np.uint8)
        ends = np.cumsum(lengths)
        starts = ends - lengths
        # Distance of every byte from the end of its own message.
        distance = np.repeat((ends - 1).astype(np.int32), lengths)
        distance -= np.arange(len(data), dtype=np.int32)
        parts = self._contribution[distance, data]
        linear = np.zeros(len(messages), dtype=np.uint32)
        nonempty = lengths > 0
        linear[nonempty] = np.bitwise_xor.reduceat(parts, starts[nonempty])
        crc = linear ^ self._zeros[lengths]
        return ((crc >> 15) | (crc << 17)) + np.uint32(_MASK_DELTA)


_CRC = None


def masked_crc32c(messages: Sequence[bytes]) -> np.ndarray:
    """TFRecord's masked CRC32C of each message (shared lazily built tables)."""
    global _CRC
    if _CRC is None:
        _CRC = _Crc32c()
    return _CRC.masked(messages)


def frame_records(records: Sequence[bytes]) -> bytes:
    """Returns the TFRecord byte stream holding `records` in order."""
    if not records:
        return b""
    lengths = np.fromiter(map(len, records), dtype="<u8", count=len(records))
    raw = lengths.tobytes()
    headers = [raw[i:i + 8] for i in range(0, len(raw), 8)]
    header_crcs = masked_crc32c(headers).astype("<u4")
    data_crcs = masked_crc32c(records).astype("<u4")
    pieces = []
    for header, header_crc, record, data_crc in zip(
            headers, _split4(header_crcs), records, _split4(data_crcs)):
        pieces += (header, header_crc, record, data_crc)
    return b"".join(pieces)


def _split4(values: np.ndarray) -> list[bytes]:
    raw = values.tobytes()
    return [raw[i:i + 4] for i in range(0, len(raw), 4)]


class TFRecordWriter:
    """Writes TFRecords atomically: to a temporary file, renamed on close.

    A crash or exception leaves no partial file under the final name.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        self._temp_path = os.path.join(
            folder, f".{os.path.basename(self.path)}.tmp-{os.getpid()}")
        self._file = open(self._temp_path, "wb")
        self.num_records = 0

    def write_batch(self, records: Sequence[bytes]) -> None:
        self._file.write(frame_records(records))
        self.num_records += len(records)

    def close(self) -> None:
        """Publishes the file under its final name."""
        if self._file.closed:
            return
        self._file.close()
        os.replace(self._temp_path, self.path)

    def abort(self) -> None:
        """Discards everything written."""
        if not self._file.closed:
            self._file.close()
        if os.path.exists(self._temp_path):
            os.remove(self._temp_path)

    def __enter__(self) -> "TFRecordWriter":
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


# ----------------------------------------------------------------------------
# tf.train.Example wire format
# ----------------------------------------------------------------------------

# Field tags (field number << 3 | wire type 2 = length-delimited).
_TAG_FEATURES = b"\x0a"      # Example.features = 1, Features.feature = 1
_TAG_MAP_KEY = b"\x0a"       # map entry key = 1
_TAG_MAP_VALUE = b"\x12"     # map entry value = 2
_TAG_FLOAT_LIST = b"\x12"    # Feature.float_list = 2
_TAG_INT64_LIST = b"\x1a"    # Feature.int64_list = 3
_TAG_PACKED_VALUES = b"\x0a"  # Int64List.value / FloatList.value = 1


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int64 in two's complement: ten bytes
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# Most ids, positions and labels are small: their encodings are looked up.
_SMALL_VARINTS = [_varint(i) for i in range(1 << 16)]
_SMALL_LIMIT = len(_SMALL_VARINTS)


def encode_varints(values: Sequence[int]) -> bytes:
    """Concatenated varints of int64 values (negative ones take ten bytes)."""
    small = _SMALL_VARINTS
    if min(values, default=0) >= 0:  # a negative index would silently wrap
        try:
            return b"".join(map(small.__getitem__, values))
        except IndexError:  # some value >= 2**16, e.g. ids of a very large vocabulary
            return b"".join([small[v] if v < _SMALL_LIMIT else _varint(v) for v in values])
    return b"".join(map(_varint, values))


def _prefixed(tag: bytes, payload: bytes) -> bytes:
    """Tag, varint length, payload: one length-delimited protobuf field."""
    size = len(payload)
    return tag + (_SMALL_VARINTS[size] if size < _SMALL_LIMIT else _varint(size)) + payload



def int64_feature(values: Sequence[int] | bytes) -> bytes:
    """An encoded `Feature` holding an Int64List.

    `values` may also be already-encoded varints (bytes), which lets callers
    pass 0/1 masks as `bytes(mask)` without a per-value Python loop.
    """
    packed = values if isinstance(values, bytes) else encode_varints(values)
    return _prefixed(_TAG_INT64_LIST, _prefixed(_TAG_PACKED_VALUES, packed))


def float_feature(values: Sequence[float]) -> bytes:
    """An encoded `Feature` holding a FloatList (float32, little-endian)."""
    packed = struct.pack(f"<{len(values)}f", *values)
    return _prefixed(_TAG_FLOAT_LIST, _prefixed(_TAG_PACKED_VALUES, packed))


def encode_features(features: Mapping[str, bytes]) -> bytes:
    """Serialized `tf.train.Example` from already-encoded features by name."""
    body = b"".join([
        _prefixed(_TAG_FEATURES, _map_key(name) + _prefixed(_TAG_MAP_VALUE, feature))
        for name, feature in features.items()])
    return _prefixed(_TAG_FEATURES, body)


@functools.lru_cache(maxsize=None)
def _map_key(name: str) -> bytes:
    return _prefixed(_TAG_MAP_KEY, name.encode("utf-8"))


def encode_example(int64_features: Mapping[str, Sequence[int]] = (),
                   float_features: Mapping[str, Sequence[float]] = ()) -> bytes:
    """Serialized `tf.train.Example` from plain Python sequences."""
    features = {name: int64_feature(values) for name, values in dict(int64_features).items()}
    features.update(
        (name, float_feature(values)) for name, values in dict(float_features).items())
    return encode_features(features)
