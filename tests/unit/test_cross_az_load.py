"""bench/cross_az_load.py report: the side-by-side table and its verdict."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import cross_az_load  # noqa: E402


def summary(label, heartbeat, election, changes, errors=0):
    return {"label": label, "heartbeat_interval": heartbeat, "election_timeout": election, "seconds": 300.0,
            "rate": 50.0, "sent": 15000, "ok": 15000 - errors, "errors": errors,
            "error_kinds": {"TimeoutError": errors} if errors else {}, "late_starts": 0, "p50_ms": 82.0,
            "p90_ms": 90.0, "p99_ms": 1900.0, "max_ms": 2400.0, "leader_changes": changes,
            "raft_term_delta": changes, "leader_switches_polled": 3 * changes, "heartbeat_send_failures": 0}


@pytest.mark.parametrize("default_changes, tuned_changes, expect, rc, words", [
    (4, 0, True, 0, "PASS: no leader change on the tuned cluster, 4 on the default one"),
    (4, 1, True, 1, "FAIL: the tuned cluster changed leader"),
    (0, 0, True, 2, "NO DIFFERENCE"),
    (0, 0, False, 0, "PASS"),  # without the bad link, equal rows are the expected outcome
])
def test_report_rows_and_verdict(tmp_path, capsys, default_changes, tuned_changes, expect, rc, words):
    paths = []
    for data in (summary("default", 100, 1000, default_changes, errors=98 if default_changes else 0),
                 summary("tuned", 100, 5000, tuned_changes)):
        path = tmp_path / ("%s.json" % data["label"])
        path.write_text(json.dumps(data))
        paths.append(str(path))
    argv = ["report"] + (["--expect-difference"] if expect else []) + paths
    assert cross_az_load.main(argv) == rc
    out = capsys.readouterr().out
    assert words in out
    rows = {line[:28].strip(): line[28:].split() for line in out.splitlines()[1:] if line[:1] != " "}
    assert rows["heartbeat / election ms"] == ["100", "/", "1000", "100", "/", "5000"]
    assert rows["leader changes (metric)"] == [str(default_changes), str(tuned_changes)]


def test_plain_http_endpoints_need_no_certificates():
    client = cross_az_load.Client(None, None, None, timeout=1)
    conn = client._conn("http://127.0.0.1:2379")
    assert type(conn).__name__ == "HTTPConnection"
    with pytest.raises(ValueError, match="needs --cacert"):
        client._conn("https://127.0.0.1:2379")
