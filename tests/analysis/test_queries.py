"""PromQL templates (issue 17): presets, overrides, placeholders, escaping, the manifest entry."""

from __future__ import annotations

import pytest

from modelreg.analysis.checks import checks_from_list, normalize, plan_of, read_checks_file
from modelreg.analysis.queries import PRESETS, QuerySet, escape, placeholders, preset, queries_of
from modelreg.errors import InvalidInput

SIDE = dict(model="fraud", version="1.1.0", variant="canary", window_s=299.2)


def test_presets_render_one_query_per_side():
    assert PRESETS == ("mreg", "istio", "linkerd")
    q = preset("istio", service="fraud-svc", namespace="ml")
    assert q.render("errors", **SIDE) == (
        'sum(increase(istio_requests_total{reporter="destination",'
        'destination_service_name="fraud-svc",destination_service_namespace=~"ml",'
        'destination_version="1.1.0",response_code=~"5.."}[300s]))'
    )
    assert q.render("latency", **SIDE).startswith(
        "sum by (le) (increase(istio_request_duration_milliseconds_bucket{"
    )
    assert q.latency_unit == "ms"
    m = preset("mreg")
    assert m.render("requests", **SIDE) == (
        'sum(increase(mreg_requests_total{model="fraud",variant="canary",version="1.1.0"}[300s]))'
    )
    assert m.latency_unit == "s" and m.is_plain_mreg
    lk = preset("linkerd")
    # service defaults to the model's name, namespace to any
    assert 'deployment="fraud-1.1.0"' in lk.render("requests", **SIDE)
    assert 'namespace=~".*"' in lk.render("requests", **SIDE)
    assert 'classification="failure"' in lk.render("errors", **SIDE)


def test_window_is_whole_seconds_at_least_one():
    q = preset("mreg")
    assert "[1s]" in q.render("requests", **{**SIDE, "window_s": 0})
    assert "[61s]" in q.render("requests", **{**SIDE, "window_s": 60.01})


def test_placeholders_allow_spaces_or_none_and_free_text_renders():
    q = QuerySet.from_dict({"requests": 'sum(a{v="{{version}}"})', "errors": "sum(b)"})
    assert q.render("requests", **SIDE) == 'sum(a{v="1.1.0"})'
    text = 'x{m="{{  model}}",w="{{window }}",s="{{ variant }}"}'
    assert q.render(text, **SIDE) == 'x{m="fraud",w="300s",s="canary"}'
    assert placeholders(text) == ["model", "window", "variant"]


def test_values_are_escaped_for_a_double_quoted_string():
    assert escape('a"b\\c') == 'a\\"b\\\\c'
    q = QuerySet.from_dict(
        {"requests": 'sum(r{s="{{ service }}"})', "errors": "sum(e)",
         "vars": {"service": 'we"ird\\'}}
    )  # fmt: skip
    assert q.render("requests", **SIDE) == 'sum(r{s="we\\"ird\\\\"})'


def test_user_vars_are_placeholders():
    q = QuerySet.from_dict(
        {"requests": 'sum(r{c="{{ cluster }}"})', "errors": "sum(e)", "vars": {"cluster": "eu"}}
    )
    assert q.render("requests", **SIDE) == 'sum(r{c="eu"})'


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        ({"requests": 'sum(r{x="{{ target }}"})', "errors": "e"}, "unknown placeholder"),
        ({"preset": "istio", "errors": "{{ interval }}"}, "unknown placeholder"),
        ({"preset": "consul"}, "unknown preset"),
        ("consul", "unknown preset"),
        ({"preset": "istio", "query": "x"}, "unknown key(s) query"),
        ({"requests": "r"}, "errors is required"),
        ({"preset": "istio", "latency_unit": "us"}, "latency_unit"),
        ({"preset": "istio", "requests": ""}, "non-empty"),
        ({"preset": "istio", "requests": "x" * 5000}, "longer than"),
        ({"preset": "istio", "vars": {"version": "1"}}, "invalid var name"),
        ({"preset": "istio", "vars": {"service": "a\nb"}}, "control character"),
        ({"preset": "istio", "vars": {"service": 3}}, "non-empty text"),
        ({"preset": "istio", "vars": {f"v{i}": "x" for i in range(17)}}, "at most"),
        ({"preset": "istio", "outcomes": {"rev": {"count": "c"}}}, "count and sum"),
        ({"preset": "istio", "outcomes": {"rev": {"count": "c", "sum": "s", "x": 1}}}, "unknown"),
        ({"preset": "istio", "outcomes": {"Rev": ["c", "s"]}}, "invalid outcome name"),
        ({"preset": "istio", "outcomes": {"rev": ["c", "{{ bad }}"]}}, "unknown placeholder"),
        (["istio"], "a preset's name or a mapping"),
    ],
)
def test_malformed_query_sets_are_refused_in_one_line(doc, words):
    with pytest.raises(InvalidInput) as err:
        QuerySet.from_dict(doc)
    assert err.value.exit_code == 2
    assert words in str(err.value) and "\n" not in str(err.value)


def test_overrides_start_from_the_preset_and_round_trip():
    doc = {
        "preset": "istio",
        "vars": {"service": "fraud", "namespace": "ml"},
        "errors": 'sum(increase(istio_requests_total{response_code=~"5..|429"}[{{ window }}]))',
        "outcomes": {"orders": {"count": "sum(o)", "sum": "sum(o)", "sumsq": "sum(o)"},
                     "revenue": ["sum(rc)", "sum(rs)"]},
    }  # fmt: skip
    q = QuerySet.from_dict(doc)
    assert q.requests == preset("istio").requests
    assert q.errors == doc["errors"]
    assert q.outcomes == {"orders": ("sum(o)", "sum(o)"), "revenue": ("sum(rc)", "sum(rs)")}
    assert q.sumsq == {"orders": "sum(o)"}
    again = q.to_dict()
    assert "requests" not in again and again["errors"] == doc["errors"]
    assert QuerySet.from_dict(again) == q
    assert QuerySet.from_dict("istio").to_dict() == {"preset": "istio"}
    no_latency = QuerySet.from_dict({"preset": "istio", "latency": None})
    assert no_latency.latency is None and QuerySet.from_dict(no_latency.to_dict()) == no_latency
    own = QuerySet.from_dict({"requests": "sum(r)", "errors": "sum(e)"})
    assert own.to_dict() == {"requests": "sum(r)", "errors": "sum(e)", "latency_unit": "ms"}
    assert QuerySet.from_dict(own.to_dict()) == own


def test_the_analysis_entry_is_accepted_kept_and_read(tmp_path):
    analysis = ["error_rate <= baseline + 1pt", {"queries": "istio"}, {"policy": {"passes": 1}}]
    checks, policy = checks_from_list(analysis)
    assert [c.metric for c in checks] == ["error_rate"] and policy.passes == 1
    stored = normalize(analysis)
    assert stored[-1] == {"queries": {"preset": "istio"}}
    assert queries_of(stored) == preset("istio")
    assert plan_of(stored)[0] == checks
    assert queries_of(normalize(["error_rate < 2%"])) is None
    assert queries_of(normalize([preset("linkerd")])) == preset("linkerd")
    with pytest.raises(InvalidInput, match="two queries entries"):
        checks_from_list([{"queries": "istio"}, {"queries": "linkerd"}])
    with pytest.raises(InvalidInput, match="unknown preset"):
        checks_from_list([{"queries": "nope"}])
    f = tmp_path / "checks.yaml"
    f.write_text(
        "checks: ['error_rate <= baseline + 1pt']\n"
        "queries: {preset: istio, vars: {service: fraud}}\n"
    )
    assert queries_of(read_checks_file(f)) == preset("istio", service="fraud")
