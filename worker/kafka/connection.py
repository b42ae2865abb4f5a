"""How every Kafka client of Sluice connects: bootstrap servers, TLS and SASL, from the settings.

The Faust app (its consumer, producer and topic creation), the dead-letter producer, the catalog
reader and the `topics`, `dlq`, `produce` and `catalog` commands all take their connection
options from here, so one set of SLUICE_KAFKA_* settings reaches every client:

* ``client_options(settings)``: keyword arguments for aiokafka's producer, consumer, admin
  client and ``AIOKafkaClient``;
* ``faust_credentials(settings)``: the same as Faust's ``broker_credentials``;
* ``check_connection(settings)``: one connection with the full TLS and SASL exchange, before a
  worker or command starts, turning whatever went wrong into one message that names the
  settings to check (``KafkaConnectionFailure``). aiokafka itself only logs why a bootstrap
  failed and raises "Unable to bootstrap", which names nothing.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from typing import Any

from aiokafka import errors as kafka_errors
from aiokafka.abc import AbstractTokenProvider
from aiokafka.conn import create_conn
from aiokafka.helpers import create_ssl_context

from worker.config import KafkaSaslMechanism, KafkaSecurityProtocol, Settings
from worker.config.kafka import SASL_PROTOCOLS, TLS_PROTOCOLS

log = logging.getLogger(__name__)

# Renew an MSK IAM token this long before it expires (tokens live 15 minutes).
_TOKEN_RENEW_MARGIN_SECONDS = 120.0
CHECK_TIMEOUT_MS = 15_000


class KafkaConnectionFailure(Exception):
    """Kafka cannot be used with these settings; the message names the settings to check.

    `unreachable` is True when no broker answered at all (worth waiting for), False when one
    answered and refused us (TLS, SASL: waiting will not help)."""

    def __init__(self, message: str, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


def _is_unreachable(error: BaseException) -> bool:
    """No answer at all (refused, timed out), as opposed to a TLS or SASL refusal."""
    if isinstance(error, ssl.SSLError):
        return False
    return isinstance(error, (OSError, TimeoutError, kafka_errors.KafkaConnectionError))


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of the SSL and SASL_SSL protocols (None without TLS).

    Verification is on: against SLUICE_KAFKA_SSL_CA_FILE, or the system's CAs without one.
    """
    if settings.kafka_security_protocol not in TLS_PROTOCOLS:
        return None
    try:
        context = create_ssl_context(
            cafile=_path(settings.kafka_ssl_ca_file),
            certfile=_path(settings.kafka_ssl_cert_file),
            keyfile=_path(settings.kafka_ssl_key_file),
            password=settings.kafka_ssl_key_password,
        )
    except (OSError, ssl.SSLError) as error:
        raise KafkaConnectionFailure(
            f"cannot load the Kafka TLS files ({error}): check SLUICE_KAFKA_SSL_CA_FILE, "
            "SLUICE_KAFKA_SSL_CERT_FILE, SLUICE_KAFKA_SSL_KEY_FILE and "
            "SLUICE_KAFKA_SSL_KEY_PASSWORD (PEM files the worker can read)"
        ) from error
    context.check_hostname = settings.kafka_ssl_check_hostname
    return context


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments that connect any aiokafka client as the settings say."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_server_list,
        "security_protocol": settings.kafka_security_protocol.value,
        "ssl_context": ssl_context(settings),
    }
    mechanism = settings.kafka_sasl_mechanism
    if settings.kafka_security_protocol in SASL_PROTOCOLS and mechanism is not None:
        options["sasl_mechanism"] = mechanism.value
        if mechanism == KafkaSaslMechanism.OAUTHBEARER:
            options["sasl_oauth_token_provider"] = token_provider(settings)
        else:
            options["sasl_plain_username"] = settings.kafka_sasl_username
            options["sasl_plain_password"] = settings.kafka_sasl_password
    return options


def faust_credentials(settings: Settings) -> Any:
    """Faust's ``broker_credentials`` for the settings (None for PLAINTEXT)."""
    from faust.auth import OAuthCredentials, SASLCredentials, SSLCredentials

    protocol, context = settings.kafka_security_protocol, ssl_context(settings)
    if protocol == KafkaSecurityProtocol.PLAINTEXT:
        return None
    if protocol == KafkaSecurityProtocol.SSL:
        return SSLCredentials(context)
    mechanism = settings.kafka_sasl_mechanism
    if mechanism == KafkaSaslMechanism.OAUTHBEARER:
        return OAuthCredentials(oauth_cb=token_provider(settings), ssl_context=context)
    return SASLCredentials(username=settings.kafka_sasl_username,
                           password=settings.kafka_sasl_password,
                           ssl_context=context, mechanism=mechanism.value if mechanism else None)


def token_provider(settings: Settings) -> AbstractTokenProvider:
    """The OAUTHBEARER token source: the fixed token if set, else AWS MSK IAM tokens."""
    if settings.kafka_sasl_oauth_token:
        return StaticTokenProvider(settings.kafka_sasl_oauth_token)
    return MskIamTokenProvider(settings.kafka_aws_region or settings.s3_region)


class StaticTokenProvider(AbstractTokenProvider):
    """One fixed OAUTHBEARER token (SLUICE_KAFKA_SASL_OAUTH_TOKEN)."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def token(self) -> str:
        return self._token


class MskIamTokenProvider(AbstractTokenProvider):
    """AWS MSK IAM tokens (a SigV4-presigned ``kafka-cluster:Connect`` URL), signed with
    credentials from the standard AWS chain, renewed before they expire."""

    def __init__(self, region: str) -> None:
        self.region = region
        self._token: str | None = None
        self._expires_at = 0.0

    async def token(self) -> str:
        if self._token is None or time.time() > self._expires_at - _TOKEN_RENEW_MARGIN_SECONDS:
            # The chain may ask the instance metadata service: not on the event loop.
            self._token, self._expires_at = await asyncio.to_thread(self._sign)
        return self._token

    def _sign(self) -> tuple[str, float]:
        from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

        try:
            token, expiry_ms = MSKAuthTokenProvider.generate_auth_token(self.region)
        except Exception as error:  # noqa: BLE001 (botocore's and the signer's errors vary)
            raise KafkaConnectionFailure(
                f"cannot sign an AWS MSK IAM token ({type(error).__name__}: {error}): give the "
                "worker AWS credentials (AWS_* environment, AWS_PROFILE, IRSA or an instance "
                "role), or set SLUICE_KAFKA_SASL_OAUTH_TOKEN"
            ) from error
        return token, expiry_ms / 1000


async def check_connection(settings: Settings) -> None:
    """Connect to a bootstrap server with the full TLS and SASL exchange, then hang up.

    Raises KafkaConnectionFailure naming the settings to check if no server accepts us.
    """
    options = client_options(settings)
    failure = ""
    unreachable = True
    for server in settings.bootstrap_server_list:
        host, port = server.rsplit(":", 1)
        try:
            connection = await create_conn(
                host, int(port), request_timeout_ms=CHECK_TIMEOUT_MS,
                **{k: v for k, v in options.items() if k != "bootstrap_servers"},
            )
        except Exception as error:  # noqa: BLE001 (every failure is explained below)
            failure = describe_failure(error, settings, server)
            unreachable = unreachable and _is_unreachable(error)
            log.debug("Kafka connection check of %s failed: %r", server, error)
            continue
        connection.close()
        return
    raise KafkaConnectionFailure(failure, unreachable=unreachable)


def describe_failure(error: BaseException, settings: Settings, server: str) -> str:
    """One sentence: what went wrong connecting to `server`, and which settings to check."""
    if isinstance(error, KafkaConnectionFailure):
        return str(error)
    protocol = f"SLUICE_KAFKA_SECURITY_PROTOCOL={settings.kafka_security_protocol.value}"
    if isinstance(error, ssl.SSLCertVerificationError):
        hint = ("SLUICE_KAFKA_SSL_CA_FILE (the CA that signed the broker's certificate)"
                if "hostname" not in str(error) else
                "the host in SLUICE_KAFKA_BOOTSTRAP_SERVERS (it must be named in the broker's "
                "certificate) and SLUICE_KAFKA_SSL_CHECK_HOSTNAME")
        return (f"Kafka at {server}: the broker's TLS certificate is not trusted "
                f"({getattr(error, 'verify_message', None) or error}): check {hint}")
    if isinstance(error, ssl.SSLError):
        reason = getattr(error, "reason", None) or error
        return (f"Kafka at {server}: the TLS handshake failed ({reason}): check "
                f"{protocol} (does this listener speak TLS?) and, for mutual TLS, "
                "SLUICE_KAFKA_SSL_CERT_FILE and SLUICE_KAFKA_SSL_KEY_FILE")
    if isinstance(error, kafka_errors.UnsupportedSaslMechanismError):
        mechanism = settings.kafka_sasl_mechanism.value if settings.kafka_sasl_mechanism else ""
        offered = str(error).split("Enabled mechanisms are:")[-1].strip() \
            if "Enabled mechanisms" in str(error) else "not said"
        return (f"Kafka at {server} refused the SASL mechanism {mechanism} (offered: "
                f"{offered}): check SLUICE_KAFKA_SASL_MECHANISM")
    if isinstance(error, kafka_errors.SaslAuthenticationFailed
                  | kafka_errors.IllegalSaslStateError):
        credentials = ("the AWS credentials and the cluster's IAM policy (or "
                       "SLUICE_KAFKA_SASL_OAUTH_TOKEN)"
                       if settings.kafka_sasl_mechanism == KafkaSaslMechanism.OAUTHBEARER else
                       "SLUICE_KAFKA_SASL_USERNAME and SLUICE_KAFKA_SASL_PASSWORD")
        return (f"Kafka at {server} did not accept our SASL "
                f"{settings.kafka_sasl_mechanism or ''} login ({error}): check {credentials} "
                "and SLUICE_KAFKA_SASL_MECHANISM")
    if isinstance(error, ConnectionRefusedError | TimeoutError | asyncio.TimeoutError
                  | kafka_errors.KafkaTimeoutError) or (
            isinstance(error, OSError) and not isinstance(error, ConnectionResetError)):
        return (f"cannot reach Kafka at {server} ({type(error).__name__}: {error}): check "
                f"SLUICE_KAFKA_BOOTSTRAP_SERVERS, and {protocol}")
    # The broker closed the connection while we set it up: usually a listener that expects
    # another protocol (TLS, SASL) than the client speaks.
    also = []
    # TLS 1.3 refuses a client certificate late.
    if settings.kafka_security_protocol in TLS_PROTOCOLS:
        also.append("for mutual TLS, SLUICE_KAFKA_SSL_CERT_FILE and SLUICE_KAFKA_SSL_KEY_FILE")
    if settings.kafka_security_protocol in SASL_PROTOCOLS:
        also.append("SLUICE_KAFKA_SASL_MECHANISM")
    return (f"Kafka at {server} closed the connection during set-up ({type(error).__name__}: "
            f"{error}): check {protocol} (TLS and SASL listeners close connections that do not "
            "speak their protocol)" + "".join(f"; {hint}" for hint in also))


def _path(value: object) -> str | None:
    return None if value is None else str(value)


def explain_kafka_failure(error: BaseException) -> str:
    """The message for a command that failed on a Kafka client: a ``KafkaConnectionFailure``
    as it is; for aiokafka's own errors ("Unable to bootstrap", which names no cause), a fresh
    connection check finds the cause and the settings to check."""
    if isinstance(error, KafkaConnectionFailure):
        return str(error)
    from worker.config import SettingsError, load_settings

    try:
        asyncio.run(check_connection(load_settings()))
    except KafkaConnectionFailure as failure:
        return str(failure)
    except SettingsError as settings_error:
        return str(settings_error)
    return (f"Kafka: {type(error).__name__}: {error} (check SLUICE_KAFKA_BOOTSTRAP_SERVERS and "
            "the SLUICE_KAFKA_* security settings)")
