"""The README's command line is the real one: every `mlx-jina` command is documented there, and every
command and option the README shows exists (checked against click's own definitions)."""

from __future__ import annotations

import re
from pathlib import Path

from mlx_jina.cli import main

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
# `mlx-jina CMD ...` in fenced blocks and inline code; prose ("mlx-jina shows ...") is not a command
CODE = "\n".join(re.findall(r"```[a-z]*\n(.*?)```", README, flags=re.S) + re.findall(r"`([^`\n]+)`", README))
USES = [(m.group(1), m.group(2)) for m in re.finditer(r"(?:^|[\s|])mlx-jina ([a-z][a-z-]*)([^\n#]*)", CODE, re.M)]


def test_every_command_is_in_the_readme():
    documented = {name for name, _ in USES}
    assert documented, "no `mlx-jina CMD` found in the README's code"
    assert set(main.commands) - documented == set()


def test_every_readme_command_and_option_exists():
    for name, rest in USES:
        assert name in main.commands, f"README shows `mlx-jina {name}`, which is not a command"
        known = {opt for param in main.commands[name].params for opt in param.opts + param.secondary_opts}
        unknown = [opt for opt in re.findall(r"(?<![\w-])--[a-z][a-z-]*", rest) if opt not in known | {"--help"}]
        assert not unknown, f"README: `mlx-jina {name}` has no option {unknown}"
