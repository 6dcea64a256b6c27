"""A compose project as plain values, after validation (schema.py makes them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")


@dataclass
class VolumeMount:
    kind: str                 # bind | volume | anonymous | tmpfs
    source: str               # absolute host path, the volume's key in the file, or ""
    target: str
    readonly: bool = False


@dataclass
class Build:
    context: str              # absolute directory
    minibox_file: str         # absolute path of the MiniBox file


@dataclass
class Healthcheck:
    test: list[str] | None    # argv (CMD-SHELL becomes sh -c); None: disabled
    interval: str | None = None
    timeout: str | None = None
    retries: int | None = None
    start_period: str | None = None


@dataclass
class Service:
    name: str
    image: str | None = None
    build: Build | None = None
    command: list[str] | None = None
    entrypoint: list[str] | None = None
    environment: list[str] = field(default_factory=list)
    ports: list[str] = field(default_factory=list)
    expose: list[str] = field(default_factory=list)
    volumes: list[VolumeMount] = field(default_factory=list)
    depends_on: dict[str, str] = field(default_factory=dict)   # service -> condition
    healthcheck: Healthcheck | None = None
    restart: str = "no"
    user: str | None = None
    working_dir: str | None = None
    hostname: str | None = None
    db_mode: bool = False
    data: str | None = None
    shm_size: str | None = None
    mem_limit: str | None = None
    cpus: float | None = None
    networks: list[str] = field(default_factory=list)        # keys of Project.networks
    aliases: dict[str, list[str]] = field(default_factory=dict)   # network key -> aliases

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class NamedVolume:
    key: str                  # its name in the file
    name: str                 # the volume's name in the daemon (PROJECT_KEY, or `name:`)
    external: bool = False


@dataclass
class Network:
    key: str
    name: str                 # PROJECT_KEY, or `name:`
    external: bool = False
    subnet: str | None = None     # ipam.config[0].subnet; None: the daemon picks one


@dataclass
class Project:
    name: str
    file: str                 # absolute path of the compose file
    workdir: str              # its directory: relative paths resolve against it
    services: dict[str, Service]          # in file order
    volumes: dict[str, NamedVolume] = field(default_factory=dict)
    networks: dict[str, Network] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)   # field path -> line (errors)
