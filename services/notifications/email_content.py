"""What an account e-mail says, in the recipient's language.

Like an SMS it names no condition, study or procedure (anyone may read an inbox over
a shoulder), and it carries the code in its body only: never in the subject, which
mail clients show in notifications and lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

FALLBACK_LOCALE = "en"


@dataclass(frozen=True)
class Email:
    subject: str
    body: str


TEMPLATES: dict[str, dict[str, Email]] = {
    "password_reset": {
        "nl": Email(
            "Uw code voor een nieuw wachtwoord",
            "Goedendag {name},\n\nUw code om een nieuw wachtwoord te kiezen is: {code}\n\n"
            "Hij is {minutes} minuten geldig en werkt één keer. Hebt u hem niet gevraagd? "
            "Neem dan contact op met uw studieteam. Deel deze code met niemand.\n",
        ),
        "fr": Email(
            "Votre code pour un nouveau mot de passe",
            "Bonjour {name},\n\nVotre code pour choisir un nouveau mot de passe est : {code}\n\n"
            "Il est valable {minutes} minutes et ne sert qu'une fois. Vous ne l'avez pas "
            "demandé ? Contactez votre équipe. Ne le partagez avec personne.\n",
        ),
        "de": Email(
            "Ihr Code für ein neues Passwort",
            "Guten Tag {name},\n\nIhr Code für ein neues Passwort lautet: {code}\n\n"
            "Er gilt {minutes} Minuten und nur einmal. Nicht angefordert? Wenden Sie sich an "
            "Ihr Studienteam. Teilen Sie ihn mit niemandem.\n",
        ),
        "en": Email(
            "Your code to choose a new password",
            "Hello {name},\n\nYour code to choose a new password is: {code}\n\n"
            "It is valid for {minutes} minutes and works once. Did not ask for it? Contact "
            "your study team. Do not share this code with anyone.\n",
        ),
    },
}


def render(template: str, locale: str, params: Mapping[str, object]) -> Email:
    """The message in the recipient's language ("nl-BE" reads as "nl"), English when
    there is no translation: an account e-mail must reach its reader whatever the
    study's languages are."""
    texts = TEMPLATES[template]
    chosen = texts.get((locale or "").split("-")[0].lower(), texts[FALLBACK_LOCALE])
    return Email(chosen.subject, chosen.body.format_map(params))
