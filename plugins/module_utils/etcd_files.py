# -*- coding: utf-8 -*-
"""Bring folders, small text files and links to a wanted state in one pass.

Behind the etcd_files module: one round trip for everything a role installs, where the
builtin file, copy and template modules need one per file. Owner, group and mode are set
before a new file appears (atomic rename). Nothing an operator owns is deleted: a file or
folder standing where a link belongs is moved aside with the date.
"""
from __future__ import annotations

import datetime as dt
import grp
import hashlib
import os
import pwd
import tempfile
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

DIFF_LIMIT = 64 * 1024  # larger files are reported as changed without their text


class FilesError(Exception):
    """A refusal before or while changing files; the message names the path."""


@dataclass
class Outcome:
    changed: List[str] = field(default_factory=list)
    moved_aside: List[str] = field(default_factory=list)
    diff: List[Dict[str, str]] = field(default_factory=list)


def _ids(owner: Optional[str], group: Optional[str]) -> Optional[Tuple[int, int]]:
    """uid and gid to set (-1: leave as it is), or None when an account does not exist."""
    try:
        return (pwd.getpwnam(owner).pw_uid if owner else -1, grp.getgrnam(group).gr_gid if group else -1)
    except KeyError:
        return None


def file_sha256(path: str) -> str:
    """SHA-256 of a file read in 1 MiB blocks (etcd binaries are tens of MB); '' when it is missing."""
    if not os.path.isfile(path):
        return ""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read(path: str) -> Optional[bytes]:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _text(data: Optional[bytes]) -> str:
    if data is None:
        return ""
    return data.decode("utf-8", "replace") if len(data) <= DIFF_LIMIT else "(%d bytes)\n" % len(data)


def apply(items: Sequence[Mapping[str, Any]], check: bool = False, want_diff: bool = False,
          now: Optional[dt.datetime] = None) -> Outcome:
    """Apply each item in order (folders before the files in them); see the module's docs."""
    out = Outcome()
    stamp = (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    for item in items:
        path, state = item["path"], item.get("state") or "file"
        owner, group = item.get("owner"), item.get("group")
        mode = int(item["mode"], 8) if item.get("mode") else None
        ids = _ids(owner, group)
        if ids is None and not check:
            raise FilesError("%s: account %s or group %s does not exist on this host" % (path, owner, group))
        before = os.lstat(path) if os.path.lexists(path) else None

        if state == "directory":
            if before is not None and not os.path.isdir(path):
                raise FilesError("%s exists and is not a folder; move it away first" % path)
            if before is None:
                out.changed.append(path)
                if not check:
                    os.makedirs(path, mode=mode or 0o755)
        elif state == "link":
            target = item["src"]
            if before is not None and os.path.islink(path) and os.readlink(path) == target:
                continue
            out.changed.append(path)
            if want_diff:
                out.diff.append({"before_header": path, "after_header": path,
                                 "before": (os.readlink(path) if before is not None and os.path.islink(path)
                                            else "") + "\n", "after": target + "\n"})
            if check:
                continue
            if before is not None and not os.path.islink(path):
                aside = "%s.replaced-%s" % (path, stamp)
                os.rename(path, aside)
                out.moved_aside.append(aside)
            tmp = "%s.tmp-%s" % (path, stamp)
            os.symlink(target, tmp)
            os.rename(tmp, path)
            continue
        elif state == "file":
            if before is not None and not os.path.isfile(path):
                raise FilesError("%s exists and is not a regular file; move it away first" % path)
            data = item["content"].encode()
            if not data.endswith(b"\n"):
                data += b"\n"
            current = _read(path) if before is not None else None
            if current != data:
                out.changed.append(path)
                if want_diff:
                    out.diff.append({"before_header": path, "after_header": path,
                                     "before": _text(current), "after": _text(data)})
                if not check:
                    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix="." + os.path.basename(path))
                    try:
                        if ids is not None:
                            os.fchown(fd, *ids)
                        os.fchmod(fd, mode if mode is not None else 0o644)
                        os.write(fd, data)
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                    os.rename(tmp, path)
                continue
        else:
            raise FilesError("%s: state %r is not file, directory or link" % (path, state))

        # Existing folder or unchanged file: owner, group and mode.
        if not os.path.lexists(path):  # check mode, folder not made
            continue
        st = os.lstat(path)
        wrong_owner = ids is None or any(want not in (-1, have) for want, have in zip(ids, (st.st_uid, st.st_gid)))
        wrong_mode = mode is not None and st.st_mode & 0o7777 != mode
        if wrong_owner or wrong_mode:
            if path not in out.changed:
                out.changed.append(path)
            if not check:
                if wrong_owner and ids is not None:
                    os.chown(path, *ids)
                if wrong_mode:
                    os.chmod(path, mode)
    return out
