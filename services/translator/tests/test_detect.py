import time

import pytest

from translator.detect import SAMPLE_CHARS, detect_language

ENGLISH = (
    "Scientists are only just beginning to understand them, but it is gradually becoming "
    "clear that tuft cells are an important hub for the body's defenses."
)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (ENGLISH, "en"),
        ("Die elektronische Patientenakte soll die Versorgung der Patienten verbessern.", "de"),
        ("El rápido zorro marrón salta sobre el perro perezoso en el jardín.", "es"),
        ("Быстрая коричневая лиса прыгает через ленивую собаку.", "ru"),
        ("Швидка бура лисиця стрибає через лінивого пса.", "uk"),
        ("もちろん、Apple社は「脱獄」を認めていません。", "ja"),
        ("这是一个用于检测语言的中文句子。", "zh"),
        ("이것은 한국어 문장입니다.", "ko"),
        ("هذه جملة باللغة العربية.", "ar"),
    ],
)
def test_detect_language_returns_the_lower_case_iso_639_1_code(text: str, code: str) -> None:
    assert detect_language(text) == code


@pytest.mark.parametrize(
    "text", ["", "   ", "ok", "12345 67890", "Hello", "https://example.com/a/b"]
)
def test_detect_language_returns_none_for_text_too_short_or_without_words(text: str) -> None:
    assert detect_language(text) is None


def test_detect_language_returns_none_when_languages_are_mixed_and_none_is_confident() -> None:
    assert detect_language("Hello world. Bonjour le monde. Hola mundo.") is None


def test_detect_language_ignores_urls_and_inline_code() -> None:
    text = "Siehe https://example.com/the-quick-brown-fox und `print(hello)` für die Details hier."
    assert detect_language(text) == "de"


def test_detect_language_judges_only_the_first_two_thousand_characters() -> None:
    german = "Die elektronische Patientenakte soll die Versorgung verbessern. "
    head = (german * (SAMPLE_CHARS // len(german) + 1))[:SAMPLE_CHARS]
    assert detect_language(head + ENGLISH * 200) == "de"


def test_detect_language_reuses_one_detector_and_stays_fast_after_the_first_call() -> None:
    detect_language(ENGLISH)  # builds the detector and loads the Latin models once
    started = time.perf_counter()
    for _ in range(20):
        assert detect_language(ENGLISH) == "en"
    assert time.perf_counter() - started < 1.0


async def test_detection_runs_in_its_own_thread_not_on_the_event_loop(monkeypatch) -> None:
    import threading

    import translator.detect as detect

    seen: list[str] = []
    real = detect.detect_language

    def spy(text: str, languages: tuple[str, ...]) -> str | None:
        seen.append(threading.current_thread().name)
        return real(text, languages)

    monkeypatch.setattr(detect, "detect_language", spy)
    assert await detect.detect_language_off_loop(ENGLISH) == "en"
    assert seen
    assert seen[0].startswith("detect")


def test_the_language_set_is_a_setting_and_unknown_codes_are_refused() -> None:
    from pydantic import ValidationError

    from translator.settings import Settings

    assert Settings(_env_file=None).detect_languages[:3] == ["en", "de", "fr"]
    assert Settings(_env_file=None, detect_languages=["EN", "sw"]).detect_languages == ["en", "sw"]
    with pytest.raises(ValidationError, match="xx"):
        Settings(_env_file=None, detect_languages=["en", "xx"])


def test_all_languages_when_the_set_is_empty() -> None:
    assert detect_language("Habari ya asubuhi, rafiki yangu mpendwa.", ()) == "sw"


def test_preload_builds_the_detector_in_the_detection_thread_without_waiting() -> None:
    from translator.detect import _detector, preload

    languages = ("en", "fr")
    loading = preload(languages)  # returns at once: start-up is not held
    assert loading.result(timeout=60) == "en"
    assert _detector.cache_info().currsize >= 1
    assert detect_language("Le renard brun saute par-dessus le chien paresseux.", languages) == "fr"
