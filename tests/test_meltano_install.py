"""The README's Meltano install instructions work as written: its commands, run one by one in a
fresh `meltano init` project, with `/path/to/target-ortto` being this checkout."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

MELTANO_BIN = Path(sys.executable).parent
PLACEHOLDER = "/path/to/target-ortto"
KEY = "readme-key-93c2f1"


def install_block() -> str:
    text = (REPO / "README.md").read_text()
    found = re.search(r"<!-- install:start[^\n]*-->\n(.*?)<!-- install:end -->", text, re.S)
    assert found, "README lacks the <!-- install:start --> block"
    return found.group(1)


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", install_block(), re.S)


def commands() -> list[str]:
    lines = [line for block in code_blocks("bash") for line in block.splitlines()]
    return [line for line in lines if line.startswith("meltano ")]


def shell(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    done = subprocess.run(
        ["bash", "-c", command.replace(PLACEHOLDER, str(REPO))],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"{command}\n{done.stderr[-3000:]}"
    assert KEY not in done.stdout + done.stderr, command
    return done


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> tuple[Path, dict[str, str], dict[str, str]]:
    """A new Meltano project after the README's commands: the project, the environment, and
    what each command printed."""
    env = {
        **os.environ,
        "PATH": f"{MELTANO_BIN}{os.pathsep}{os.environ['PATH']}",
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "ORTTO_API_KEY": KEY,
    }
    for name in list(env):
        if name.startswith("TARGET_ORTTO_"):
            del env[name]  # nothing from the outside: only what the commands set
    base = tmp_path_factory.mktemp("meltano-install")
    shell("meltano init your-meltano-project", base, env)
    root = base / "your-meltano-project"
    [pip_url] = re.findall(r"pip_url: (.+)", code_blocks("yaml")[0])
    printed = {}
    for command in commands():
        printed[command] = shell(command, root, env).stdout
        if command.startswith("meltano add "):  # then the README's edit of pip_url
            text = (root / "meltano.yml").read_text()
            text, edits = re.subn(r"(?m)^(\s*pip_url: ).+$", rf"\g<1>{pip_url}", text)
            assert edits == 1, text
            (root / "meltano.yml").write_text(text.replace(PLACEHOLDER, str(REPO)))
    return root, env, printed


def test_the_readme_install_commands_are_meltano_4_commands():
    assert commands()[0].startswith("meltano add --plugin-type loader target-ortto --from-ref ")
    assert "meltano install target-ortto" in commands()
    assert all(not c.startswith("meltano config target-ortto") for c in commands())  # Meltano 3


def test_the_readme_install_commands_add_and_install_the_loader(project):
    root, env, printed = project

    about = next(out for command, out in printed.items() if "--about" in command)
    assert "target-ortto" in about and "api_key" in about
    listed = next(out for command, out in printed.items() if "config list" in command)
    assert "api_key" in listed
    config = json.loads(shell("meltano config print target-ortto", root, env).stdout)
    assert config["region"] == "eu"
    assert config["streams"] == {"customers": {"object": "person", "merge_by": ["email"]}}
    assert config["api_key"] == "*****"  # set, and Meltano does not print it


def test_the_api_key_set_as_the_readme_says_stays_out_of_meltano_yml(project):
    root, _, _ = project

    assert KEY not in (root / "meltano.yml").read_text()
    assert f"TARGET_ORTTO_API_KEY='{KEY}'" in (root / ".env").read_text()
