"""URLs in settings: checked when the settings are read, and shown without their user information.

A URL setting (SLUICE_ELASTICSEARCH_URL, SLUICE_S3_ENDPOINT_URL) may carry credentials as
``scheme://user:password@host``. Wherever a URL is shown (``sluice settings``, a validation
error, a log line, a reason of ``/health/ready``, a start-up error), ``redact_urls`` replaces its
user information with ``***``. This is the one place that does it: everything imports
``worker.config``.

URLs are parsed with ``urllib.parse``, not matched by a pattern: the user information is the
part of the authority before its last ``@`` (a password may hold ``@``: clients read it so too).
A password that holds an unencoded ``/``, ``?`` or ``#`` ends the authority early for a parser,
so an ``@`` later in the URL also counts as the end of the user information: an odd URL (an
``@`` in a path) then loses more than its user information, but a password is never shown. Such
URLs are refused as settings anyway (``check_http_url``), asking for percent-encoding.

In free text, a URL starts with ``scheme://`` and ends at white space, a quote, ``<`` or ``>``,
or where the next URL of a comma-separated list starts: a password holding white space or quotes
is not recognised there (settings are checked as a whole, so this concerns only log lines).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

REDACTED = "***"

# Where a URL starts in text, and where it stops: white space, quotes, angle brackets, or a
# comma followed by the next URL (SLUICE_ELASTICSEARCH_URL holds comma-separated URLs).
_URL_IN_TEXT = re.compile(
    r"[A-Za-z][A-Za-z0-9+.-]*://.*?(?=[\s'\"<>]|,[A-Za-z][A-Za-z0-9+.-]*://|$)"
)

HTTP_SCHEMES = ("http", "https")


def redact_url(url: str) -> str:
    """The URL with its user information (name and password) replaced by ``***``."""
    scheme, separator, rest = url.partition("://")
    if not separator or "@" not in rest:
        return url
    netloc = urlsplit(url).netloc
    if "@" in netloc:  # the usual case: user:password@host[:port]
        host = netloc.rpartition("@")[2]
        return f"{scheme}://{REDACTED}@{host}{rest[len(netloc):]}"
    # An unencoded "/", "?" or "#" in the password ended the authority before its "@".
    return f"{scheme}://{REDACTED}@{rest.rpartition('@')[2]}"


def redact_urls(text: str) -> str:
    """The text with every URL in it shown without user information."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda match: redact_url(match.group(0)), text)


def check_http_url(url: str) -> str:
    """The URL, stripped, if it is an ``http://`` or ``https://`` URL with a host and a valid
    port; else ValueError saying what is wrong, without the URL (the caller shows it redacted).
    """
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme.lower() not in HTTP_SCHEMES:
        raise ValueError("not an http:// or https:// URL (e.g. https://host:port)")
    if not _port_is_valid(url):
        raise ValueError("the port is not a number from 0 to 65535" + _ENCODE_HINT)
    if not parts.hostname:
        raise ValueError("the URL has no host (e.g. https://host:port)")
    if "@" in url.partition("://")[2].removeprefix(parts.netloc):
        raise ValueError("`@` after the host" + _ENCODE_HINT)
    return url


# A port that is no number is often a piece of a password cut at an unencoded "/".
_ENCODE_HINT = ("; in a user name or password, percent-encode `/` (%2F), `@` (%40), `?` (%3F), "
                "`#` (%23) and `:` (%3A)")


def _port_is_valid(url: str) -> bool:
    # urllib's own message repeats what it read as the port: perhaps part of a password.
    try:
        urlsplit(url).port  # noqa: B018 (reading the port checks it)
    except ValueError:
        return False
    return True
