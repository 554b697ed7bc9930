"""The man page and the bash completion cover every command and option that the CLI has."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vhbackup.cli import build_parser
from vhbackup.commands import COMMANDS

ROOT = Path(__file__).resolve().parent.parent.parent
MAN = ROOT / "man" / "vhbackup.8"
COMPLETION = ROOT / "completion" / "vhbackup"


def subcommands() -> dict[str, list[str]]:
    """command -> its option strings (without the global ones)."""
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    global_options = {o for a in parser._actions for o in a.option_strings}
    return {name: [o for a in sub._actions for o in a.option_strings if o not in global_options]
            for name, sub in action.choices.items()}


@pytest.fixture(scope="module")
def man_text() -> str:
    env = dict(os.environ, MANWIDTH="200", LC_ALL="C.UTF-8")
    result = subprocess.run(["man", "--warnings", "-l", str(MAN)], capture_output=True, text=True, env=env,
                            timeout=60)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return result.stdout


def section(text: str, command: str) -> str:
    match = re.search(rf"^   vhbackup {command}\b.*?(?=^   vhbackup |^[A-Z])", text, re.M | re.S)
    assert match, f"no section for vhbackup {command} in the man page"
    return match.group(0)


def test_man_page_documents_every_command_and_its_options(man_text):
    for command, options in subcommands().items():
        body = section(man_text, command)
        for option in options:
            assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", body), \
                f"vhbackup {command} {option} is missing from man/vhbackup.8"


def test_man_page_documents_global_options_exit_codes_units_and_files(man_text):
    for option in ("--config", "--verbose", "--quiet", "--wait", "--version"):
        assert option in man_text
    exit_status = man_text.split("EXIT STATUS", 1)[1].split("ENVIRONMENT", 1)[0]
    for code in ("0", "1", "2", "3", "75", "78"):
        assert re.search(rf"^\s+{code}\s+\S", exit_status, re.M), f"exit code {code}"
    for unit in sorted(p.name for p in (ROOT / "systemd").iterdir() if p.suffix in (".service", ".timer")):
        assert unit in man_text, unit
    for path in ("/etc/vhbackup/policy.yml", "/etc/vhbackup/credentials/", "/var/lib/vhbackup/",
                 "/var/cache/vhbackup/", "vhbackup.catalog"):
        assert path in man_text, path
    for variable in ("VHBACKUP_CONFIG", "DRY_RUN", "CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET"):
        assert variable in man_text


def test_completion_lists_every_command():
    listed = re.search(r'local commands="([^"]+)"', COMPLETION.read_text()).group(1).split()
    assert listed == list(COMMANDS)


def complete(tmp_path, *words: str) -> list[str]:
    """Run the completion function in bash with bash-completion, for the command line ``words``."""
    launcher = tmp_path / "vhbackup"
    launcher.write_text(f"#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -m vhbackup \"$@\"\n")
    launcher.chmod(0o755)
    quoted = " ".join(f"'{w}'" for w in words)
    script = (
        "source /usr/share/bash-completion/bash_completion\n"
        f"source {COMPLETION}\n"
        f"COMP_WORDS=({quoted}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))\n"
        'COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}\n'
        '_vhbackup vhbackup "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"\n'
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = dict(os.environ, PATH=f"{tmp_path}:{os.environ['PATH']}")
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    return sorted(filter(None, result.stdout.splitlines()))


def test_completion_offers_commands_and_each_commands_own_options(tmp_path):
    assert complete(tmp_path, "vhbackup", "") == sorted(COMMANDS)
    assert complete(tmp_path, "vhbackup", "res") == ["restore"]
    options = subcommands()
    assert set(options["backup"]) - {"-h"} <= set(complete(tmp_path, "vhbackup", "backup", "--"))
    assert complete(tmp_path, "vhbackup", "--wait", "2h", "restore", "--in") == ["--into-database"]
    assert complete(tmp_path, "vhbackup", "config", "") == ["check"]
    assert complete(tmp_path, "vhbackup", "config", "check", "--if") == ["--if-configured"]
    assert complete(tmp_path, "vhbackup", "key", "") == ["list", "rotate"]
    assert complete(tmp_path, "vhbackup", "key", "rotate", "--d") == ["--dry-run"]
    assert complete(tmp_path, "vhbackup", "recovery-sheet", "--j") == ["--json"]
    assert "--unit" in complete(tmp_path, "vhbackup", "-c", "/etc/vhbackup/policy.yml", "notify", "--")
