"""Kibana settings (`sluice kibana import`)."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import BaseModel, Field, model_validator


class KibanaSettings(BaseModel):
    """Where `sluice kibana import` installs the data view and the dashboard."""

    kibana_url: str = Field(
        "http://localhost:5601", pattern=r"^https?://",
        description="Kibana's URL, for `sluice kibana import` (the compose file's Kibana by "
        "default).",
    )
    kibana_space: str = Field(
        "", description="Kibana space to import into; empty for the default space.",
    )
    kibana_api_key: str | None = Field(
        None, repr=False,
        description="Kibana API key (the Base64 `encoded` value), sent as `Authorization: "
        "ApiKey …`; or set `SLUICE_KIBANA_USERNAME`/`PASSWORD`. Neither for a Kibana without "
        "security.",
    )
    kibana_username: str | None = Field(None, description="Kibana basic-auth user name.")
    kibana_password: str | None = Field(None, repr=False, description="Kibana basic-auth password.")
    kibana_ca_certs: Path | None = Field(
        None, description="CA bundle (PEM) to verify Kibana's TLS certificate.",
    )

    @model_validator(mode="after")
    def _one_way_to_log_in(self) -> Self:
        if bool(self.kibana_username) != bool(self.kibana_password):
            raise ValueError("SLUICE_KIBANA_USERNAME and SLUICE_KIBANA_PASSWORD go together")
        if self.kibana_api_key and self.kibana_username:
            raise ValueError("set SLUICE_KIBANA_API_KEY or SLUICE_KIBANA_USERNAME/PASSWORD, "
                             "not both")
        return self
