"""Remote diagnostics: files from home devices (checked, streamed, sealed, resumable by
tus) and structured device readings with their alert thresholds."""
