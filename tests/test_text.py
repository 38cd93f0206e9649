import pytest

from myxtts.data.text import CharTokenizer, normalize_text, number_to_words


@pytest.mark.parametrize("raw, spoken", [
    ("It cost 94.20 dollars.", "it cost ninety four point two zero dollars."),
    ("On the 21st of May", "on the twenty first of may"),
    ("Dr. Smith took 5% & left", "doctor smith took five percent and left"),
    ("Caf\u00e9   na\u00efve", "cafe naive"),
    ("In 1999, 1,000 people", "in one thousand nine hundred and ninety nine, one thousand people"),
])
def test_normalize_spells_out_what_is_spoken(raw, spoken):
    assert normalize_text(raw) == spoken


def test_number_words():
    assert number_to_words(0) == "zero"
    assert number_to_words(115) == "one hundred and fifteen"
    assert number_to_words(2_000_005) == "two million and five"


def test_tokenizer_round_trip_and_end_token():
    tokenizer = CharTokenizer()
    ids = tokenizer.encode("Hello, world!")
    assert ids[-1] == 1 and 0 not in ids
    assert tokenizer.decode(ids) == "hello, world!"


def test_unknown_characters_are_mapped_or_dropped_with_a_warning(tmp_path):
    tokenizer = CharTokenizer()
    ids = tokenizer.encode("It\u2019s 3 \u20ac \u4e2d done")
    assert tokenizer.decode(ids) == "it's three done"
    assert set(tokenizer.unknown_counts) == {"\u20ac", "\u4e2d"}
    with pytest.warns(UserWarning, match="dropped characters"):
        tokenizer.warn_unknown()
    tokenizer.save(tmp_path / "symbols.json")
    assert CharTokenizer.load(tmp_path / "symbols.json").symbols == tokenizer.symbols
