"""Pure near-duplicate detection: a 64-bit SimHash (Charikar) of a text's words.

Texts that differ in a few words get fingerprints a few bits apart; `NEAR_DISTANCE` bits or
fewer is a near-duplicate. Four 16-bit bands index the fingerprints: two that are at most 3
bits apart agree on at least one band (pigeonhole), so a lookup by band finds them all.

Words, not word 3-grams: on the 121 extraction fixtures, one changed word keeps 98 % of
articles within 3 bits (3-grams: 75 %), 2 % changed words 87 % (3-grams: 12 %), while no two
different articles came closer than 7 bits.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter

BITS = 64
BANDS = 4
NEAR_DISTANCE = 3
_WORD_RE = re.compile(r"\w+")
_SLICES = BITS // 4
_WITH_BIT = [[value for value in range(16) if value >> bit & 1] for bit in range(4)]


def simhash(text: str) -> int:
    """The text's 64-bit SimHash, each word weighted by how often it occurs."""
    counts = Counter(_WORD_RE.findall(unicodedata.normalize("NFKC", text).casefold()))
    # Bit by bit per word costs 64 steps a word; instead sum the counts per value of each
    # 4-bit slice of the hash (16 steps a word), then per bit over the 8 values that set it.
    slices = [[0] * 16 for _ in range(_SLICES)]
    for word, count in counts.items():
        h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
        for table in slices:
            table[h & 15] += count
            h >>= 4
    total = sum(counts.values())
    fingerprint = 0
    for bit in range(BITS):
        table = slices[bit >> 2]
        ones = sum(table[value] for value in _WITH_BIT[bit & 3])
        if 2 * ones > total:  # more weight on 1 than on 0
            fingerprint |= 1 << bit
    return fingerprint


def distance(a: int, b: int) -> int:
    """How many bits two fingerprints differ in."""
    return (a ^ b).bit_count()


def bands(fingerprint: int) -> list[int]:
    """The fingerprint's four 16-bit bands, lowest first."""
    width = BITS // BANDS
    return [fingerprint >> (i * width) & ((1 << width) - 1) for i in range(BANDS)]


def to_signed(fingerprint: int) -> int:
    """As a PostgreSQL bigint (signed 64-bit)."""
    return fingerprint - (1 << BITS) if fingerprint >= 1 << (BITS - 1) else fingerprint


def from_signed(value: int) -> int:
    return value + (1 << BITS) if value < 0 else value
