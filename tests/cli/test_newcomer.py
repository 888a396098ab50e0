"""The registry-side defects a newcomer met (issue 13), each through the real CLI.

Every test here fails on the code before the fix it names: filters that could not be parsed
gave an empty result, `log` of an unknown model exited 0, `diff` left out dependencies and
identity, deprecated versions were unmarked in pipes, `--json` errors were plain text, ...
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from modelreg import Store
from modelreg.validate import validate
from tests.cli.helpers import assert_one_line_error, ok
from tests.conftest import snapshot


@pytest.fixture
def versions(tmp_path: Path, store: Store) -> Store:
    """Model `m`: 1.0.0 (test.f1 0.9885057471264368, C=1), 1.1.0 (0.75, C=10), 1.2.0 (no f1)."""
    specs = (
        ("1.0.0", {"test": {"f1": 0.9885057471264368}}, {"C": 1}, "numpy==1.26\n"),
        ("1.1.0", {"test": {"f1": 0.75}}, {"C": 10}, "numpy==2.1\nscipy>=1.14\n"),
        ("1.2.0", {"train": {"loss": 0.1}}, {"C": 5}, "numpy==2.1\n"),
    )
    for version, metrics, params, reqs in specs:
        d = tmp_path / "inputs" / version
        d.mkdir(parents=True)
        (d / "model.onnx").write_bytes(f"weights {version}".encode())
        (d / "requirements.txt").write_text(reqs)
        store.register(
            "m",
            [d / "model.onnx"],
            version=version,
            metrics=metrics,
            params=params,
            requirements=d / "requirements.txt",
            message=f"message of {version}",
            author=f"author-{version} <a@example.com>",
            detect_code=False,
            tags=("candidate",) if version == "1.1.0" else (),
        )
    return store


@pytest.mark.parametrize(
    ("where", "column"),
    [
        ("test.f1 >> 0.9", 10),
        ("test.f1 >= abc", 12),
        ("test.f1 >= 0.9 or params.C == 1", 16),
        ("f1 >= 0.9", 1),
        ("test.f1", 8),
        ("test.f1 >= 0.9 and", 19),
        ("tags.candidate == yes", 16),
    ],
)
def test_a_filter_that_does_not_parse_exits_2_with_its_column(versions, run_mreg, where, column):
    before = snapshot(versions.root)
    line = assert_one_line_error(run_mreg("list", "m", "--where", where), 2)
    assert f"invalid condition {where!r}" in line and line.endswith(f"(column {column})")
    assert snapshot(versions.root) == before


def test_list_where_gives_the_message_validate_gives_for_the_same_gate(versions, run_mreg):
    line = assert_one_line_error(run_mreg("list", "m", "--where", "test.f1 >= abc"), 2)
    config = versions.root / "config.yaml"
    config.write_text(
        config.read_text().replace("gates: {}", "gates:\n  production:\n  - test.f1 >= abc")
    )
    problems = [str(p) for p in validate(store=versions.root).problems]
    message = line.removeprefix("mreg: error: ")
    assert [p for p in problems if p.endswith(f"gates.production[0]: {message}")], problems


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("metrics.test.f1 >= 0.9", ["1.0.0"]),
        ("test.f1 >= 0.5 and params.C == 10", ["1.1.0"]),
        ("test.f1 >= 0.5 AND params.C = 1", ["1.0.0"]),
        ("params.C > 1", ["1.1.0", "1.2.0"]),
        ("tags.candidate", ["1.1.0"]),
        ("tags.candidate and metrics.test.f1 < 0.8", ["1.1.0"]),
        ("train.loss <= 0.1", ["1.2.0"]),
        ("test.f1 >= 0.99", []),
    ],
)
def test_list_where_accepts_mlflow_prefixes_and_and(versions, run_mreg, where, expected):
    rows = ok(run_mreg("list", "m", "--where", where, "--json")).json()
    assert [r["version"] for r in rows] == expected


def test_tags_added_later_are_searchable(versions, run_mreg):
    ok(run_mreg("tag", "m@1.2.0", "shadow-tested"))
    rows = ok(run_mreg("list", "--where", "tags.shadow-tested", "--json")).json()
    assert [(r["name"], r["version"]) for r in rows] == [("m", "1.2.0")]


def test_log_of_an_unknown_model_exits_2_like_history(versions, run_mreg):
    assert "no model named 'nosuch'" in assert_one_line_error(run_mreg("log", "nosuch"), 2)
    assert "no model named 'nosuch'" in assert_one_line_error(run_mreg("history", "nosuch"), 2)
    assert ok(run_mreg("log", "m", "--json")).json()  # a known model still has its entries


def test_diff_shows_dependencies_message_and_author(versions, run_mreg):
    d = ok(run_mreg("diff", "m@1.0.0", "m@1.1.0", "--json")).json()
    assert d["dependencies"]["package numpy"] == {"a": "numpy==1.26", "b": "numpy==2.1"}
    assert d["dependencies"]["package scipy"] == {"a": None, "b": "scipy>=1.14"}
    assert set(d["dependencies"]) >= {"requirements"}
    assert d["identity"]["message"] == {"a": "message of 1.0.0", "b": "message of 1.1.0"}
    assert d["identity"]["author"]["b"] == "author-1.1.0 <a@example.com>"
    text = ok(run_mreg("diff", "m@1.0.0", "m@1.1.0", env={"COLUMNS": "200"})).stdout
    for word in ("dependencies", "numpy==2.1", "scipy>=1.14", "identity", "author-1.1.0"):
        assert word in text


def test_list_marks_deprecated_versions_in_plain_output(versions, run_mreg):
    ok(run_mreg("deprecate", "m@1.1.0", "--reason", "leaked labels"))
    text = ok(run_mreg("list", "m", env={"COLUMNS": "200"})).stdout
    (row,) = [line for line in text.splitlines() if "1.1.0" in line]
    assert "deprecated" in row
    assert not [line for line in text.splitlines() if "1.0.0" in line and "deprecated" in line]


def test_rollback_to_where_the_alias_is_exits_0_like_promote(versions, run_mreg):
    ok(run_mreg("promote", "m@1.0.0", "--to", "production"))
    before = snapshot(versions.root)
    for args in (("promote", "m@1.0.0", "--to", "production"), ("rollback", "m", "--to", "1.0.0")):
        assert ok(run_mreg(*args, "--json")).json()["changed"] is False
    assert snapshot(versions.root) == before


def test_version_flag(run_mreg):
    from modelreg import __version__

    assert ok(run_mreg("--version")).stdout == f"mreg {__version__}\n"


@pytest.mark.parametrize(
    ("command", "usage"),
    [
        (("show",), "Usage: mreg show [OPTIONS] REF"),
        (("diff",), "Usage: mreg diff [OPTIONS] A B"),
        (("tag",), "Usage: mreg tag [OPTIONS] REF TAGS..."),
        (("list",), "Usage: mreg list [OPTIONS] [NAME]"),
        (("release", "start"), "Usage: mreg release start [OPTIONS] NAME"),
    ],
)
def test_usage_lines_name_arguments_without_braces(run_mreg, command, usage):
    text = ok(run_mreg(*command, "--help")).stdout
    assert text.splitlines()[0] == usage
    assert "{" not in text.splitlines()[0]


def test_tables_round_metrics_and_json_keeps_them(versions, run_mreg):
    table = ok(run_mreg("list", "m", "--sort", "test.f1", env={"COLUMNS": "200"})).stdout
    assert "0.9885" in table and "0.9885057" not in table
    card = ok(run_mreg("show", "m@1.0.0", env={"COLUMNS": "200"})).stdout
    assert "0.9885" in card and "0.9885057" not in card
    assert (
        ok(run_mreg("show", "m@1.0.0", "--json")).json()["metrics"]["test"]["f1"]
        == 0.9885057471264368
    )


def test_show_alias_says_who_moved_it_and_when(versions, run_mreg):
    ok(run_mreg("promote", "m@1.1.0", "--to", "production", "--reason", "better recall"))
    doc = ok(run_mreg("show", "m@production", "--json")).json()
    move = doc["alias_moves"]["production"]
    assert (move["action"], move["actor"], move["reason"]) == (
        "promote", "Test Author <test@example.com>", "better recall",
    )  # fmt: skip
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", move["time"])
    text = ok(run_mreg("show", "m@production", env={"COLUMNS": "200"})).stdout
    assert "Test Author" in text and move["time"] in text and "better recall" in text


def test_json_errors_are_one_json_object_on_stderr(versions, run_mreg):
    for args, code, kind in (
        (("show", "nosuch", "--json"), 2, "NotFound"),
        (("list", "m", "--where", "f1 >> 1", "--json"), 2, "InvalidInput"),
        (("rollback", "m", "--alias", "staging", "--json"), 2, "NotFound"),
        (("list", "--json", "--no-such-option"), 2, "UsageError"),
    ):
        res = run_mreg(*args)
        assert res.returncode == code, res
        assert res.stdout == ""
        (line,) = res.stderr.splitlines()
        err = json.loads(line)["error"]
        assert (err["type"], err["exit_code"]) == (kind, code)
        assert err["message"] and "\n" not in err["message"]
    # without --json, the same error stays one plain line
    assert_one_line_error(run_mreg("show", "nosuch"), 2)


def test_tag_deprecate_promote_json_use_name_like_the_rest(versions, run_mreg):
    shapes = [
        ok(run_mreg("tag", "m@1.0.0", "blue", "--json")).json(),
        ok(run_mreg("deprecate", "m@1.2.0", "--reason", "x", "--json")).json(),
        ok(run_mreg("promote", "m@1.0.0", "--to", "staging", "--json")).json(),
        ok(run_mreg("show", "m@1.0.0", "--json")).json(),
    ]
    for doc in shapes:
        assert doc["name"] == "m" and "model" not in doc


@pytest.mark.parametrize("desc", [False, True])
def test_sorting_by_a_metric_puts_versions_without_it_last(versions, run_mreg, desc):
    args = ["list", "m", "--sort", "metrics.test.f1", "--json"] + (["--desc"] if desc else [])
    order = [r["version"] for r in ok(run_mreg(*args)).json()]
    assert order == (["1.0.0", "1.1.0", "1.2.0"] if desc else ["1.1.0", "1.0.0", "1.2.0"])


def test_metrics_file_error_shows_a_split_example(tmp_path, store, run_mreg):
    (tmp_path / "m.onnx").write_bytes(b"w")
    bad = tmp_path / "metrics.yaml"
    bad.write_text("f1: 0.9\n")
    line = assert_one_line_error(
        run_mreg(
            "register", "m", str(tmp_path / "m.onnx"), "--no-code", "--metrics-file", str(bad)
        ),
        2,
    )
    assert "e.g. 'test: {f1: 0.9}'" in line


def test_unknown_remote_protocol_is_quoted_whole(store, run_mreg):
    line = assert_one_line_error(run_mreg("remote", "add", "o", "s4://bucket/x"), 2)
    assert "'s4://'" in line
