"""sanitize / Namespace: safe, unique, stable C++ and Verilog identifiers."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnfab.ir.names import CPP_KEYWORDS, VERILOG_KEYWORDS, Namespace, sanitize

IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*")

# Keywords listed here from the language standards, not from names.py.
SOME_CPP_KEYWORDS = ["int", "class", "template", "namespace", "static_cast", "void", "return"]
SOME_VERILOG_KEYWORDS = ["module", "input", "output", "wire", "reg", "always", "begin", "end"]
SOME_SV_KEYWORDS = ["logic", "always_ff", "interface", "final", "string", "type", "unique"]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("dense_1", "dense_1"),
        ("Dense1", "Dense1"),
        ("my layer", "my_layer"),
        ("conv-2d", "conv_2d"),
        ("model/dense/BiasAdd:0", "model_dense_BiasAdd_0"),
        ("a  -  b", "a_b"),
        ("__hidden", "hidden"),
        ("trailing_", "trailing"),
        ("café", "cafe"),
        ("naïve_Ω", "naive"),
        ("ﬁlter", "filter"),  # ligature
        ("1dense", "l_1dense"),
        ("3", "l_3"),
        ("", "layer"),
        ("---", "layer"),
        ("层", "layer"),
        ("层1", "l_1"),
        ("🙂 relu", "relu"),
    ],
)
def test_sanitize(source: str, expected: str) -> None:
    assert sanitize(source) == expected


@pytest.mark.parametrize("word", SOME_CPP_KEYWORDS + SOME_VERILOG_KEYWORDS + SOME_SV_KEYWORDS)
def test_sanitize_keywords(word: str) -> None:
    assert sanitize(word) == word + "_"
    assert sanitize(word.upper()) == word.upper() + "_"  # case-insensitive tools
    assert sanitize(f"{word}_x") == f"{word}_x"  # only whole words are keywords


def test_keyword_lists() -> None:
    for word in SOME_CPP_KEYWORDS:
        assert word in CPP_KEYWORDS
    for word in SOME_VERILOG_KEYWORDS + SOME_SV_KEYWORDS:
        assert word in VERILOG_KEYWORDS


def test_sanitize_custom_reserved() -> None:
    assert sanitize("top", frozenset({"top"})) == "top_"
    assert sanitize("int", frozenset()) == "int"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30))
def test_sanitize_always_identifier(source: str) -> None:
    name = sanitize(source)
    assert IDENTIFIER.fullmatch(name), name
    assert "__" not in name
    assert name.lower() not in CPP_KEYWORDS | VERILOG_KEYWORDS
    assert sanitize(name) == name  # idempotent


def test_namespace_collisions_get_unique_names() -> None:
    ns = Namespace()
    names = [ns(s) for s in ["dense 1", "dense-1", "dense_1", "dense.1", "Dense_1"]]
    assert names[0] == "dense_1"
    assert len({n.lower() for n in names}) == len(names)  # unique even on case-blind disks
    assert all(n.startswith(("dense_1", "Dense_1")) for n in names)


def test_namespace_is_stable() -> None:
    ns = Namespace()
    first = [ns(s) for s in ["a b", "a-b", "c", "a b", "a-b"]]
    assert first[0] == first[3] and first[1] == first[4]
    assert first[0] != first[1]
    assert ns("a-b") == first[1]  # asking again changes nothing


def test_namespace_keywords_suffix_without_double_underscore() -> None:
    ns = Namespace()
    names = [ns(s) for s in ["int", "int!", "int?", "Int"]]
    assert names[0] == "int_"
    assert len({n.lower() for n in names}) == 4
    for n in names:
        assert IDENTIFIER.fullmatch(n) and "__" not in n, n
        assert n.lower() not in CPP_KEYWORDS | VERILOG_KEYWORDS


def test_namespace_suffix_does_not_steal_later_names() -> None:
    ns = Namespace()
    a, b = ns("x"), ns("x!")
    c = ns("x_1")  # the literal name the second one may have taken
    assert len({a, b, c}) == 3


def test_namespace_custom_reserved() -> None:
    ns = Namespace(frozenset({"top", "top_1"}))
    assert ns("top") == "top_"
    second = ns("top!")
    assert second not in {"top_", "top_1", "top"} and "__" not in second


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from("aA1 _-é层int"), max_size=6), max_size=30))
def test_namespace_properties(sources: list[str]) -> None:
    ns = Namespace()
    mapping = {s: ns(s) for s in sources}
    # unique (case-insensitively) across distinct sources, safe, and stable
    assert len({v.lower() for v in mapping.values()}) == len(mapping)
    for s, name in mapping.items():
        assert IDENTIFIER.fullmatch(name) and "__" not in name, name
        assert name.lower() not in CPP_KEYWORDS | VERILOG_KEYWORDS
        assert ns(s) == name
