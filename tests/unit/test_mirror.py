"""lab/mirror.py's pure parts, offline: Release and Packages parsing, version choice,
apt sources, the reproducible tarball and SHA256SUMS."""
from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import shutil
import subprocess
import sys
import tarfile
import types
from pathlib import Path

import pytest

MIRROR_PY = Path(__file__).resolve().parents[2] / "lab" / "mirror.py"


def _load() -> types.ModuleType:
    # lab/ is not a package: import the script from its path.
    spec = importlib.util.spec_from_file_location("lab_mirror", MIRROR_PY)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["lab_mirror"] = module
    spec.loader.exec_module(module)
    return module


mirror = _load()

SHA_A, SHA_B, SHA_C = "a" * 64, "b" * 64, "c" * 64
RELEASE = f"""Origin: Debian
Suite: stable
Codename: bookworm
MD5Sum:
 {"0" * 32}  1234 main/binary-amd64/Packages.xz
SHA256:
 {SHA_A}  1234 main/binary-amd64/Packages.xz
 {SHA_B}  99 main/binary-arm64/Packages.xz
Acquire-By-Hash: yes
 {SHA_C}  1 main/binary-i386/Packages.xz
"""

PACKAGES = f"""Package: etcd-server
Version: 3.4.23-4+b4
Filename: pool/main/e/etcd/etcd-server_3.4.23-4+b4_amd64.deb
SHA256: {SHA_A}

Package: etcd-server-extra
Version: 3.4.23-1
Filename: pool/main/e/etcd/etcd-server-extra_3.4.23-1_amd64.deb
SHA256: {SHA_C}

Package: etcd-discovery
Version: 1.0-1
Depends: etcd-server
Filename: pool/main/e/etcd-discovery/etcd-discovery_1.0-1_amd64.deb
SHA256: {SHA_C}

Package: etcd-server
Version: 1:3.5.30+dfsg-2
Filename: pool/main/e/etcd/etcd-server_3.5.30+dfsg-2_amd64.deb
SHA256: {SHA_B}

Package: etcd-client
Version: 3.4.23-4+b4
Filename: pool/main/e/etcd/etcd-client_3.4.23-4+b4_amd64.deb
SHA256: {SHA_C}
"""


# ------------------------------------------------------------------ Release

def test_release_sha256_reads_only_the_sha256_section():
    assert mirror.release_sha256(RELEASE, "main/binary-amd64/Packages.xz") == SHA_A
    assert mirror.release_sha256(RELEASE, "main/binary-arm64/Packages.xz") == SHA_B


def test_release_sha256_section_ends_at_the_next_field():
    # The i386 line follows Acquire-By-Hash, so it is not in the SHA256 section.
    assert mirror.release_sha256(RELEASE, "main/binary-i386/Packages.xz") is None
    assert mirror.release_sha256(RELEASE, "main/binary-amd64/Packages.gz") is None


@pytest.mark.parametrize("suite, ok", [("bookworm", True), ("stable", True), ("trixie", False), ("book", False)])
def test_release_names_suite(suite, ok):
    assert mirror.release_names_suite(RELEASE, suite) is ok


# ----------------------------------------------------------------- Packages

def test_package_entries_exact_names_in_index_order():
    found = mirror.package_entries(PACKAGES, ("etcd-server", "etcd-client"))
    assert found["etcd-server"] == [
        mirror.Entry("3.4.23-4+b4", "pool/main/e/etcd/etcd-server_3.4.23-4+b4_amd64.deb", SHA_A),
        mirror.Entry("1:3.5.30+dfsg-2", "pool/main/e/etcd/etcd-server_3.5.30+dfsg-2_amd64.deb", SHA_B),
    ]
    assert [e.version for e in found["etcd-client"]] == ["3.4.23-4+b4"]


def test_package_entries_absent_package_is_empty():
    assert mirror.package_entries(PACKAGES, ("etcdctl",)) == {"etcdctl": []}


@pytest.mark.parametrize("debian, upstream", [
    ("3.4.23-4+b4", "3.4.23"),
    ("1:3.5.30+dfsg-2", "3.5.30"),
    ("3.5.16-4", "3.5.16"),
    ("3.6.0~rc1-1", "3.6.0"),
    ("3.5.1", "3.5.1"),
])
def test_upstream_of(debian, upstream):
    assert mirror.upstream_of(debian) == upstream


def test_find_entry_takes_the_first_match():
    a = mirror.Entry("3.5.30-1", "a.deb", SHA_A)
    b = mirror.Entry("3.5.30-2", "b.deb", SHA_B)
    assert mirror.find_entry([a, b], "3.5.30") is a
    assert mirror.find_entry([a, b], "3.5.3") is None


# ----------------------------------------------------------------- versions

@pytest.mark.parametrize("arg, version", [("3.5.30", "3.5.30"), ("v3.4.23", "3.4.23")])
def test_normalize_version(arg, version):
    assert mirror.normalize_version(arg) == version


@pytest.mark.parametrize("arg", ["3.5", "vv3.5.30", "3.5.30-rc1", "latest", ""])
def test_normalize_version_refuses(arg):
    with pytest.raises(mirror.MirrorError, match="want X.Y.Z"):
        mirror.normalize_version(arg)


class FakeArchive:
    """Stands in for DebianArchive: suite -> etcd-server entries, and which were read."""

    def __init__(self, suites: dict[str, list[str]]):
        self.suites = suites
        self.read: list[str] = []

    def entries(self, suite: str, package: str) -> list:
        self.read.append(suite)
        return [mirror.Entry(v, f"{v}.deb", SHA_A) for v in self.suites[suite]]


def test_choose_source_table_needs_no_index():
    archive = FakeArchive({})
    assert mirror.choose_source("3.5.16", archive, ["sid"]) == "debian:trixie"
    assert mirror.choose_source("3.5.1", archive, ["sid"]) == "pypi"
    assert archive.read == []


def test_choose_source_first_suite_that_has_it():
    archive = FakeArchive({"bookworm": ["3.4.23-4"], "trixie": ["3.5.99-1"], "sid": ["3.5.99-2"]})
    assert mirror.choose_source("3.5.99", archive, ["bookworm", "trixie", "sid"]) == "debian:trixie"
    assert archive.read == ["bookworm", "trixie"]


def test_choose_source_nowhere():
    archive = FakeArchive({"bookworm": ["3.4.23-4"]})
    with pytest.raises(mirror.MirrorError, match="not in Debian bookworm; PyPI"):
        mirror.choose_source("3.5.99", archive, ["bookworm"])


def test_reports_version_is_a_whole_line():
    out = "etcd Version: 3.5.10\nGit SHA: Not provided\n"
    assert mirror.reports_version(out, "etcd Version: ", "3.5.10")
    assert not mirror.reports_version(out, "etcd Version: ", "3.5.1")


# ------------------------------------------------------------- apt sources

DEB822 = """# disabled one first
Types: deb
URIs: http://off.invalid/debian
Suites: bookworm
Enabled: no

Types: deb
URIs: http://sec.invalid/debian-security
Suites: bookworm-security

Types: deb-src deb
URIs: https://apt.invalid/debian/ http://second.invalid/debian
Suites: bookworm bookworm-updates
Components: main
"""


def test_deb822_mirror_skips_disabled_and_security():
    assert mirror.deb822_mirror(DEB822) == "https://apt.invalid/debian/"
    assert mirror.deb822_mirror("Types: deb-src\nURIs: http://src.invalid/d\nSuites: sid\n") is None


def test_one_line_mirror():
    text = ("# deb http://comment.invalid/debian sid main\n"
            "deb http://apt.invalid/debian-security bookworm-security main\n"
            "deb [arch=amd64 signed-by=/k.gpg] http://apt.invalid/debian bookworm main\n")
    assert mirror.one_line_mirror(text) == "http://apt.invalid/debian"
    assert mirror.one_line_mirror("deb cdrom:[Debian]/ bookworm main\n") is None


def test_debian_mirror_order(tmp_path):
    d = tmp_path / "sources.list.d"
    d.mkdir()
    lst = tmp_path / "sources.list"
    lst.write_text("deb http://list.invalid/debian/ bookworm main\n")
    assert mirror.debian_mirror({}, d, lst) == "http://list.invalid/debian"
    (d / "debian.sources").write_text(DEB822)
    assert mirror.debian_mirror({}, d, lst) == "https://apt.invalid/debian"
    assert mirror.debian_mirror({"LAB_DEBIAN_MIRROR": "http://env.invalid/d/"}, d, lst) == "http://env.invalid/d"
    lst.unlink()
    (d / "debian.sources").unlink()
    with pytest.raises(mirror.MirrorError, match="set LAB_DEBIAN_MIRROR"):
        mirror.debian_mirror({}, d, lst)


# ------------------------------------------------------------------ tarball

@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """parent/etcd-v9.9.9-linux-amd64/{etcdctl,etcd,sub/x}, odd mtimes, created unsorted."""
    top = tmp_path / "parent" / "etcd-v9.9.9-linux-amd64"
    (top / "sub").mkdir(parents=True)
    for rel, data in (("etcdctl", b"ctl\n"), ("etcd", b"server" * 200), ("sub/x", b"")):
        (top / rel).write_bytes(data)
        os.chmod(top / rel, 0o755)
        os.utime(top / rel, (1234567890, 1234567890))
    for d in (top / "sub", top):
        os.chmod(d, 0o755)
    return top.parent


def _tar(parent: Path) -> bytes:
    buf = io.BytesIO()
    mirror.write_tar(parent, "etcd-v9.9.9-linux-amd64", buf)
    return buf.getvalue()


def test_tar_ignores_times_and_sorts_names(tree):
    first = _tar(tree)
    os.utime(tree / "etcd-v9.9.9-linux-amd64" / "etcd", None)
    assert _tar(tree) == first
    assert len(first) % 10240 == 0
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == [
        "etcd-v9.9.9-linux-amd64", "etcd-v9.9.9-linux-amd64/etcd", "etcd-v9.9.9-linux-amd64/etcdctl",
        "etcd-v9.9.9-linux-amd64/sub", "etcd-v9.9.9-linux-amd64/sub/x"]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in members} == {
        (mirror.EPOCH, 0, 0, "", "", 0o755)}


def _gnu_tar() -> str | None:
    tar = shutil.which("tar")
    if tar and "GNU tar" in subprocess.run([tar, "--version"], capture_output=True, text=True).stdout:
        return tar
    return None


@pytest.mark.skipif(_gnu_tar() is None, reason="needs GNU tar")
def test_tar_matches_gnu_tar_byte_for_byte(tree):
    # The flags the shell version used: mirrors built before the rewrite keep their sha256.
    gnu = subprocess.run(
        [_gnu_tar(), "--sort=name", f"--mtime=@{mirror.EPOCH}", "--owner=0", "--group=0",
         "--numeric-owner", "--format=gnu", "-C", str(tree), "-cf", "-", "etcd-v9.9.9-linux-amd64"],
        capture_output=True, check=True).stdout
    assert _tar(tree) == gnu


@pytest.mark.skipif(shutil.which("gzip") is None, reason="needs gzip")
def test_tarball_rebuilds_to_the_same_sha256(tree, tmp_path):
    a, b = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    mirror.write_tarball(tree, "etcd-v9.9.9-linux-amd64", a)
    os.utime(tree / "etcd-v9.9.9-linux-amd64" / "etcdctl", None)
    mirror.write_tarball(tree, "etcd-v9.9.9-linux-amd64", b)
    assert a.read_bytes() == b.read_bytes()
    # gzip -n: no name, no timestamp, OS byte Unix.
    assert a.read_bytes()[:10] == bytes.fromhex("1f8b0800000000000003")


def test_tar_refuses_symlinks(tree):
    os.symlink("etcd", tree / "etcd-v9.9.9-linux-amd64" / "link")
    with pytest.raises(ValueError, match="only directories and regular files"):
        _tar(tree)


# --------------------------------------------------------------- SHA256SUMS

def test_sums_line_format():
    assert mirror.sums_line(SHA_A, "etcd-v3.5.30-linux-amd64.tar.gz") == (
        f"{SHA_A}  etcd-v3.5.30-linux-amd64.tar.gz\n")


def test_sums_ok(tmp_path):
    f = tmp_path / "etcd-v9.9.9-linux-amd64.tar.gz"
    f.write_bytes(b"tarball")
    sums = tmp_path / "SHA256SUMS"
    assert not mirror.sums_ok(tmp_path)
    sums.write_text(mirror.sums_line(hashlib.sha256(b"tarball").hexdigest(), f.name))
    assert mirror.sums_ok(tmp_path)
    if shutil.which("sha256sum"):  # the format sha256sum -c reads, as users check it
        subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=tmp_path, check=True)
    f.write_bytes(b"tampered")
    assert not mirror.sums_ok(tmp_path)
    sums.write_text("not a checksum line\n")
    assert not mirror.sums_ok(tmp_path)
