"""SimHash: the fast form gives the same fingerprints as the textbook one (stored fingerprints
stay comparable), and near texts stay near."""

import hashlib
import random
import re
import unicodedata
from collections import Counter

from crawler.similarity import BITS, distance, simhash

WORDS = ["tomato", "soil", "water", "Sun", "ÉTÉ", "ﬁne", "x1", "a", "b"]


def textbook_simhash(text: str) -> int:
    """Charikar's SimHash bit by bit, as the crawler computed it before."""
    counts = Counter(re.findall(r"\w+", unicodedata.normalize("NFKC", text).casefold()))
    weights = [0] * BITS
    for word, count in counts.items():
        h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
        for bit in range(BITS):
            weights[bit] += count if h >> bit & 1 else -count
    return sum(1 << bit for bit in range(BITS) if weights[bit] > 0)


def test_simhash_matches_the_textbook_definition() -> None:
    rnd = random.Random(8)
    texts = ["", "one", "one one two", "Tomatoes need water, sun and good soil."]
    texts += [" ".join(rnd.choices(WORDS, k=rnd.randint(0, 40))) for _ in range(500)]

    assert [simhash(t) for t in texts] == [textbook_simhash(t) for t in texts]


def test_one_changed_word_keeps_a_long_text_near() -> None:
    words = [f"word{i % 300}" for i in range(1200)]
    changed = [*words[:-1], "different"]

    assert distance(simhash(" ".join(words)), simhash(" ".join(changed))) <= 3
