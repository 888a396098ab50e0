import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelreg.errors import InvalidInput
from modelreg.names import Version, check_alias, check_name, parse_ref

segment = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,20}", fullmatch=True)


@given(st.one_of(segment, st.tuples(segment, segment).map("/".join)))
def test_safe_names_round_trip(name):
    assert check_name(name) == name
    ref = parse_ref(f"{name}@production")
    assert (ref.name, ref.ref, ref.kind) == (name, "production", "alias")


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "..",
        "../x",
        "/abs",
        "a/b/c",
        "UPPER",
        "a\x00b",
        "a\nb",
        "a b",
        "-lead",
        "a/..",
        "a.",
        "x" * 65,
        "a//b",
        "a/",
        "é",
    ],
)
def test_unsafe_names_refused(bad):
    with pytest.raises(InvalidInput):
        check_name(bad)


@given(st.text(max_size=30))
def test_any_accepted_name_is_path_safe(text):
    try:
        check_name(text)
    except InvalidInput:
        return
    assert not text.startswith("/") and ".." not in text.split("/")
    assert all(c.isalnum() or c in "-_./" for c in text)
    assert text.count("/") <= 1


def test_refs():
    assert parse_ref("m").kind == "latest"
    assert parse_ref("m@1.2.0").kind == "version"
    assert parse_ref("m@2.0.0-rc.1").kind == "version"
    assert parse_ref("m@latest").kind == "latest"
    assert parse_ref("team/m@staging").name == "team/m"
    with pytest.raises(InvalidInput, match="build metadata"):
        parse_ref("m@1.2.0+abc")
    with pytest.raises(InvalidInput, match="SemVer"):
        parse_ref("m@1.2")
    with pytest.raises(InvalidInput):
        parse_ref("m", default=None)
    with pytest.raises(InvalidInput, match="reserved"):
        check_alias("latest")


def test_version_order_and_bump():
    vs = [Version.parse(v) for v in ["1.10.0", "1.2.0", "1.2.0-rc.1", "0.9.9", "1.2.0-alpha"]]
    assert [v.text for v in sorted(vs)] == ["0.9.9", "1.2.0-alpha", "1.2.0-rc.1", "1.2.0", "1.10.0"]
    assert Version("1.2.3").bump("major").text == "2.0.0"
    assert Version("1.2.3").bump("minor").text == "1.3.0"
    assert Version("1.2.3").bump("patch").text == "1.2.4"
    assert Version("0.0.0").bump("minor").text == "0.1.0"


@given(st.tuples(*[st.integers(0, 10**6)] * 3))
def test_semver_matches_library(parts):
    import semver

    text = ".".join(map(str, parts))
    assert Version.is_version(text)
    assert str(semver.Version.parse(text)) == text
