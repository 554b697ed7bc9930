"""Prometheus textfile metrics, rebuilt from the state records after every run.

node_exporter's textfile collector reads ``policy.metrics_path`` (default
``state_dir/vhbackup.prom``; point ``metrics_file`` at its directory). The
file is written to a temporary name and renamed, so the collector never
reads half a file. Only numbers and action names go in: no error text, no
paths, no secrets.
"""

from __future__ import annotations

import os

from vhbackup import state
from vhbackup.policy import Policy


def status_code(record: dict) -> int:
    """0 success, 3 partial, else the failed run's exit code (never 0)."""
    status = record.get("status")
    if status == "success":
        return 0
    if status == "partial":
        return 3
    return record.get("exit_code") or 1


_HELP = {
    "vhbackup_last_run_status": ("gauge", "Exit code of the last run of the action: 0 success, 3 partial backup, "
                                          "any other value failure."),
    "vhbackup_last_run_timestamp_seconds": ("gauge", "When the last run of the action started (Unix time)."),
    "vhbackup_last_run_duration_seconds": ("gauge", "How long the last run of the action took."),
    "vhbackup_last_run_bytes_added": ("gauge", "Bytes the last run of the action added to the repository."),
    "vhbackup_last_success_timestamp_seconds": ("gauge", "When the last successful run of the action finished "
                                                         "(Unix time)."),
    "vhbackup_free_space_bytes": ("gauge", "Free bytes on the file systems vhbackup writes to, "
                                           "as measured by the last backup."),
    "vhbackup_repository_size_bytes": ("gauge", "Size of the repository's data, as last measured (by prune)."),
    "vhbackup_item_last_status": ("gauge", "Newest backup of each file set and database: 0 success, 3 partial, "
                                           "1 failure."),
    "vhbackup_item_last_success_timestamp_seconds": ("gauge", "When the newest good backup of each file set "
                                                              "and database started (Unix time)."),
    "vhbackup_repository_last_status": ("gauge", "Newest run each repository received (label repository): "
                                                 "0 success, 1 failure; the primary's is its last backup's."),
    "vhbackup_repository_last_success_timestamp_seconds": ("gauge", "When the newest run each repository holds "
                                                                    "started (Unix time): copies lag the primary."),
}

_ITEM_STATUS = {"success": 0, "partial": 3}


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def collect(state_dir: str, primary: str = "default") -> dict[str, list[tuple[dict, float]]]:
    """Metric name -> [(labels, value)] from the records in ``state_dir``; unreadable records are skipped."""
    samples: dict[str, list[tuple[dict, float]]] = {name: [] for name in _HELP}
    size_at: tuple[float, int] | None = None
    for action in state.ACTIONS:
        last = state.read_lenient(state.last_run_path(state_dir, action))
        success = state.read_lenient(state.last_success_path(state_dir, action))
        labels = {"action": action}
        if last:
            samples["vhbackup_last_run_status"].append((labels, float(status_code(last))))
            samples["vhbackup_last_run_timestamp_seconds"].append((labels, float(last.get("started", 0))))
            samples["vhbackup_last_run_duration_seconds"].append((labels, float(last.get("duration", 0))))
            samples["vhbackup_last_run_bytes_added"].append((labels, float(last.get("bytes_added", 0))))
            size = (last.get("details") or {}).get("repository_size_bytes")
            if isinstance(size, int) and (size_at is None or last.get("started", 0) > size_at[0]):
                size_at = (last.get("started", 0), size)
            if action == "backup":
                for what, fs in sorted(((last.get("details") or {}).get("free_space") or {}).items()):
                    if isinstance(fs, dict) and isinstance(fs.get("free_bytes"), int):
                        samples["vhbackup_free_space_bytes"].append(({"filesystem": what}, float(fs["free_bytes"])))
        if success:
            finished = success.get("finished", success.get("started", 0) + success.get("duration", 0))
            samples["vhbackup_last_success_timestamp_seconds"].append((labels, float(finished)))
    if size_at is not None:
        samples["vhbackup_repository_size_bytes"].append(({}, float(size_at[1])))
    for item, entry in sorted(state.read_lenient(state.items_path(state_dir)).items()):
        if not isinstance(entry, dict):
            continue
        last, good = entry.get("last") or {}, entry.get("good") or {}
        if isinstance(last, dict) and last.get("status"):
            samples["vhbackup_item_last_status"].append(({"item": item}, float(_ITEM_STATUS.get(last["status"], 1))))
        if isinstance(good, dict) and isinstance(good.get("time"), (int, float)):
            samples["vhbackup_item_last_success_timestamp_seconds"].append(({"item": item}, float(good["time"])))
    _collect_repositories(state_dir, primary, samples)
    return samples


def _collect_repositories(state_dir: str, primary: str, samples: dict) -> None:
    """Per repository (label ``repository``): the primary's from the backup records, each copy's from copies.json."""
    last = state.read_lenient(state.last_run_path(state_dir, "backup"))
    success = state.read_lenient(state.last_success_path(state_dir, "backup"))
    if last:
        samples["vhbackup_repository_last_status"].append(({"repository": primary},
                                                           0.0 if last.get("status") != "failure" else 1.0))
    if success:
        samples["vhbackup_repository_last_success_timestamp_seconds"].append(
            ({"repository": primary}, float(success.get("started", 0))))
    for name, entry in sorted(state.read_lenient(state.copies_path(state_dir)).items()):
        if not isinstance(entry, dict):
            continue
        last, good = entry.get("last") or {}, entry.get("good") or {}
        if isinstance(last, dict) and last.get("status"):
            samples["vhbackup_repository_last_status"].append(
                ({"repository": name}, 0.0 if last["status"] == "success" else 1.0))
        if isinstance(good, dict) and isinstance(good.get("time"), (int, float)):
            samples["vhbackup_repository_last_success_timestamp_seconds"].append(({"repository": name},
                                                                                  float(good["time"])))


def render(samples: dict[str, list[tuple[dict, float]]]) -> str:
    lines = []
    for name, (kind, text) in _HELP.items():
        if not samples.get(name):
            continue
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
        for labels, value in samples[name]:
            tag = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            number = repr(int(value)) if float(value).is_integer() else repr(value)
            lines.append(f"{name}{{{tag}}} {number}" if tag else f"{name} {number}")
    return "\n".join(lines) + "\n"


def write(policy: Policy) -> str:
    """Rebuild the metrics file from the state records; returns its path."""
    path = policy.metrics_path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    state.write_text_atomic(path, render(collect(policy.state_dir, policy.repository.name)))
    return path
