"""The containers drop-in (systemd/examples/containers.conf) keeps the backup unit's hardening.

`systemd-analyze security --offline=yes --root=DIR` reads the unit and its
drop-ins from DIR/etc/systemd/system; the control drop-in proves that
drop-ins are really read there.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from tests.unit.test_units import EXPOSURE_BAR

ROOT = Path(__file__).resolve().parent.parent.parent
UNIT = "vhbackup-backup.service"
DROP_IN = ROOT / "systemd" / "examples" / "containers.conf"


def exposure(root: Path) -> tuple[float, str]:
    result = subprocess.run(["systemd-analyze", "security", "--offline=yes", f"--root={root}", "--no-pager",
                             f"--threshold={int(EXPOSURE_BAR[UNIT] * 10)}", UNIT],
                            capture_output=True, text=True, timeout=120)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    return float(match.group(1)), result.stdout + result.stderr


def unit_root(tmp_path: Path, *drop_ins: tuple[str, str]) -> Path:
    units = tmp_path / "etc" / "systemd" / "system"
    (units / f"{UNIT}.d").mkdir(parents=True)
    shutil.copy(ROOT / "systemd" / UNIT, units)
    for name, text in drop_ins:
        (units / f"{UNIT}.d" / name).write_text(text)
    return tmp_path


def test_the_containers_drop_in_keeps_the_exposure_of_the_backup_unit(tmp_path):
    plain, _ = exposure(unit_root(tmp_path / "plain"))
    with_containers, output = exposure(unit_root(tmp_path / "containers", ("containers.conf", DROP_IN.read_text())))
    assert with_containers <= plain <= EXPOSURE_BAR[UNIT], output
    assert "Unknown" not in output and "Ignoring" not in output, output


def test_drop_ins_are_read_by_the_offline_analysis(tmp_path):
    plain, _ = exposure(unit_root(tmp_path / "plain"))
    loosened, _ = exposure(unit_root(tmp_path / "loose", ("zz.conf", "[Service]\nPrivateDevices=no\n")))
    assert loosened > plain


def test_the_drop_in_only_points_podman_at_its_api_service():
    """No sandbox setting is relaxed: only ordering, podman.socket and CONTAINER_HOST."""
    keys = [line.split("=", 1)[0] for line in DROP_IN.read_text().splitlines()
            if line and not line.startswith(("#", "["))]
    assert sorted(keys) == ["After", "Environment", "Wants"]
    assert "Environment=CONTAINER_HOST=unix:///run/podman/podman.sock" in DROP_IN.read_text()
