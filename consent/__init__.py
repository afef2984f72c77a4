"""The eConsent domain: versioned documents, Part 11 signatures, withdrawal, the signed PDF.

Kept apart from `services/` because regulators inspect it on its own. It arrives with
the eConsent issue; the foundation only reserves its place in the layering
(api -> consent -> services).
"""
