# -*- coding: utf-8 -*-
"""Read an etcd snapshot file offline: its revision and how many keys are live in it.

``etcdutl snapshot status`` reports ``totalKey``, the number of entries in every bucket
(every MVCC revision, members, meta rows), so it changes when the same data is restored
(--bump-revision adds one more). What a restored cluster must hold is the number of LIVE
keys at the snapshot's revision, the figure ``etcdctl get "" --prefix --count-only``
gives; this module reads it from the file.

A snapshot is a bbolt database (go.etcd.io/bbolt), followed by sha256(db) when the
size % 512 == 32 (what ``snapshot save`` streams). What is read of bbolt's format:

- every page starts with {id u64, flags u16, count u16, overflow u32} (little-endian)
  and spans (overflow + 1) pages;
- pages 0 and 1 hold a meta {magic 0xED0CDAED, version 2, page size, flags, root bucket
  {root pgid, sequence}, freelist pgid, high-water pgid, txid, FNV-64a checksum of the
  fields before it}; the valid one with the highest txid is current;
- branch pages (0x01) hold {pos u32, ksize u32, pgid u64} elements, leaf pages (0x02)
  {flags u32, pos u32, ksize u32, vsize u32}; pos counts from the element itself;
- a leaf value flagged 0x01 is a sub-bucket {root u64, sequence u64}; root 0 means the
  bucket's only (leaf) page follows inline in the value.

etcd keeps its MVCC history in the bucket ``key``: keys are revisions (8-byte big-endian
main, ``_``, 8-byte sub, and ``t`` for a tombstone), values are mvccpb.KeyValue with the
user key in field 1. The entries are sorted by revision, so a user key's last entry
decides whether it is live.

The file is mapped, never read whole, and every offset is checked against the page it
belongs to and the file's size: a damaged file raises SnapshotError, never loops. Pages
are visited once each, so the work is bounded by the file's size.

Runs on managed hosts (by etcd_snapshot_info): stdlib only.
"""
from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass, field
from typing import Iterable, Iterator, List, NamedTuple, Optional, Set, Tuple

from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_backup import TRAILER

MAGIC = 0xED0CDAED
VERSION = 2
PAGE_HEADER = struct.Struct("<QHHI")  # id, flags, count, overflow
META = struct.Struct("<IIIIQQQQQ")  # magic, version, page size, flags, root, sequence, freelist, pgid, txid
CHECKSUM = struct.Struct("<Q")  # right after META
BRANCH_ELEMENT = struct.Struct("<IIQ")  # pos, ksize, pgid
LEAF_ELEMENT = struct.Struct("<IIII")  # flags, pos, ksize, vsize
BUCKET = struct.Struct("<QQ")  # root pgid (0: inline page follows), sequence
BRANCH_PAGE, LEAF_PAGE = 0x01, 0x02
BUCKET_LEAF = 0x01
MVCC_BUCKET = b"key"
# Page sizes bbolt may have used, tried for meta page 1 when meta page 0 is damaged.
PAGE_SIZES = (4096, 8192, 16384, 32768, 65536, 1024, 2048)
# A B+tree over 2^64 pages of two keys each is 64 levels deep: deeper is a corrupt file.
MAX_DEPTH = 64


class SnapshotError(ValueError):
    """The file is not a readable etcd snapshot (or bbolt database); the message says why."""


@dataclass
class SnapshotContents:
    revision: int  # highest main revision in the key bucket; 0 when it is empty
    live_keys: int  # keys that exist at that revision
    revisions: int  # entries in the key bucket (every kept revision and tombstone)
    buckets: List[str] = field(default_factory=list)
    page_size: int = 4096
    txid: int = 0
    branch_pages: int = 0  # pages read, so tests can tell the fixtures exercise them
    overflow_pages: int = 0


class MvccSummary(NamedTuple):
    revision: int
    live_keys: int
    revisions: int


# --------------------------------------------------------------------------
# etcd's MVCC encoding (pure helpers)
# --------------------------------------------------------------------------

def parse_revision(key: bytes) -> Tuple[int, int, bool]:
    """(main, sub, tombstone) of a key-bucket key: main '_' sub [+ 't']."""
    if len(key) not in (17, 18) or key[8] != 0x5F or (len(key) == 18 and key[17] != 0x74):
        raise SnapshotError("key bucket entry %r is not an etcd revision" % key[:24])
    main, sub = struct.unpack_from(">Q", key)[0], struct.unpack_from(">Q", key, 9)[0]
    return main, sub, len(key) == 18


def _varint(data: bytes, i: int) -> Tuple[int, int]:
    value = shift = 0
    for j in range(i, min(i + 10, len(data))):
        value |= (data[j] & 0x7F) << shift
        if data[j] < 0x80:
            return value, j + 1
        shift += 7
    raise SnapshotError("truncated or overlong protobuf varint in a key bucket value")


def user_key(value: bytes) -> bytes:
    """Field 1 (the user key) of an mvccpb.KeyValue; b'' when absent (restore's
    --bump-revision writes an empty value)."""
    # etcd marshals fields in order, so the key comes first with a one-byte length.
    if len(value) > 1 and value[0] == 0x0A and value[1] < 0x80:
        end = 2 + value[1]
        if end > len(value):
            raise SnapshotError("key bucket value is shorter than the user key it announces")
        return value[2:end]
    i = 0
    while i < len(value):
        tag, i = _varint(value, i)
        wire = tag & 7
        if wire == 2:
            length, i = _varint(value, i)
            if i + length > len(value):
                raise SnapshotError("key bucket value is shorter than a field it announces")
            if tag >> 3 == 1:
                return value[i:i + length]
            i += length
        elif wire == 0:
            i = _varint(value, i)[1]
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
        else:
            raise SnapshotError("key bucket value is not an mvccpb.KeyValue (wire type %d)" % wire)
    if i > len(value):
        raise SnapshotError("key bucket value ends inside a fixed-size field")
    return b""


def live_keys_of(entries: Iterable[Tuple[bytes, bytes]]) -> MvccSummary:
    """Live keys after replaying the key bucket's (revision key, KeyValue) entries in order.

    A put makes its user key live, a tombstone removes it; entries must come sorted by
    revision, as bbolt stores them. Entries without a user key (restore's bump marker)
    count as revisions only.
    """
    live: Set[bytes] = set()
    count = 0
    last = b""
    for rev, value in entries:
        if rev <= last:
            raise SnapshotError("key bucket entries are out of order: the tree is damaged")
        last = rev
        count += 1
        # parse_revision's checks, inlined: this loop runs once per revision in the file.
        size = len(rev)
        if size == 17 and rev[8] == 0x5F:
            name = user_key(value)
            if name:
                live.add(name)
        elif size == 18 and rev[8] == 0x5F and rev[17] == 0x74:
            live.discard(user_key(value))
        else:
            parse_revision(rev)  # raises with the reason
    return MvccSummary(revision=parse_revision(last)[0] if count else 0, live_keys=len(live), revisions=count)


# --------------------------------------------------------------------------
# bbolt
# --------------------------------------------------------------------------

def fnv64a(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


class Meta(NamedTuple):
    page_size: int
    root: int
    pgid: int  # high-water mark: pages 0..pgid-1 are in use
    txid: int


def parse_meta(page: bytes) -> Optional[Meta]:
    """The meta of a meta page's first bytes (header + meta), or None when it is not valid."""
    start = PAGE_HEADER.size
    if len(page) < start + META.size + CHECKSUM.size:
        return None
    magic, version, page_size, _flags, root, _seq, _freelist, pgid, txid = META.unpack_from(page, start)
    checksum = CHECKSUM.unpack_from(page, start + META.size)[0]
    if magic != MAGIC or version != VERSION or checksum != fnv64a(page[start:start + META.size]):
        return None
    return Meta(page_size=page_size, root=root, pgid=pgid, txid=txid)


class BoltFile:
    """Walks one mapped bbolt file. ``data_size`` excludes the snapshot trailer."""

    def __init__(self, buf: mmap.mmap, data_size: int) -> None:
        self.buf, self.data_size = buf, data_size
        self.meta = self._current_meta()
        self.page_size = self.meta.page_size
        self.seen: Set[int] = set()
        self.branch_pages = self.overflow_pages = 0

    def _current_meta(self) -> Meta:
        head = PAGE_HEADER.size + META.size + CHECKSUM.size
        if self.data_size < head:
            raise SnapshotError("%d bytes is too small for a bbolt database" % self.data_size)
        candidates = []
        meta0 = parse_meta(self.buf[0:head])
        if meta0 is not None:
            candidates.append(meta0)
        for size in ((meta0.page_size,) if meta0 is not None else PAGE_SIZES):
            meta1 = parse_meta(self.buf[size:size + head]) if size + head <= self.data_size else None
            if meta1 is not None and meta1.page_size == size:  # found where its own page size puts it
                candidates.append(meta1)
                break
        if not candidates:
            first = struct.unpack_from("<I", self.buf, PAGE_HEADER.size)[0]
            if first != MAGIC:
                raise SnapshotError("not a bbolt database (no bbolt magic in its meta pages)")
            raise SnapshotError("both bbolt meta pages are damaged (checksum or version)")
        meta = max(candidates, key=lambda m: m.txid)
        if meta.page_size < 512 or meta.page_size & (meta.page_size - 1):
            raise SnapshotError("bbolt meta names an impossible page size %d" % meta.page_size)
        if meta.pgid < 3:
            raise SnapshotError("bbolt meta counts only %d pages" % meta.pgid)
        if meta.pgid * meta.page_size > self.data_size:
            raise SnapshotError("truncated: the meta page counts %d pages of %d bytes, the file holds %d bytes"
                                % (meta.pgid, meta.page_size, self.data_size))
        return meta

    def page(self, pgid: int) -> Tuple[int, int, int, int]:
        """(offset, flags, count, end) of a page, checked to lie inside the database."""
        if not 2 <= pgid < self.meta.pgid:
            raise SnapshotError("page %d is outside the database (pages 2 to %d)" % (pgid, self.meta.pgid - 1))
        if pgid in self.seen:
            raise SnapshotError("page %d is reached twice: the tree loops or shares pages" % pgid)
        self.seen.add(pgid)
        offset = pgid * self.page_size
        pid, flags, count, overflow = PAGE_HEADER.unpack_from(self.buf, offset)
        if pid != pgid:
            raise SnapshotError("page %d says it is page %d" % (pgid, pid))
        if pgid + overflow >= self.meta.pgid:
            raise SnapshotError("page %d spans %d more pages, past the database's end" % (pgid, overflow))
        self.overflow_pages += overflow
        return offset, flags, count, offset + (overflow + 1) * self.page_size

    def leaf_pages(self, root: int) -> Iterator[Tuple[int, int, int]]:
        """(offset, count, end) of the tree's leaf pages, in key order."""
        stack = [(root, 0)]
        while stack:
            pgid, depth = stack.pop()
            offset, flags, count, end = self.page(pgid)
            if flags == LEAF_PAGE:
                yield offset, count, end
            elif flags == BRANCH_PAGE:
                if depth >= MAX_DEPTH or count == 0:
                    raise SnapshotError("branch page %d is %s" % (pgid, "empty" if count == 0 else "too deep"))
                self.branch_pages += 1
                elements = self._array(offset, count, end, BRANCH_ELEMENT.size)
                children = [child for _pos, _ksize, child in BRANCH_ELEMENT.iter_unpack(elements)]
                stack.extend((child, depth + 1) for child in reversed(children))
            else:
                raise SnapshotError("page %d has flags %#x where a branch or leaf page belongs" % (pgid, flags))

    def _array(self, offset: int, count: int, end: int, size: int) -> bytes:
        start = offset + PAGE_HEADER.size
        if start + count * size > end:
            raise SnapshotError("page at offset %d holds more elements than fit in it" % offset)
        return self.buf[start:start + count * size]

    def leaf_elements(self, offset: int, count: int, end: int) -> List[Tuple[int, int, int, int]]:
        """(flags, key start, value start, value end) of each element of a leaf page."""
        elements = []
        address = offset + PAGE_HEADER.size  # pos counts from the element's own address
        for flags, pos, ksize, vsize in LEAF_ELEMENT.iter_unpack(self._array(offset, count, end, LEAF_ELEMENT.size)):
            key = address + pos
            value = key + ksize
            if value + vsize > end:
                raise SnapshotError("a leaf element at offset %d runs past its page" % address)
            elements.append((flags, key, value, value + vsize))
            address += LEAF_ELEMENT.size
        return elements

    def bucket_leaves(self, start: int, end: int) -> Iterator[Tuple[int, int, int]]:
        """Leaf pages of the sub-bucket whose header is buf[start:end]."""
        if end - start < BUCKET.size:
            raise SnapshotError("bucket header at offset %d is truncated" % start)
        root = BUCKET.unpack_from(self.buf, start)[0]
        if root:
            yield from self.leaf_pages(root)
            return
        # An inline bucket: one leaf page (id 0) inside the value.
        inline = start + BUCKET.size
        if end - inline < PAGE_HEADER.size:
            raise SnapshotError("inline bucket at offset %d is truncated" % start)
        _pid, flags, count, _overflow = PAGE_HEADER.unpack_from(self.buf, inline)
        if flags != LEAF_PAGE:
            raise SnapshotError("inline bucket at offset %d is not a leaf page (flags %#x)" % (start, flags))
        yield inline, count, end

    def entries(self, start: int, end: int) -> Iterator[Tuple[bytes, bytes]]:
        """(key, value) of a bucket that holds no sub-buckets, in key order."""
        buf = self.buf
        for offset, count, page_end in self.bucket_leaves(start, end):
            for flags, key, value, value_end in self.leaf_elements(offset, count, page_end):
                if flags & BUCKET_LEAF:
                    raise SnapshotError("unexpected sub-bucket %r in the key bucket" % buf[key:value][:24])
                yield buf[key:value], buf[value:value_end]


def read_snapshot(path: str) -> SnapshotContents:
    """Revision and live keys of an etcd snapshot (or of a member's member/snap/db).

    Raises SnapshotError when the file is not a bbolt database with etcd's key bucket,
    or is damaged; OSError when it cannot be opened.
    """
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise SnapshotError("%s is empty" % path)
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            try:
                return _read(buf, size - TRAILER if size % 512 == TRAILER else size)
            except SnapshotError as e:
                raise SnapshotError("%s: %s" % (path, e)) from None
            except (struct.error, IndexError, OverflowError, ValueError) as e:
                # Every offset is checked first; this only turns an overlooked one into a clear error.
                raise SnapshotError("%s: damaged bbolt database (%s)" % (path, e)) from None


def _read(buf: mmap.mmap, data_size: int) -> SnapshotContents:
    bolt = BoltFile(buf, data_size)
    buckets, mvcc = [], None
    for offset, count, end in bolt.leaf_pages(bolt.meta.root):
        for flags, key, value, value_end in bolt.leaf_elements(offset, count, end):
            if flags & BUCKET_LEAF:
                name = buf[key:value]
                buckets.append(name.decode("utf-8", "replace"))
                if name == MVCC_BUCKET:
                    mvcc = (value, value_end)
    if mvcc is None:
        raise SnapshotError("no '%s' bucket: a bbolt database, but not etcd's (buckets: %s)"
                            % (MVCC_BUCKET.decode(), ", ".join(buckets) or "none"))
    summary = live_keys_of(bolt.entries(*mvcc))
    return SnapshotContents(revision=summary.revision, live_keys=summary.live_keys, revisions=summary.revisions,
                            buckets=buckets, page_size=bolt.page_size, txid=bolt.meta.txid,
                            branch_pages=bolt.branch_pages, overflow_pages=bolt.overflow_pages)
