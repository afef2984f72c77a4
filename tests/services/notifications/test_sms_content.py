"""SMS texts (no health data, GSM-7, segment counts) and sending hours (quiet hours
across midnight and DST, the recipient's local day)."""

from __future__ import annotations

import datetime as dt
import string
from zoneinfo import ZoneInfo

import pytest

from services.notifications.content import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    LOCALES,
    TEMPLATES,
    health_terms_in,
    is_gsm7,
    render,
    segments,
)
from services.notifications.sending_hours import (
    ALLOWED_FROM,
    ALLOWED_UNTIL,
    day_bounds,
    next_allowed,
)

BRUSSELS = "Europe/Brussels"
TZ = ZoneInfo(BRUSSELS)
# The longest values each parameter takes: an 11-character sender, a 64-character contact.
SENDER = "Brussels R1"
SAMPLE = {
    "code": "ABCD-EFGH-JKLM",
    "date": "2026-03-29",
    "time": "08:30",
    "count": "12",
    "first_time": "07:45",
    "contact": "+32 2 555 12 34, weekdays 9 to 17, ask for the research team",
}
# Templates that need a second segment in some language with those values: none.
TWO_SEGMENTS: set[tuple[str, str]] = set()
CASES = [(template, locale) for template in TEMPLATES for locale in LOCALES]


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def local(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=TZ)


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


# --- templates ------------------------------------------------------------------------


def test_every_template_exists_in_every_language_with_the_same_parameters():
    assert set(TEMPLATES) == {
        "activation_code",
        "password_reset",
        "visit_24h",
        "visit_morning",
        "nurse_next_day",
        "epro_open",
        "epro_closing",
        "reconsent_pending",
        "opt_out_confirm",
        "opt_in_confirm",
        "help",
    }
    for template, texts in TEMPLATES.items():
        assert set(texts) == set(LOCALES), template
        (expected,) = {frozenset(placeholders(text)) for text in texts.values()}
        assert "sender" in expected, template
        assert expected - {"sender"} <= SAMPLE.keys(), template


@pytest.mark.parametrize(("template", "locale"), CASES)
@pytest.mark.requirement("SMS-1", "SMS-6")
def test_every_rendered_template_is_free_of_health_words_and_fits_its_segments(template, locale):
    text = render(template, locale, SAMPLE, SENDER)

    assert health_terms_in(text) == []
    assert text.startswith(f"{SENDER}: ")
    assert is_gsm7(text), [char for char in text if not is_gsm7(char)]
    expected = 2 if (template, locale) in TWO_SEGMENTS else 1
    assert segments(text) == expected, (len(text), text)


def test_rendering_falls_back_to_english_and_reads_a_region_as_its_language():
    english = render("epro_open", "en", {}, "Team A")

    assert render("epro_open", "it", {}, "Team A") == english
    assert render("epro_open", "", {}, "Team A") == english
    assert render("epro_open", "nl-BE", {}, "Team A") == render("epro_open", "nl", {}, "Team A")
    assert render("visit_morning", "fr", {"time": "09:15"}, "Team A") == (
        "Team A: rappel de votre rendez-vous aujourd'hui à 09:15."
    )


def test_rendering_without_a_parameter_names_it():
    with pytest.raises(ValueError, match="'code'"):
        render("activation_code", "de", {}, "Team A")


# --- the health-data checker --------------------------------------------------------

PLANTED = {
    "en": ["heart", "cardiac", "cancer", "diabetes", "insulin", "chemo", "HIV", "ECG",
           "blood", "placebo", "trial", "study drug", "hospital", "pregnancy"],
    "nl": ["hart", "hartfalen", "kanker", "suikerziekte", "bloedafname", "ziekenhuis",
           "geneesmiddel", "studiemedicatie", "patiënt", "verpleegkundige"],
    "fr": ["cœur", "cardiaque", "cancer", "diabète", "prise de sang", "médicament",
           "essai clinique", "hôpital", "infirmière", "santé"],
    "de": ["Herz", "Herzinsuffizienz", "Krebs", "Blutabnahme", "Medikament",
           "Prüfpräparat Placebo", "Krankenhaus", "Pflegedienst", "Schwangerschaft"],
}  # fmt: skip


@pytest.mark.parametrize(
    ("locale", "word"), [(locale, word) for locale, words in PLANTED.items() for word in words]
)
@pytest.mark.requirement("SMS-1")
def test_the_checker_catches_a_health_word_planted_in_a_template(locale, word):
    clean = render("visit_24h", locale, SAMPLE, SENDER)
    planted = clean.replace(f"{SENDER}: ", f"{SENDER}: {word} ")

    assert health_terms_in(clean) == []
    assert health_terms_in(planted), planted


@pytest.mark.parametrize("sender", ["MYHEART", "CardioCare", "Onco2", "HIV Team", "BloedBank"])
def test_the_checker_catches_health_words_run_together_in_a_sender_name(sender):
    assert health_terms_in(sender)


@pytest.mark.parametrize(
    "text", ["leuk", "une offre intéressante", "experimental", "Reply START", "Team A"]
)
def test_ordinary_words_that_contain_a_stem_pass(text):
    assert health_terms_in(text) == []


def test_the_checker_names_each_word_it_found_once():
    assert health_terms_in("Heart, HEART and cœur") == ["heart", "coeur"]


# --- segments -----------------------------------------------------------------------


def test_the_gsm7_tables_are_gsm_03_38():
    assert len(GSM7_BASIC) == 127  # 128 codes, one of them the escape
    assert set("\f^{}\\[~]|€") == GSM7_EXTENSION
    for char in "éèùìòàÇÉÄÖÑÜäöñüßÆæÅåØø£¥§¿¡¤ΔΦΓΛΩΠΨΣΘΞ@_\n\r":
        assert is_gsm7(char), char
    for char in "çêâîôûëïáíóúÀÈ`\u2019\u201c😀\t":
        assert not is_gsm7(char), char


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("é" * 160, 1),  # é is in the default alphabet
        ("€" * 80, 1),  # 160 septets
        ("€" * 80 + "a", 2),
        ("a" * 159 + "€", 2),  # 161 septets
        ("{" * 152, 2),  # 304 septets
        ("{" * 153, 3),  # 306 septets, but 76 escape pairs fill a part
        # 306 septets, yet the escape pair never straddles two parts: three parts.
        ("a" * 152 + "€" + "a" * 152, 3),
    ],
)
def test_gsm7_counts_septets_with_extension_characters_double(text, expected):
    assert is_gsm7(text)
    assert segments(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ç" * 70, 1),
        ("ç" + "a" * 70, 2),
        ("ç" * 134, 2),
        ("ç" * 135, 3),
        ("ê" + "€" * 69, 1),  # in UCS-2 € is one unit like any other
        ("😀" * 35, 1),  # a surrogate pair is two units
        ("😀" * 36, 2),
        ("a" * 66 + "😀" + "a" * 66, 3),  # 134 units, the pair kept whole
    ],
)
def test_one_character_outside_gsm7_makes_the_text_ucs2(text, expected):
    assert not is_gsm7(text)
    assert segments(text) == expected


def test_a_single_c_cedilla_costs_a_french_text_its_single_segment():
    text = "a" * 100

    assert segments(text) == 1
    assert segments(text.replace("a", "ç", 1)) == 2


# --- sending hours ------------------------------------------------------------------


def allowed(due: dt.datetime, send_from: str = ALLOWED_FROM, until: str = ALLOWED_UNTIL):
    return next_allowed(due, BRUSSELS, send_from, until)


@pytest.mark.parametrize(
    "due", [local(2026, 6, 15, 8, 0), local(2026, 6, 15, 12, 0), local(2026, 6, 15, 20, 59, 59)]
)
def test_inside_the_window_the_due_time_is_kept(due):
    assert allowed(due) == due


def test_before_the_window_it_waits_for_eight_the_same_morning():
    assert allowed(local(2026, 6, 15, 6, 30)) == local(2026, 6, 15, 8, 0)
    assert allowed(local(2026, 6, 15, 0, 0)) == local(2026, 6, 15, 8, 0)


def test_at_exactly_nine_pm_it_waits_for_the_next_morning():
    assert allowed(local(2026, 6, 15, 21, 0)) == local(2026, 6, 16, 8, 0)


def test_late_evening_crosses_midnight_and_the_year():
    assert allowed(local(2026, 12, 31, 23, 30)) == local(2027, 1, 1, 8, 0)


def test_spring_forward_night_lands_on_eight_summer_time():
    # 29 March 2026: 02:00 CET becomes 03:00 CEST; 08:00 that day is 06:00 UTC.
    expected = utc(2026, 3, 29, 6, 0)

    assert allowed(local(2026, 3, 28, 22, 0)) == expected
    assert allowed(utc(2026, 3, 29, 1, 30)) == expected  # 03:30 CEST
    assert allowed(utc(2026, 3, 28, 19, 59)) == utc(2026, 3, 28, 19, 59)  # 20:59 CET
    assert allowed(utc(2026, 3, 29, 19, 0)) == utc(2026, 3, 30, 6, 0)  # 21:00 CEST


def test_fall_back_night_lands_on_eight_winter_time():
    # 25 October 2026: 03:00 CEST becomes 02:00 CET; 08:00 that day is 07:00 UTC.
    expected = utc(2026, 10, 25, 7, 0)

    assert allowed(local(2026, 10, 24, 21, 30)) == expected
    assert allowed(utc(2026, 10, 25, 0, 30)) == expected  # 02:30 CEST, the first one
    assert allowed(utc(2026, 10, 25, 1, 30)) == expected  # 02:30 CET, the second one
    assert allowed(utc(2026, 10, 25, 19, 59)) == utc(2026, 10, 25, 19, 59)  # 20:59 CET
    assert allowed(utc(2026, 10, 25, 20, 0)) == utc(2026, 10, 26, 7, 0)


def test_narrower_preferences_move_both_ends():
    assert allowed(local(2026, 6, 15, 8, 30), "09:30", "18:00") == local(2026, 6, 15, 9, 30)
    assert allowed(local(2026, 6, 15, 17, 59), "09:30", "18:00") == local(2026, 6, 15, 17, 59)
    assert allowed(local(2026, 6, 15, 18, 0), "09:30", "18:00") == local(2026, 6, 16, 9, 30)


@pytest.mark.requirement("SMS-5")
def test_preferences_wider_than_the_allowed_hours_are_held_to_them():
    assert allowed(local(2026, 6, 15, 7, 0), "06:00", "23:00") == local(2026, 6, 15, 8, 0)
    assert allowed(local(2026, 6, 15, 22, 0), "06:00", "23:00") == local(2026, 6, 16, 8, 0)


@pytest.mark.requirement("SMS-5")
def test_the_window_is_read_in_the_recipients_zone():
    due = utc(2026, 6, 15, 2, 0)  # 04:00 in Brussels, 22:00 the day before in New York

    assert next_allowed(due, BRUSSELS, "08:00", "21:00") == utc(2026, 6, 15, 6, 0)
    assert next_allowed(due, "America/New_York", "08:00", "21:00") == utc(2026, 6, 15, 12, 0)
    assert next_allowed(due, "Asia/Tokyo", "08:00", "21:00") == due  # 11:00 in Tokyo


@pytest.mark.parametrize("start", [local(2026, 3, 25, 0, 0), local(2026, 10, 21, 0, 0)])
def test_every_quarter_hour_of_a_dst_week_gets_the_first_allowed_instant(start):
    step = dt.timedelta(minutes=15)
    for n in range(7 * 24 * 4):
        due = (start.astimezone(dt.UTC) + n * step).astimezone(dt.UTC)
        sent = allowed(due, "09:00", "20:00")
        wall = sent.astimezone(TZ)
        assert sent >= due
        assert dt.time(9, 0) <= wall.time() < dt.time(20, 0), (due, sent)
        if sent != due:
            assert wall.time() == dt.time(9, 0)
            assert sent - due <= dt.timedelta(hours=14), (due, sent)


def test_naive_times_and_empty_windows_are_refused():
    with pytest.raises(ValueError, match="naive"):
        allowed(dt.datetime(2026, 6, 15, 12, 0))
    with pytest.raises(ValueError, match="naive"):
        day_bounds(dt.datetime(2026, 6, 15, 12, 0), BRUSSELS)
    with pytest.raises(ValueError, match="empty"):
        allowed(local(2026, 6, 15, 12, 0), "18:00", "09:00")


@pytest.mark.parametrize(
    ("at", "hours"),
    [
        (local(2026, 6, 15, 0, 0), 24),
        (local(2026, 6, 15, 23, 59), 24),
        (local(2026, 3, 29, 12, 0), 23),
        (local(2026, 10, 25, 12, 0), 25),
    ],
)
def test_the_local_day_starts_at_local_midnight_and_lasts_23_to_25_hours(at, hours):
    start, end = day_bounds(at, BRUSSELS)

    assert start.tzinfo == dt.UTC and end.tzinfo == dt.UTC
    assert start <= at < end
    assert start.astimezone(TZ) == local(at.year, at.month, at.day)
    assert end - start == dt.timedelta(hours=hours)
    assert end.astimezone(TZ).time() == dt.time(0, 0)
