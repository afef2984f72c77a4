"""ePRO: versioned questionnaires, the instances their schedules plan per participant,
offline-safe responses and corrections, compliance reports and FHIR exports."""
