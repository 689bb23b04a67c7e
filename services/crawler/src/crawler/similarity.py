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
# _BIT_OF[k] maps a byte to its bit k (0 or 1), for bytes.translate.
_BIT_OF = [bytes(value >> bit & 1 for value in range(256)) for bit in range(8)]


def simhash(text: str) -> int:
    """The text's 64-bit SimHash, each word weighted by how often it occurs."""
    counts = Counter(_WORD_RE.findall(unicodedata.normalize("NFKC", text).casefold()))
    # Bit by bit per word in Python costs 64 steps a word. Instead: every word's 8-byte hash
    # (big-endian), repeated by its count, in one string; byte j of all of them is every 8th
    # byte from j, and how many set bit k of it is that column mapped to its bit k (translate)
    # with the ones counted: 64 C-level passes over a few kB, the same fingerprint.
    blake2b = hashlib.blake2b
    hashes = b"".join(
        blake2b(word.encode(), digest_size=8).digest() * count for word, count in counts.items()
    )
    total = len(hashes) // 8
    fingerprint = 0
    for j in range(8):
        column = hashes[j::8]
        lowest = 8 * (7 - j)  # byte j of a big-endian hash holds bits lowest .. lowest + 7
        for bit in range(8):
            if 2 * column.translate(_BIT_OF[bit]).count(1) > total:  # more weight on 1
                fingerprint |= 1 << (lowest + bit)
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
