import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelreg import yamlio
from modelreg.errors import IntegrityError, InvalidInput

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**60), 2**60),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
docs = st.recursive(
    scalars,
    lambda kids: st.one_of(
        st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=10), docs, max_size=5))
def test_dump_load_round_trip_is_canonical(doc):
    data = yamlio.dump(doc)
    assert yamlio.load(data) == doc
    assert yamlio.dump(yamlio.load(data)) == data


def test_error_has_file_and_line():
    with pytest.raises(InvalidInput, match=r"^f.yaml:2:\d+: "):
        yamlio.load(b"a: 1\nb: *undefined\n", "f.yaml")


def test_custom_tags_refused():
    with pytest.raises(InvalidInput):
        yamlio.load(b"!!python/object/apply:os.system ['echo pwned']")


def test_billion_laughs_refused():
    lol = b"a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b]\n"
    with pytest.raises(InvalidInput, match="aliases"):
        yamlio.load(lol)


def test_deep_nesting_refused():
    with pytest.raises(InvalidInput, match="nested"):
        yamlio.load(b"[" * 100 + b"]" * 100)


def test_size_limit_and_utf8():
    with pytest.raises(InvalidInput, match="larger"):
        yamlio.load(b"x" * (yamlio.MAX_BYTES + 1))
    with pytest.raises(IntegrityError, match="UTF-8"):
        yamlio.load(b"a: \xff\xfe", error=IntegrityError)


def test_json_params_file():
    assert yamlio.loads_data(b'{"lr": 0.1}', "p.json") == {"lr": 0.1}
    with pytest.raises(InvalidInput, match="invalid JSON"):
        yamlio.loads_data(b"{lr: }", "p.json")
