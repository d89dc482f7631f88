"""etcd_snapshot / etcd_snapshot_info: live keys and revision read offline from real snapshots.

The fixtures are real files written by etcd 3.4.23 and 3.5.30 (fixtures/make_snapshots.sh,
which checked each count against the running member before saving); expected.json holds
what etcd itself reported, and what `snapshot status` says (totalKey) for contrast.
"""
from __future__ import annotations

import hashlib
import json
import mmap
import random
import re
import shutil
import struct
from pathlib import Path
from typing import Dict, Tuple

import pytest

from ansible_collections.controlplane.etcd.plugins.module_utils import etcd_snapshot as es
from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_snapshot import (
    SnapshotError, live_keys_of, parse_revision, read_snapshot, user_key)

FIXTURES = Path(__file__).parent / "fixtures" / "etcd_snapshot"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
BY_FILE = {e["file"]: e for e in EXPECTED}
SNAPSHOT = FIXTURES / "v3.5.30.db"
LIVE, REVISION = BY_FILE["v3.5.30.db"]["live_keys"], BY_FILE["v3.5.30.db"]["revision"]
PAGE = 4096


def rev(main: int, sub: int = 0, tombstone: bool = False) -> bytes:
    return struct.pack(">Q", main) + b"_" + struct.pack(">Q", sub) + (b"t" if tombstone else b"")


def kv(key: bytes, value: bytes = b"v") -> bytes:
    """An mvccpb.KeyValue as etcd marshals it: key (1), create (2), mod (3), version (4), value (5)."""
    return b"\x0a" + _varint(len(key)) + key + b"\x10\x02\x18\x03\x20\x01" + b"\x2a" + _varint(len(value)) + value


def _varint(n: int) -> bytes:
    out = b""
    while n >= 0x80:
        out += bytes([n & 0x7F | 0x80])
        n >>= 7
    return out + bytes([n])


@pytest.fixture
def write(tmp_path):
    """write(data) -> the path of a file holding it."""
    def _write(data: bytes) -> str:
        path = tmp_path / "snap.db"
        path.write_bytes(data)
        return str(path)
    return _write


# --------------------------------------------------------------------------
# Real snapshots
# --------------------------------------------------------------------------

@pytest.mark.parametrize("entry", EXPECTED, ids=[e["file"] for e in EXPECTED])
def test_live_keys_and_revision_match_what_etcd_reported(entry):
    got = read_snapshot(str(FIXTURES / entry["file"]))
    assert (got.live_keys, got.revision) == (entry["live_keys"], entry["revision"])
    assert got.revision == entry["status"]["revision"]  # etcdutl agrees on the revision...
    if entry["live_keys"]:
        assert entry["status"]["totalKey"] > got.revisions > got.live_keys  # ...not on the key count
    assert "key" in got.buckets and "members" in got.buckets and got.page_size == PAGE


@pytest.mark.parametrize("name", ["v3.4.23.db", "v3.5.30.db"])
def test_fixtures_hold_branch_and_overflow_pages(name):
    got = read_snapshot(str(FIXTURES / name))
    assert got.branch_pages >= 1 and got.overflow_pages >= 2  # three ~10 KB values
    assert got.revisions > got.live_keys  # tombstones written after the compaction


def test_a_cluster_that_never_saw_a_write():
    got = read_snapshot(str(FIXTURES / "empty-v3.5.30.db"))
    assert (got.revision, got.live_keys, got.revisions, got.branch_pages) == (0, 0, 0, 0)


def test_restore_keeps_the_live_keys_and_bump_adds_one_revision():
    snap = read_snapshot(str(SNAPSHOT))
    plain = read_snapshot(str(FIXTURES / "restored-v3.5.30.db"))
    bumped = read_snapshot(str(FIXTURES / "restored-bump-v3.5.30.db"))
    assert plain.live_keys == bumped.live_keys == snap.live_keys
    assert (plain.revision, plain.revisions) == (snap.revision, snap.revisions)
    # --bump-revision writes one entry with an empty value; it is no key.
    assert (bumped.revision, bumped.revisions) == (snap.revision + 1_000_000_000, snap.revisions + 1)
    statuses = [BY_FILE[n]["status"]["totalKey"] for n in ("v3.5.30.db", "restored-bump-v3.5.30.db")]
    assert statuses[0] != statuses[1]  # why totalKey cannot be compared across a restore


def test_the_trailer_is_not_needed_to_read(write):
    # A member's db has none; a snapshot cut inside its trailer still holds every page.
    for cut in (32, 1):
        assert read_snapshot(write(SNAPSHOT.read_bytes()[:-cut])).live_keys == LIVE


# --------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------

def test_parse_revision():
    assert parse_revision(rev(157, 3)) == (157, 3, False)
    assert parse_revision(rev(2**40, 0, True)) == (2**40, 0, True)
    for bad in (b"", rev(1)[:16], rev(1).replace(b"_", b"-"), rev(1) + b"x", rev(1) + b"tt"):
        with pytest.raises(SnapshotError, match="not an etcd revision"):
            parse_revision(bad)


def test_user_key():
    assert user_key(kv(b"/a")) == b"/a"
    long = b"/registry/" + b"x" * 300  # a two-byte length
    assert user_key(kv(long)) == long
    # Field 1 after other fields of every wire type (not etcd's order, still protobuf).
    other = b"\x10\x96\x01" + b"\x19" + b"\0" * 8 + b"\x25" + b"\0" * 4 + b"\x2a\x01z" + b"\x0a\x02/b"
    assert user_key(other) == b"/b"
    assert user_key(b"") == b"" and user_key(b"\x10\x01") == b""  # restore's bump marker: no key
    for bad in (b"\x0a\x05/a", b"\x0a\x80\x80", b"\x0f", b"\x10\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
                b"\x19\0\0"):
        with pytest.raises(SnapshotError):
            user_key(bad)


def test_live_keys_of_replays_puts_and_tombstones_in_order():
    history = [
        (rev(2), kv(b"/a")), (rev(3), kv(b"/b")), (rev(4, 0), kv(b"/c")), (rev(4, 1), kv(b"/d")),
        (rev(5), kv(b"/a", b"again")),  # overwrite
        (rev(6, 0, True), kv(b"/b")),  # delete
        (rev(7, 0, True), kv(b"/c")), (rev(8), kv(b"/c")),  # deleted, then back
        (rev(9, 0, True), kv(b"/gone")),  # tombstone of a key compacted away
        (rev(1_000_000_009), b""),  # restore's bump marker
    ]
    assert live_keys_of(history) == es.MvccSummary(revision=1_000_000_009, live_keys=3, revisions=10)
    assert live_keys_of([]) == es.MvccSummary(0, 0, 0)
    with pytest.raises(SnapshotError, match="out of order"):
        live_keys_of([(rev(3), kv(b"/a")), (rev(2), kv(b"/b"))])
    with pytest.raises(SnapshotError, match="out of order"):
        live_keys_of([(rev(3), kv(b"/a")), (rev(3), kv(b"/b"))])
    with pytest.raises(SnapshotError, match="not an etcd revision"):
        live_keys_of([(b"meta-key", kv(b"/a"))])


def test_fnv64a_known_values():
    assert es.fnv64a(b"") == 0xCBF29CE484222325
    assert es.fnv64a(b"a") == 0xAF63DC4C8601EC8C


# --------------------------------------------------------------------------
# Damaged files: a SnapshotError that says why, never a hang or another exception
# --------------------------------------------------------------------------

def _key_bucket(path: Path) -> Tuple[int, int]:
    """(offset of the name, offset of the bucket header) of the key bucket in the root leaf."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        bolt = es.BoltFile(buf, len(buf) - 32)
        for offset, count, end in bolt.leaf_pages(bolt.meta.root):
            for _flags, key, value, _end in bolt.leaf_elements(offset, count, end):
                if buf[key:value] == b"key":
                    return key, value
    raise AssertionError("no key bucket in %s" % path)


def _layout() -> Dict[str, int]:
    """Where the fixture's key bucket lives: its root (a branch page), first leaf, and name."""
    data = SNAPSHOT.read_bytes()
    name_at, header_at = _key_bucket(SNAPSHOT)
    key_root = es.BUCKET.unpack_from(data, header_at)[0]
    first_leaf = struct.unpack_from("<Q", data, key_root * PAGE + 16 + 8)[0]
    return dict(key_root=key_root, first_leaf=first_leaf, name_at=name_at)


def _patched(*patches: Tuple[int, bytes]) -> bytes:
    """The 3.5.30 fixture with raw bytes written at offsets (only meta pages carry a checksum)."""
    data = bytearray(SNAPSHOT.read_bytes())
    for offset, raw in patches:
        data[offset:offset + len(raw)] = raw
    return bytes(data)


def _first_element(leaf: int) -> Tuple[int, int, int, int]:
    """(key offset, ksize, value offset, vsize) of a leaf page's first element in the fixture."""
    data = SNAPSHOT.read_bytes()
    address = leaf * PAGE + 16
    _flags, pos, ksize, vsize = struct.unpack_from("<IIII", data, address)
    return address + pos, ksize, address + pos + ksize, vsize


def test_layout_of_the_fixture():
    where = _layout()
    assert struct.unpack_from("<QH", SNAPSHOT.read_bytes(), where["key_root"] * PAGE) == (where["key_root"], 1)


@pytest.mark.parametrize("size", [0, 10, 79, 100, PAGE, 3 * PAGE, 60000, -PAGE - 32])
def test_truncated(size, write):
    with pytest.raises(SnapshotError, match="empty|too small|truncated|damaged|not a bbolt"):
        read_snapshot(write(SNAPSHOT.read_bytes()[:size]))


def test_random_bytes_and_zeros(write):
    for data in (random.Random(7).randbytes(65536), bytes(65536), b"\xed\xda\x0c\xed" * 4096):
        with pytest.raises(SnapshotError, match="not a bbolt database|meta pages are damaged"):
            read_snapshot(write(data))


def test_one_damaged_meta_page_is_survived_two_are_not(write):
    zero_meta0 = _patched((0, bytes(PAGE)))
    assert read_snapshot(write(zero_meta0)).live_keys == LIVE
    flip_txid1 = _patched((PAGE + 16 + 48, b"\xff"))  # checksum no longer matches
    assert read_snapshot(write(flip_txid1)).live_keys == LIVE
    with pytest.raises(SnapshotError, match="not a bbolt database"):
        read_snapshot(write(_patched((0, bytes(2 * PAGE)))))
    with pytest.raises(SnapshotError, match="meta pages are damaged"):
        read_snapshot(write(_patched((16 + 48, b"\xff"), (PAGE + 16 + 48, b"\xff"))))


def _with_valid_meta(data: bytearray, **fields: int) -> None:
    """Rewrite meta page 0 with other fields, a higher txid (so it is current) and a correct checksum."""
    names = ("magic", "version", "page_size", "flags", "root", "sequence", "freelist", "pgid", "txid")
    values = dict(zip(names, es.META.unpack_from(data, 16)))
    values.update(fields, txid=values["txid"] + 10)
    raw = es.META.pack(*(values[n] for n in names))
    data[16:16 + len(raw) + 8] = raw + struct.pack("<Q", es.fnv64a(raw))


@pytest.mark.parametrize("fields, message", [
    (dict(pgid=10**9), "truncated"),
    (dict(pgid=2), "only 2 pages"),
    (dict(page_size=1000), "impossible page size"),
    (dict(root=10**6), "outside the database"),
    (dict(root=0), "outside the database"),
])
def test_a_valid_meta_with_impossible_values(fields, message, write):
    data = bytearray(SNAPSHOT.read_bytes())
    _with_valid_meta(data, **fields)
    with pytest.raises(SnapshotError, match=message):
        read_snapshot(write(bytes(data)))


def test_damaged_pages(write):
    where = _layout()
    root, leaf = where["key_root"] * PAGE, where["first_leaf"] * PAGE
    key_at, _ksize, value_at, _vsize = _first_element(where["first_leaf"])
    cases = [
        ((root + 16 + 8, struct.pack("<Q", 10**6)), "page 1000000 is outside the database"),  # child past the end
        ((root + 16 + 8, struct.pack("<Q", where["key_root"])), "reached twice"),  # a loop
        ((root + 16 + 16 + 8, struct.pack("<Q", where["first_leaf"])), "reached twice"),  # a shared page
        ((root + 16 + 8, struct.pack("<Q", 1)), "outside the database"),  # a meta page
        ((leaf + 12, struct.pack("<I", 10**6)), "past the database's end"),  # overflow
        ((leaf, struct.pack("<Q", 3)), "says it is page 3"),
        ((leaf + 8, struct.pack("<H", 0x10)), "flags 0x10"),
        ((leaf + 10, struct.pack("<H", 0xFFFF)), "more elements than fit"),
        ((leaf + 16 + 12, struct.pack("<I", 10**6)), "runs past its page"),  # vsize
        ((leaf + 16 + 4, struct.pack("<I", 0xFFFFFFF0)), "runs past its page"),  # pos
        ((leaf + 16, struct.pack("<I", 1)), "unexpected sub-bucket"),
        ((root + 10, struct.pack("<H", 0)), "branch page .* is empty"),
        ((key_at + 8, b"-"), "not an etcd revision"),
        ((key_at, b"\xff"), "out of order"),
        ((value_at, b"\x0f"), "not an mvccpb.KeyValue"),
        ((where["name_at"], b"kez"), "no 'key' bucket"),
    ]
    for patch, message in cases:
        with pytest.raises(SnapshotError, match=message):
            read_snapshot(write(_patched(patch)))


def test_an_inline_key_bucket_that_is_damaged(write):
    # The empty cluster's key bucket is inline: its page lives in the root leaf's value.
    path = FIXTURES / "empty-v3.5.30.db"
    data = bytearray(path.read_bytes())
    inline = _key_bucket(path)[1]
    assert es.BUCKET.unpack_from(data, inline)[0] == 0
    data[inline + 16 + 8:inline + 16 + 10] = struct.pack("<H", 0x01)
    with pytest.raises(SnapshotError, match="inline bucket .* not a leaf page"):
        read_snapshot(write(bytes(data)))
    data[inline + 16 + 8:inline + 16 + 12] = struct.pack("<HH", 0x02, 5)
    with pytest.raises(SnapshotError, match="more elements than fit"):
        read_snapshot(write(bytes(data)))


def test_random_damage_gives_a_count_or_a_snapshot_error(write):
    """Whatever bytes are hit, the reader answers or says the file is damaged, quickly."""
    original = SNAPSHOT.read_bytes()
    rng = random.Random(2024)
    outcomes = {"read": 0, "refused": 0}
    for _ in range(400):
        data = bytearray(original)
        start = rng.randrange(2 * PAGE, len(original) - 32)
        for _hit in range(rng.randint(1, 6)):
            at = min(start + rng.randrange(-64, 64), len(original) - 1)
            data[at] = rng.randrange(256)
        try:
            read_snapshot(write(bytes(data)))
            outcomes["read"] += 1
        except SnapshotError:
            outcomes["refused"] += 1
    assert outcomes["read"] and outcomes["refused"]


def test_not_a_regular_readable_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_snapshot(str(tmp_path / "missing.db"))
    with pytest.raises(IsADirectoryError):
        read_snapshot(str(tmp_path))


# --------------------------------------------------------------------------
# The module
# --------------------------------------------------------------------------

@pytest.fixture
def module(plugin_loader):
    pytest.importorskip("ansible.module_utils.basic")
    return plugin_loader("modules/etcd_snapshot_info.py", "etcd_snapshot_info")


def _run_module(module, capsys, args):
    from ansible.module_utils.testing import patch_module_args

    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        module.main()
    return exc.value.code, json.loads(capsys.readouterr().out)


def test_info_of_a_verified_snapshot(module, tmp_path):
    path = tmp_path / ("etcd-main-20240101T000000Z-r%d.db" % REVISION)
    shutil.copy(SNAPSHOT, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    (tmp_path / (path.name + ".sha256")).write_text("%s  %s\n" % (digest, path.name))
    info = module.snapshot_info(str(path))
    contents = read_snapshot(str(SNAPSHOT))
    assert info == dict(path=str(path), sha256=digest, size=SNAPSHOT.stat().st_size, trailer_ok=True,
                        sha256_file="%s  %s\n" % (digest, path.name), readable=True, error=None, revision=REVISION,
                        live_keys=LIVE, revisions=contents.revisions, buckets=contents.buckets)


def test_info_without_keys_only_checksums(module, tmp_path):
    path = tmp_path / "copy.db"
    shutil.copy(SNAPSHOT, path)
    info = module.snapshot_info(str(path), read_keys=False)
    assert info["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest() and info["trailer_ok"] is True
    assert info["readable"] is None and info["revision"] is None and info["live_keys"] is None
    # Not a snapshot at all: the checksum still comes back, nothing is parsed.
    path.write_bytes(b"x" * 544)
    info = module.snapshot_info(str(path), read_keys=False)
    assert info["trailer_ok"] is False and info["error"] is None


def test_info_of_a_member_db_and_of_a_bad_trailer(module, tmp_path):
    info = module.snapshot_info(str(FIXTURES / "restored-bump-v3.5.30.db"))
    assert info["trailer_ok"] is None and info["sha256_file"] is None
    assert (info["live_keys"], info["revision"]) == (LIVE, REVISION + 1_000_000_000)
    data = bytearray(SNAPSHOT.read_bytes())
    data[-1] ^= 0xFF
    path = tmp_path / "bad-trailer.db"
    path.write_bytes(bytes(data))
    info = module.snapshot_info(str(path))
    assert info["trailer_ok"] is False and info["live_keys"] == LIVE


@pytest.mark.parametrize("check_mode", [False, True])
def test_module_main(module, capsys, check_mode):
    rc, result = _run_module(module, capsys, {"path": str(SNAPSHOT), "_ansible_check_mode": check_mode})
    assert rc == 0 and result["changed"] is False and not result.get("failed")
    assert (result["live_keys"], result["revision"], result["trailer_ok"]) == (LIVE, REVISION, True)


def test_module_fails_clearly(module, capsys, tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(random.Random(1).randbytes(8192))
    for path, message in ((tmp_path / "missing.db", "cannot read .*missing.db: No such file"),
                          (tmp_path, "not a regular file")):
        rc, result = _run_module(module, capsys, {"path": str(path)})
        assert rc == 1 and result["failed"] is True
        assert re.search(message, result["msg"]), result["msg"]
    # A file that is no snapshot is reported, not failed: a restore lists it with its other problems.
    rc, result = _run_module(module, capsys, {"path": str(junk)})
    assert rc == 0 and result["readable"] is False and result["live_keys"] is None
    assert re.search(r"junk.db: not a bbolt database", result["error"]), result["error"]
    assert result["sha256"] == hashlib.sha256(junk.read_bytes()).hexdigest()
