import itertools

import pytest

from cachewarm.errors import InvalidNameError
from cachewarm.keys import KeySchema, decode_name, encode_name

HOSTILE = [
    "Star*", "Star", "Starbucks", "S?ar", "[abc]", "a]b[c", "tab\there", "new\nline", " spaced name ",
    "Café Ñandú 東京 🍣", "x" * 1024, "é" * 1024, "a:b", "a%2Ab", "a*b", "back\\slash", "\x00nul", "sum:evil",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_round_trip(name):
    assert decode_name(encode_name(name)) == name
    keys = KeySchema()
    assert keys.name_from_summary_key(keys.summary(name)) == name


@pytest.mark.parametrize("name", HOSTILE)
def test_keys_hold_no_glob_or_space_characters(name):
    segment = encode_name(name)
    assert not set(segment) & set("*?[]\\ \t\n:\x00")


def test_names_never_collide():
    keys = KeySchema()
    assert len({keys.summary(n) for n in HOSTILE}) == len(HOSTILE)
    for a, b in itertools.permutations(HOSTILE, 2):
        assert keys.summary(a) != keys.summary(b)


def test_namespaced_and_versioned():
    assert KeySchema(prefix="p").summary("A") == "p:v2:{A}:sum"
    assert KeySchema().summary_pattern() == "cw:v2:{*}:sum"


@pytest.mark.parametrize("bad", ["", None, 3])
def test_empty_or_non_string_names_are_rejected(bad):
    with pytest.raises(InvalidNameError):
        encode_name(bad)
