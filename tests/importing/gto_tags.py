"""Run gto's own CLI commands in one process; run with the gto virtualenv's python.

`python gto_tags.py REPO 'register clf --version v1.0.0' ...`: each argument is one `gto`
command line, run by gto's Typer app (`gto.cli.app`, what the `gto` script runs) with
`--repo REPO`. One process instead of one `gto` per command: gto takes 1-3 s to start on a
loaded machine.
"""

from __future__ import annotations

import shlex
import sys

from gto.cli import app

repo, commands = sys.argv[1], sys.argv[2:]
for line in commands:
    args = shlex.split(line)
    app([*args, "--repo", repo], standalone_mode=False)
