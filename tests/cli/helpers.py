"""Assertions shared by the CLI tests."""

from pathlib import Path


def ok(res):
    """The command succeeded without a traceback; return it for further checks."""
    assert res.returncode == 0, res
    assert "Traceback" not in res.stderr, res
    return res


def assert_one_line_error(res, code: int) -> str:
    """The command failed with `code` and exactly one `mreg: error:` line on stderr."""
    assert res.returncode == code, res
    assert "Traceback" not in res.stderr, res
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res
    assert lines[0].startswith("mreg: error: "), res
    return lines[0]


def make_writable(path: Path) -> None:
    """`chmod u+w`: store files are read-only, a test damaging one must unlock it first."""
    import stat

    path.chmod(path.stat().st_mode | stat.S_IWUSR)
