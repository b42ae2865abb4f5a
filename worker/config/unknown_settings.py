"""SLUICE_* variables that are no setting: most likely misspelled, and then silently ignored
while the setting they meant keeps its default. Reported at start-up with the closest name.

A warning, not an error: one environment (a Kubernetes ConfigMap, a shared `.env`) often serves
several versions of Sluice during a rolling upgrade or a rollback, and a setting added or
removed between them must not stop the other version's workers. The settings that decide where
data goes are checked anyway: an unreachable broker, Elasticsearch or S3 stops a worker at
start-up, naming the setting.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from dotenv import dotenv_values

from worker.config import ENV_PREFIX, Settings


def known_variables() -> list[str]:
    """Every variable Sluice reads, e.g. SLUICE_KAFKA_BOOTSTRAP_SERVERS."""
    return [f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields]


def unknown_variables(names: Iterable[str]) -> dict[str, str | None]:
    """The SLUICE_* names that are no setting, each with the closest known name (or None)."""
    known = known_variables()
    known_set = set(known)
    result: dict[str, str | None] = {}
    for name in sorted(set(names)):
        upper = name.upper()  # pydantic-settings matches variable names case-insensitively
        if not upper.startswith(ENV_PREFIX) or upper in known_set:
            continue
        # Compared without the prefix, which every name shares and which would make any two
        # names look alike.
        closest = difflib.get_close_matches(upper.removeprefix(ENV_PREFIX),
                                            [k.removeprefix(ENV_PREFIX) for k in known],
                                            n=1, cutoff=0.75)
        result[name] = f"{ENV_PREFIX}{closest[0]}" if closest else None
    return result


def configured_names(environ: Mapping[str, str] | None = None,
                     dotenv: Path = Path(".env")) -> list[str]:
    """The variable names in the environment and in the `.env` file Settings reads."""
    names = list(os.environ if environ is None else environ)
    if dotenv.is_file():
        names += list(dotenv_values(dotenv))
    return names


def unknown_variable_warnings(environ: Mapping[str, str] | None = None,
                              dotenv: Path = Path(".env")) -> list[str]:
    """One line per unknown SLUICE_* variable, for a person."""
    lines = []
    for name, closest in unknown_variables(configured_names(environ, dotenv)).items():
        hint = f"did you mean {closest}? " if closest else ""
        lines.append(f"warning: {name} is not a Sluice setting and is ignored ({hint}"
                     "`sluice settings --markdown` lists every setting)")
    return lines
