"""fio's fdatasync figures are read from a real fio 3.33 report (captured on this machine)."""
from __future__ import annotations

import json
from pathlib import Path

from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_volume import fdatasync_figures


def test_figures_from_a_real_fio_report():
    report = json.loads((Path(__file__).parent / "fixtures" / "fio" / "fdatasync-3.33.json").read_text())
    figures = fdatasync_figures(report)
    assert figures["fdatasync_p99_ms"] == 3.785
    assert 0 < figures["fdatasync_p50_ms"] <= figures["fdatasync_p99_ms"] <= figures["fdatasync_max_ms"]
    assert figures["syncs"] > 9000 and figures["runtime_s"] > 0
