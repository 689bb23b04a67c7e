"""Language detection of a source text with lingua: ISO 639-1 code, or None when unsure.

One detector per language set, built once, in low-accuracy mode (trigram models only), over
the languages the web mostly writes in: about half the memory and CPU of all 75 languages.
"""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache

from lingua import IsoCode639_1, LanguageDetector, LanguageDetectorBuilder

# Lingua's time grows with the sample. On the 121 fixture articles 500 characters agree with
# 1000 on 120 and differ on one Indonesian page (kabarislamia.com), which 1000 took for Malay
# and 500 gets right; half the detection CPU per job.
SAMPLE_CHARS = 500
MIN_CONFIDENCE = 0.6
MIN_LETTERS = 3

# The most used languages of the web. Each language lingua considers costs memory (its trigram
# model) and time on every text; a text in a language outside the set is judged unsure (None)
# or as its nearest neighbour in the set, and the crawler's declared language is the fallback.
# fmt: off
LANGUAGES = [
    "en", "de", "fr", "es", "it", "pt", "nl", "pl", "sv", "da", "nb", "fi", "cs", "sk", "hu",
    "ro", "tr", "id", "ms", "vi", "ru", "uk", "bg", "el", "ar", "fa", "he", "hi", "ja", "zh",
    "ko", "th",
]
# fmt: on

# URLs, e-mail addresses, inline code and markdown link targets say nothing about the language.
_NOISE_RE = re.compile(r"https?://\S+|www\.\S+|\S+@\S+\.\w+|`[^`\n]*`|\]\([^)\s]*\)")
_WARM_UP = "The quick brown fox jumps over the lazy dog near the river bank."

# lingua works outside the GIL: the event loop keeps serving while a text is judged, and one
# thread bounds the CPU detection can take from the rest of the process.
_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="detect")


@lru_cache(maxsize=4)
def _detector(languages: tuple[str, ...]) -> LanguageDetector:
    builder = (
        LanguageDetectorBuilder.from_iso_codes_639_1(
            *(getattr(IsoCode639_1, code.upper()) for code in languages)
        )
        if languages
        else LanguageDetectorBuilder.from_all_languages()
    )
    return builder.with_low_accuracy_mode().build()


def check_languages(languages: list[str]) -> None:
    """Raise ValueError naming the codes lingua does not know."""
    unknown = [code for code in languages if not hasattr(IsoCode639_1, code.upper())]
    if unknown:
        raise ValueError(f"unknown ISO 639-1 codes for detection: {', '.join(unknown)}")


def detect_language(text: str, languages: tuple[str, ...] = tuple(LANGUAGES)) -> str | None:
    """Lower-case ISO 639-1 code of the text's language, judged on its first SAMPLE_CHARS
    characters, among `languages` (all lingua knows when empty).

    None when the text has too few letters or the best language's confidence is below
    MIN_CONFIDENCE (short or mixed text, closely related languages).
    """
    sample = _NOISE_RE.sub(" ", text[:SAMPLE_CHARS])
    if sum(ch.isalpha() for ch in sample) < MIN_LETTERS:
        return None
    confidences = _detector(languages).compute_language_confidence_values(sample)
    if not confidences or confidences[0].value < MIN_CONFIDENCE:
        return None
    return confidences[0].language.iso_code_639_1.name.lower()


async def detect_language_off_loop(
    text: str, languages: tuple[str, ...] = tuple(LANGUAGES)
) -> str | None:
    """`detect_language` in the detection thread, so the event loop is not held."""
    return await asyncio.get_running_loop().run_in_executor(_pool, detect_language, text, languages)


def preload(languages: tuple[str, ...] = tuple(LANGUAGES)) -> Future[str | None]:
    """Start building the detector and loading the Latin-script models in the detection
    thread, without waiting: start-up is not held, and the first job's detection queues behind
    the load instead of doing it."""
    return _pool.submit(detect_language, _WARM_UP, languages)
