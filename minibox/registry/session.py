"""Opening sessions: a reference (or a bare host) -> its endpoint and credentials."""

from __future__ import annotations

from minibox.registry import credentials
from minibox.registry.client import Session
from minibox.registry.config import RegistryConfig
from minibox.registry.reference import DOCKER_HUB, DOCKER_HUB_HOST, Reference


def open_session(ref: Reference, config: RegistryConfig,
                 creds: credentials.Credentials | None = None) -> Session:
    """A session with the registry itself (never a mirror: pushes and logins go there)."""
    endpoint = config.endpoints(ref.registry, ref.api_host)[-1]
    creds = creds or credentials.lookup(config.auth_file, endpoint.host)
    return Session(endpoint, ref.repository, creds, config)


def login(server: str, username: str, password: str, insecure: tuple[str, ...] = ()) -> None:
    """Raise RegistryError unless ``server`` accepts these credentials."""
    config = RegistryConfig.from_env(insecure=insecure)
    api_host = DOCKER_HUB_HOST if server == DOCKER_HUB else server
    endpoint = config.endpoints(server, api_host)[-1]
    with Session(endpoint, "", credentials.Credentials(username, password),
                 config) as session:
        session.ping()
