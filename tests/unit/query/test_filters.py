import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamer.core.errors import QueryError
from streamer.query.filters import build_filter, literal

ALLOWED = ("tenant", "lang", "n")


def test_structured_filters_become_expressions() -> None:
    expr = build_filter({"tenant": "acme", "lang": ["en", "fr"], "n": 3}, ALLOWED)
    assert expr == (
        '(metadata["lang"] == "en" or metadata["lang"] == "fr") and '
        'metadata["n"] == 3 and metadata["tenant"] == "acme"'
    )
    assert build_filter({}, ALLOWED) == ""


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('acme" or metadata["tenant"] == "other', r'"acme\" or metadata[\"tenant\"] == \"other"'),
        ("a\\", r'"a\\"'),
        ("x') or true or ('", "\"x') or true or ('\""),
        (True, "true"),
        (2.5, "2.5"),
    ],
)
def test_values_are_literals(value: object, expected: str) -> None:
    assert literal(value) == expected


@pytest.mark.parametrize(
    ("filters", "reason"),
    [
        ({"owner": "me"}, "declared metadata fields"),
        ({'tenant"] == "x" or metadata["a': "v"}, "declared metadata fields"),
        ({"tenant": {"$ne": 1}}, "strings, numbers or booleans"),
        ({"tenant": None}, "strings, numbers or booleans"),
        ({"tenant": []}, "empty list"),
        ({"tenant": ["a"] * 101}, "more than 100"),
        ({"tenant": "a\nb"}, "control characters"),
        ({"n": float("nan")}, "finite"),
        ({"n": 2**70}, "out of range"),
        ({"tenant": "x" * 600}, "longer than"),
    ],
)
def test_refused_filters(filters: dict[str, object], reason: str) -> None:
    with pytest.raises(QueryError, match=reason):
        build_filter(filters, ALLOWED)


@given(st.text(alphabet=st.characters(min_codepoint=32, exclude_characters="\x7f"), max_size=60))
def test_no_string_escapes_its_literal(value: str) -> None:
    """Whatever the value, the literal is one quoted token: every inner quote is escaped."""
    token = literal(value)
    assert token.startswith('"') and token.endswith('"')
    body = token[1:-1]
    i = 0
    while i < len(body):
        if body[i] == "\\":
            assert body[i + 1] in '\\"'
            i += 2
            continue
        assert body[i] != '"'
        i += 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, "true"),
        (False, "false"),
        ("true", "true"),
        (" Yes ", "true"),
        ("1", "true"),
        ("FALSE", "false"),
        ("no", "false"),
        ("0", "false"),
    ],
)
def test_a_label_filter_matches_the_classifiers_verdict(value: object, expected: str) -> None:
    assert build_filter({"label:cats": value}, ALLOWED) == (
        f'metadata["classifiers"]["cats"]["label"] == {expected}'
    )


def test_label_filters_compose_with_declared_fields() -> None:
    expr = build_filter(
        {"tenant": "acme", "label:cats": True, "label:dog-2_x": "no", "lang": ["en", "fr"]},
        ALLOWED,
    )
    assert expr == (
        'metadata["classifiers"]["cats"]["label"] == true and '
        'metadata["classifiers"]["dog-2_x"]["label"] == false and '
        '(metadata["lang"] == "en" or metadata["lang"] == "fr") and '
        'metadata["tenant"] == "acme"'
    )


@pytest.mark.parametrize(
    "name", ['x"] or 1==1', "Cats", "", "1cats", "cats dogs", "c" * 65, 'cats"]["label']
)
def test_a_label_filter_takes_only_a_classifiers_name(name: str) -> None:
    with pytest.raises(QueryError, match="a classifier's name is lower-case") as info:
        build_filter({f"label:{name}": True}, ALLOWED)
    assert "label:" in str(info.value)


@pytest.mark.parametrize("value", [1, 0, 0.5, "maybe", "", None, [True], ["true"], {"a": 1}])
def test_a_label_filter_takes_only_true_or_false(value: object) -> None:
    with pytest.raises(QueryError, match="filter label:cats takes true or false"):
        build_filter({"label:cats": value}, ALLOWED)


def test_an_unknown_field_names_the_label_filters_too() -> None:
    with pytest.raises(QueryError) as info:
        build_filter({"owner": "me"}, ALLOWED)
    message = str(info.value)
    assert "['lang', 'n', 'tenant']" in message
    assert "label:<classifier>" in message
