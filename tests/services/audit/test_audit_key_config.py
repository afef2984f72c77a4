"""DCT_AUDIT_KEY: production refuses to start without its own audit key (issue 12,
finding 5), and no deployment may reuse the encryption key for it."""

from __future__ import annotations

import pytest

from api import config, create_app
from tests.api.test_platform import production, random_secret
from tests.conftest import TEST_KEY


@pytest.mark.parametrize(
    "audit_key",
    [config.DEV_AUDIT_KEY, None],
    ids=["development-key", "unset"],
)
def test_production_refuses_to_start_without_an_audit_key(database_url, monkeypatch, audit_key):
    monkeypatch.delenv("DCT_AUDIT_KEY", raising=False)
    settings = production(DATABASE_URL=database_url)
    if audit_key is None:
        del settings["DCT_AUDIT_KEY"]
    else:
        settings["DCT_AUDIT_KEY"] = audit_key

    with pytest.raises(RuntimeError, match=r"refusing to start in production.*DCT_AUDIT_KEY"):
        create_app(settings)


@pytest.mark.parametrize("env", ["development", "production"])
def test_the_audit_key_must_differ_from_the_encryption_key(env):
    with pytest.raises(RuntimeError, match="DCT_AUDIT_KEY must differ from DCT_ENCRYPTION_KEY"):
        config.load(production(DCT_ENV=env, DCT_AUDIT_KEY=TEST_KEY))


def test_the_same_key_spelled_without_its_padding_is_the_same_key():
    """Keys compare as bytes: dropping base64's '=' does not make another key."""
    unpadded = TEST_KEY.rstrip("=")
    assert unpadded != TEST_KEY
    with pytest.raises(RuntimeError, match="DCT_AUDIT_KEY must differ from DCT_ENCRYPTION_KEY"):
        config.load(production(DCT_ENV="development", DCT_AUDIT_KEY=unpadded))


@pytest.mark.parametrize("name", ["DCT_AUDIT_KEY", "DCT_ENCRYPTION_KEY"])
def test_production_refuses_a_development_key_however_it_is_spelled(database_url, name):
    public = {
        "DCT_AUDIT_KEY": config.DEV_AUDIT_KEY,
        "DCT_ENCRYPTION_KEY": config.DEV_ENCRYPTION_KEY,
    }
    settings = production(DATABASE_URL=database_url, **{name: public[name].rstrip("=")})

    with pytest.raises(RuntimeError, match=f"refusing to start in production.*{name}"):
        create_app(settings)


@pytest.mark.parametrize("bad", ["not base64!", random_secret(16)])
def test_a_malformed_audit_key_is_refused(bad):
    with pytest.raises(ValueError, match="DCT_AUDIT_KEY"):
        config.load({"DCT_AUDIT_KEY": bad})


def test_seals_are_taken_every_minute_by_default():
    assert config.DEFAULTS["DCT_AUDIT_SEAL_MINUTES"] == 1
    with pytest.raises(RuntimeError, match="DCT_AUDIT_SEAL_MINUTES must be 1 or more"):
        config.load({"DCT_AUDIT_SEAL_MINUTES": 0})
