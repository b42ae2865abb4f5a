"""The limits of `sluice ingest`: defaults sized for a 512 MiB pod, and the rules between them."""

import pytest

from worker.config import SettingsError, load_settings


def test_the_defaults_fit_a_512_mib_pod() -> None:
    settings = load_settings()
    # Bodies (decoded up to ten times their size for a moment) and connections' headers stay
    # well below the pod's memory with the process's own ~70 MiB.
    # Two limits per client address (failed authentications, requests with a public key) of
    # about 250 bytes per remembered address.
    worst = (70 * 2**20 + 10 * settings.ingest_body_budget_bytes
             + settings.ingest_max_connections * settings.ingest_max_header_bytes
             + 2 * 250 * settings.ingest_max_tracked_clients)
    assert worst < 480 * 2**20
    assert settings.ingest_max_body_bytes <= settings.ingest_unverified_body_bytes \
        <= settings.ingest_body_budget_bytes
    assert settings.ingest_transaction_timeout > settings.ingest_produce_timeout + 1


@pytest.mark.parametrize("overrides, named", [
    ({"ingest_max_body_bytes": 64 * 2**20}, "SLUICE_INGEST_BODY_BUDGET_BYTES"),
    ({"ingest_unverified_body_bytes": 1024 * 1024}, "SLUICE_INGEST_UNVERIFIED_BODY_BYTES"),
    ({"ingest_unverified_body_bytes": 64 * 2**20}, "SLUICE_INGEST_UNVERIFIED_BODY_BYTES"),
    ({"ingest_transaction_timeout": 4.5}, "SLUICE_INGEST_TRANSACTION_TIMEOUT"),
    ({"ingest_forms": ["tracking"], "ingest_write_keys": ["wk=src"],
      "ingest_max_body_bytes": 100_000, "ingest_unverified_body_bytes": 200_000},
     "SLUICE_INGEST_TRACKING_MAX_BATCH_BYTES"),
])
def test_limits_that_do_not_fit_together_are_refused_naming_the_settings(
        overrides: dict, named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        load_settings(**overrides)


def test_an_empty_transactional_id_means_the_derived_one() -> None:
    assert load_settings(ingest_transactional_id_prefix="").ingest_transactional_id_prefix is None
