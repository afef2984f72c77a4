"""One blueprint per resource; adding a resource is one line here."""

from api.resources import health
from api.resources.audit import trail as audit
from api.resources.consent import consents
from api.resources.consent import documents as consent_documents
from api.resources.consent import signatures as consent_signatures
from api.resources.diagnostics import readings, tus, uploads
from api.resources.epro import due as epro_due
from api.resources.epro import questionnaires
from api.resources.epro import reports as epro_reports
from api.resources.epro import responses as epro_responses
from api.resources.notifications import notifications, twilio_webhooks
from api.resources.notifications import settings as notification_settings
from api.resources.people import auth, credentials, me, participants, users
from api.resources.studies import studies
from api.resources.visits import my_visits, nurses, schedule, visits

BLUEPRINTS = (
    health.blp,
    auth.blp,
    me.blp,
    studies.blp,
    users.blp,
    credentials.blp,
    participants.blp,
    consent_documents.blp,
    consent_signatures.blp,
    consents.blp,
    audit.blp,
    schedule.blp,
    nurses.blp,
    visits.blp,
    my_visits.blp,
    questionnaires.blp,
    epro_due.blp,
    epro_responses.blp,
    epro_reports.blp,
    readings.blp,
    notifications.blp,
    notification_settings.blp,
    uploads.blp,
    tus.blp,
    twilio_webhooks.blp,
)
