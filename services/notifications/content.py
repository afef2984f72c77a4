"""What an SMS says and how many segments it costs (when it may go: `sending_hours`).

An SMS is read on a lock screen, by whoever holds the phone, and passes through
carriers: so a text names only the study's sender name, never a condition, drug,
procedure, visit purpose, trial name or questionnaire title. `health_terms_in` is
the checker the tests run every template through (and the study's sender name is
checked with it when it is set).

Texts keep to the GSM-7 alphabet (no "ç", "ê", "ô", "ë" or typographic quotes), so
that one segment carries 160 characters rather than 70, and stay within one segment
with the longest parameters where the language allows.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

LOCALES = ("nl", "fr", "de", "en")
FALLBACK_LOCALE = "en"
# Codes the holder is waiting for at that moment: sent at once, outside the sending
# hours and the daily cap that are there for reminders.
ON_REQUEST = frozenset({"password_reset"})

# {sender} is the study's sender name; {date} and {time} are the recipient's local
# date and "HH:MM"; {contact} is the study's help contact.
TEMPLATES: dict[str, dict[str, str]] = {
    "activation_code": {
        "nl": "{sender}: uw activatiecode is {code}. Vul hem in de app in om uw wachtwoord "
        "te kiezen. Deel deze code met niemand.",
        "fr": "{sender}: votre code d'activation est {code}. Saisissez-le dans l'application "
        "pour choisir votre mot de passe. Ne le partagez avec personne.",
        "de": "{sender}: Ihr Aktivierungscode lautet {code}. Geben Sie ihn in der App ein, "
        "um Ihr Passwort festzulegen. Teilen Sie ihn mit niemandem.",
        "en": "{sender}: your activation code is {code}. Enter it in the app to choose your "
        "password. Do not share this code with anyone.",
    },
    "password_reset": {
        "nl": "{sender}: uw code om een nieuw wachtwoord te kiezen is {code}. Niet gevraagd? "
        "Bel uw studieteam. Deel deze code met niemand.",
        "fr": "{sender}: votre code pour choisir un nouveau mot de passe est {code}. Pas "
        "demandé? Appelez votre équipe. Ne le partagez avec personne.",
        "de": "{sender}: Ihr Code für ein neues Passwort lautet {code}. Nicht angefordert? "
        "Rufen Sie Ihr Studienteam an. Teilen Sie ihn mit niemandem.",
        "en": "{sender}: your code to choose a new password is {code}. Did not ask for it? "
        "Call your study team. Do not share this code with anyone.",
    },
    "visit_24h": {
        "nl": "{sender}: herinnering aan uw afspraak morgen, {date} om {time}. Lukt het "
        "niet? Neem contact met ons op.",
        "fr": "{sender}: rappel de votre rendez-vous demain, le {date} à {time}. "
        "Indisponible? Contactez-nous.",
        "de": "{sender}: Erinnerung an Ihren Termin morgen, {date} um {time}. Verhindert? "
        "Bitte melden Sie sich bei uns.",
        "en": "{sender}: reminder of your appointment tomorrow, {date} at {time}. Cannot "
        "make it? Please contact us.",
    },
    "visit_morning": {
        "nl": "{sender}: herinnering aan uw afspraak vandaag om {time}.",
        "fr": "{sender}: rappel de votre rendez-vous aujourd'hui à {time}.",
        "de": "{sender}: Erinnerung an Ihren Termin heute um {time}.",
        "en": "{sender}: reminder of your appointment today at {time}.",
    },
    "nurse_next_day": {
        "nl": "{sender}: bezoeken morgen: {count}, het eerste om {first_time}. Details in de app.",
        "fr": "{sender}: visites demain: {count}, la première à {first_time}. Détails dans "
        "l'application.",
        "de": "{sender}: Besuche morgen: {count}, der erste um {first_time}. Details in der App.",
        "en": "{sender}: visits tomorrow: {count}, the first at {first_time}. Details in the app.",
    },
    "epro_open": {
        "nl": "{sender}: er staat een vragenlijst voor u klaar in de app.",
        "fr": "{sender}: un questionnaire vous attend dans l'application.",
        "de": "{sender}: In der App wartet ein Fragebogen auf Sie.",
        "en": "{sender}: a questionnaire is waiting for you in the app.",
    },
    "epro_closing": {
        "nl": "{sender}: een vragenlijst in de app staat nog open tot {time}.",
        "fr": "{sender}: un questionnaire dans l'application reste ouvert jusqu'à {time}.",
        "de": "{sender}: Ein Fragebogen in der App ist noch bis {time} offen.",
        "en": "{sender}: a questionnaire in the app is still open until {time}.",
    },
    "reconsent_pending": {
        "nl": "{sender}: een nieuwe versie van uw toestemmingsformulier staat klaar in de app "
        "om te lezen en te ondertekenen.",
        "fr": "{sender}: une nouvelle version de votre formulaire de consentement est à lire "
        "et à signer dans l'application.",
        "de": "{sender}: Eine neue Version Ihrer Einwilligungserklärung liegt in der App zum "
        "Lesen und Unterschreiben bereit.",
        "en": "{sender}: a new version of your consent form is ready to read and sign in the app.",
    },
    "opt_out_confirm": {
        "nl": "{sender}: u ontvangt geen sms meer van ons. Antwoord START om ze weer te "
        "ontvangen. Dit verandert niets aan uw deelname.",
        "fr": "{sender}: vous ne recevrez plus de SMS de notre part. Répondez START pour les "
        "recevoir à nouveau. Votre participation n'est pas modifiée.",
        "de": "{sender}: Sie erhalten keine SMS mehr von uns. Antworten Sie START, um sie "
        "wieder zu erhalten. Ihre Teilnahme bleibt unverändert.",
        "en": "{sender}: you will no longer receive SMS from us. Reply START to receive them "
        "again. This does not change your participation.",
    },
    "opt_in_confirm": {
        "nl": "{sender}: u ontvangt weer sms-herinneringen. Antwoord STOP om ze te stoppen.",
        "fr": "{sender}: vous recevrez à nouveau les rappels par SMS. Répondez STOP pour ne "
        "plus les recevoir.",
        "de": "{sender}: Sie erhalten wieder SMS-Erinnerungen. Antworten Sie STOP, um sie "
        "abzubestellen.",
        "en": "{sender}: you will receive SMS reminders again. Reply STOP to stop them.",
    },
    "help": {
        "nl": "{sender}: hulp: {contact}. STOP om geen sms meer te krijgen, START om ze te "
        "hervatten.",
        "fr": "{sender}: aide: {contact}. STOP pour ne plus recevoir de SMS, START pour reprendre.",
        "de": "{sender}: Hilfe: {contact}. STOP: keine SMS mehr, START: wieder SMS erhalten.",
        "en": "{sender}: help: {contact}. Reply STOP to stop SMS, START to receive them again.",
    },
}


def render(template: str, locale: str, params: Mapping[str, object], sender: str) -> str:
    """The text in the recipient's language ("nl-BE" reads as "nl"); English when the
    language has no translation. A missing parameter is a programming error."""
    texts = TEMPLATES[template]
    language = (locale or "").split("-")[0].lower()
    text = texts.get(language, texts[FALLBACK_LOCALE])
    try:
        return text.format_map({**params, "sender": sender})
    except KeyError as exc:
        raise ValueError(f"template {template!r} needs parameter {exc.args[0]!r}") from exc


# --- segments ------------------------------------------------------------------------

# GSM 03.38 default alphabet in code order, without 0x1B (the escape to the extension
# table): "é" and "Ç" are in it, "ç", "ê" and the typographic apostrophe are not.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Sent as escape + character: two septets each.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")
GSM7_SINGLE, GSM7_PART = 160, 153  # septets; a part gives 7 to its concatenation header
UCS2_SINGLE, UCS2_PART = 70, 67  # UTF-16 code units


def is_gsm7(text: str) -> bool:
    return all(char in GSM7_BASIC or char in GSM7_EXTENSION for char in text)


def _packed(costs: list[int], capacity: int) -> int:
    """Parts needed when a character's units never straddle two parts (an escape pair
    or a surrogate pair stays whole), as handsets and Twilio split them."""
    parts, used = 1, 0
    for cost in costs:
        if used + cost > capacity:
            parts, used = parts + 1, 0
        used += cost
    return parts


def segments(text: str) -> int:
    """How many SMS segments the text is billed and sent as: GSM-7 when every
    character is in the default alphabet or its extension table (those count two
    septets), otherwise UCS-2 (a character outside the BMP counts two units)."""
    if is_gsm7(text):
        costs = [2 if char in GSM7_EXTENSION else 1 for char in text]
        single, part = GSM7_SINGLE, GSM7_PART
    else:
        costs = [len(char.encode("utf-16-le")) // 2 for char in text]
        single, part = UCS2_SINGLE, UCS2_PART
    return 1 if sum(costs) <= single else _packed(costs, part)


# --- health data ---------------------------------------------------------------------

# Stems, accents removed, matched at the start of a word (so compounds such as
# "hartfalen", "Herzstudie" or "diabetespatient" are caught); stems of five letters or
# more anywhere, so that a sender name written "MYHEART" is caught as well. Erring
# towards a false alarm ("hartelijk", "Herzlich") is the safe side: reword the text.
_HEALTH_STEMS = (
    # organs and conditions
    "heart", "hart", "herz", "coeur", "cardi", "kardi",
    "blood", "bloed", "blut", "sang",
    "cancer", "kanker", "krebs", "tumo", "tumeur", "onco", "chemo", "leukem", "leukam",
    "leukaem", "leucem",
    "lymph", "lymf", "diabet", "insulin", "suiker", "glyc", "glyk", "hypertens",
    "cholesterol", "rheuma", "rhumat", "arthrit", "artrit", "arthros", "artros",
    "asthm", "astma", "pulmon", "poumon", "lung", "renal", "nier", "hepat", "liver",
    "foie", "leber", "stroke", "beroerte", "schlaganfall", "epilep", "demen",
    "alzheimer", "parkinson", "psych", "depress", "anxi", "angst",
    "pregnan", "zwanger", "schwanger", "enceinte", "grossesse", "allerg", "infect",
    "infekt", "virus", "covid", "obes",
    # disease, symptoms, diagnosis
    "disease", "ziek", "malad", "krank", "diagnos", "symptom", "pain", "pijn",
    "douleur", "schmerz", "health", "gezondheid", "gesundheit", "patient",
    # treatment, drugs, procedures
    "drug", "medic", "medik", "medisch", "medizin", "geneesmiddel", "placebo", "dose",
    "dosis", "therap", "treatment", "behandel", "traitement", "surgery", "chirurg",
    "operatie", "vaccin", "impf", "inject", "injekt", "infus", "biops", "scan",
    "x-ray", "rontgen", "radiolog",
    # trials and care
    "trial", "essai", "klinisch", "clinic", "kliniek", "klinik", "hospital", "hopital",
    "ziekenhuis", "krankenhaus", "doctor", "medecin", "arzt", "nurse", "verpleeg",
    "infirmi", "pflege",
)  # fmt: skip
# Abbreviations and short words that are only health words on their own.
_HEALTH_WORDS = (
    "hiv", "aids", "sida", "ecg", "ekg", "eeg", "mri", "irm", "mrt", "avc", "copd",
    "bpco", "pil", "pill", "arts",
)  # fmt: skip
# Stems that end other, ordinary words ("interessante", "experimental"): word start only.
_WORD_START_STEMS = ("sante", "mental", "geestelijk")
_SUBSTRING_FROM = 5


def _pattern(term: str, *, anywhere: bool, whole_word: bool = False) -> re.Pattern[str]:
    start = "" if anywhere else r"(?<![a-z0-9])"
    end = r"(?![a-z0-9])" if whole_word else ""
    return re.compile(start + re.escape(term) + end)


_HEALTH_PATTERNS = (
    [(t, _pattern(t, anywhere=len(t) >= _SUBSTRING_FROM)) for t in _HEALTH_STEMS]
    + [(t, _pattern(t, anywhere=False)) for t in _WORD_START_STEMS]
    + [(t, _pattern(t, anywhere=False, whole_word=True)) for t in _HEALTH_WORDS]
)
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Za-z])(?=[0-9])|(?<=[0-9])(?=[A-Za-z])")
_LIGATURES = str.maketrans({"œ": "oe", "Œ": "oe", "æ": "ae", "Æ": "ae", "ß": "ss"})


def _normalised(text: str) -> str:
    """Lower case without accents, with camel case and digits split off
    ("CardioStudy2" reads "cardio study 2")."""
    spaced = _CAMEL.sub(" ", text.translate(_LIGATURES))
    decomposed = unicodedata.normalize("NFKD", spaced.lower())
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def health_terms_in(text: str) -> list[str]:
    """The health words found in the text (empty when it reveals none), each once."""
    plain = _normalised(text)
    return [term for term, pattern in _HEALTH_PATTERNS if pattern.search(plain)]


# --- sending hours -------------------------------------------------------------------
