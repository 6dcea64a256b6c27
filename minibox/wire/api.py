"""The HTTP API's request models: the shape of every JSON body, form field, path and query
parameter the daemon accepts, defined once.

The API validates each request against these before it does anything (a wrong type, a NUL
byte, an overlong string, a number out of range is a 422 that names the field), and
/openapi.json publishes them.  Meaning (is this a memory size, a known capability, a free
name) is checked by the code that owns it (``minibox.runtime.spec`` for a run), still at the
API edge, before anything is queued.  Clients that build these bodies (the CLI's run flags,
compose) send plain dicts with these keys: importing pydantic would cost the CLI's fast
paths more than a whole request.

Pydantic only; nothing else of MiniBox is imported here.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "ARG_MAX", "BuildEventsCursor", "FEW", "ContainerRef", "ERROR_RESPONSES", "ErrorResponse",
    "ExecId", "ExecRequest", "HealthRequest", "MAX_TIMESTAMP",
    "ImageRef", "JobId", "LIST_MAX", "PathBuild", "RunRequest", "StopRequest", "Text",
    "VolumeCreate", "VolumeName",
]

LIST_MAX = 4096            # items in an argv or an environment
FEW = 256                  # items in the other lists and maps (volumes, labels, ids ...)
ARG_MAX = 128 << 10        # bytes of one argument or variable (the kernel's MAX_ARG_STRLEN)
_NO_CTRL = r"^[^\x00-\x1f\x7f]*$"
MAX_TIMESTAMP = 253402300799          # 9999-12-31T23:59:59Z, the last moment RFC 3339 has


def _no_nul(value: str) -> str:
    if "\0" in value:
        raise ValueError("a NUL byte is not allowed")
    return value


def Text(max_length: int, *, min_length: int = 0, pattern: str | None = None):
    """A string type: at most ``max_length`` characters, never a NUL byte.  ``pattern``
    (published in the schema) says more; without one, NUL is refused by a validator (a
    regular expression on 128 KiB strings makes schema-driven test generators crawl)."""
    constraints = StringConstraints(min_length=min_length, max_length=max_length,
                                    pattern=pattern)
    if pattern is None:
        return Annotated[str, constraints, AfterValidator(_no_nul)]
    return Annotated[str, constraints]


Arg = Text(ARG_MAX)                       # an argv item, an env entry (may hold newlines)
Short = Text(256, pattern=_NO_CTRL)       # a flag's value: a size, a path spec, a user
PathText = Text(4096, pattern=_NO_CTRL)   # a path on the daemon's machine or in a container

# path parameters: what names and ids may look like (a NUL byte, a slash or an overlong one
# is a 422, never a lookup)
# (a ref that could never name a container is still looked up: "no such container")
ContainerRef = Text(128, min_length=1, pattern=r"^[^\x00-\x1f\x7f/]+$")
VolumeName = Text(64, min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
JobId = Text(64, min_length=1, pattern=r"^[A-Za-z0-9_-]+$")
ExecId = Text(64, min_length=1, pattern=r"^[A-Za-z0-9]+$")
# any printable name: a malformed one is the store's clear "no such image" (404), not a 422
ImageRef = Text(512, min_length=1, pattern=_NO_CTRL)
BuildEventsCursor = Text(64, min_length=1, pattern=r"^(\d+(-\d+)?|\$)$")
SizeOrNumber = Annotated[int, Field(ge=0, le=1 << 50)] | Short
CpuCount = Annotated[float, Field(ge=0, le=1024)] | Short
Duration = Annotated[float, Field(ge=0, le=10 ** 9)] | Short
Labels = Annotated[dict[Text(256, pattern=_NO_CTRL), Text(4096)], Field(max_length=FEW)]


class _Body(BaseModel):
    # An unknown key is a 422 naming it (a typo is never silently dropped).
    model_config = ConfigDict(extra="forbid")

    def to_wire(self) -> dict:
        """The body as the runtime worker takes it: a plain dict without unset fields."""
        return self.model_dump(exclude_none=True)


class HealthRequest(_Body):
    cmd: Arg | Annotated[list[Arg], Field(min_length=1, max_length=LIST_MAX)]
    interval: Duration | None = None
    timeout: Duration | None = None
    retries: Annotated[int, Field(ge=1, le=1000)] | None = None
    start_period: Duration | None = None


class RunRequest(_Body):
    """POST /containers: what ``minibox run``'s flags say (see minibox/cli/run_flags.py)."""

    image: Text(512, min_length=1, pattern=_NO_CTRL)
    command: Annotated[list[Arg], Field(max_length=LIST_MAX)] | None = None
    entrypoint: Annotated[list[Arg], Field(max_length=LIST_MAX)] | None = None
    name: Text(128, pattern=_NO_CTRL) | None = None
    env: Annotated[list[Arg], Field(max_length=LIST_MAX)] = []
    volumes: Annotated[list[PathText], Field(max_length=FEW)] = []
    tmpfs: Annotated[list[PathText], Field(max_length=FEW)] = []
    workdir: PathText | None = None
    user: Short | None = None
    hostname: Text(64, pattern=_NO_CTRL) | None = None
    network: Text(64, pattern=_NO_CTRL) | None = None
    network_aliases: Annotated[list[Text(253, pattern=_NO_CTRL)], Field(max_length=FEW)] = []
    # more user-defined networks (eth1...): network name -> the container's aliases there
    extra_networks: Annotated[dict[Text(64, pattern=_NO_CTRL), Annotated[
        list[Text(253, pattern=_NO_CTRL)], Field(max_length=FEW)]], Field(max_length=8)] = {}
    ports: Annotated[list[Text(128, pattern=_NO_CTRL)], Field(max_length=FEW)] = []
    publish_all: bool | None = None
    restart: Text(64, pattern=_NO_CTRL) | None = None
    memory: SizeOrNumber | None = None
    cpus: CpuCount | None = None
    cpu_shares: Annotated[int, Field(ge=0, le=262144)] | None = None
    cpuset_cpus: Short | None = None
    io_weight: Annotated[int, Field(ge=0, le=1000)] | None = None
    pids_limit: Annotated[int, Field(ge=-1, le=4194304)] | None = None
    oom_score_adj: Annotated[int, Field(ge=-1000, le=1000)] | None = None
    shm_size: SizeOrNumber | None = None
    sysctls: Annotated[dict[Short, Short], Field(max_length=FEW)] = {}
    tty: bool | None = None
    interactive: bool | None = None
    autoremove: bool | None = None
    privileged: bool | None = None
    cap_add: Annotated[list[Text(64, pattern=_NO_CTRL)], Field(max_length=64)] = []
    cap_drop: Annotated[list[Text(64, pattern=_NO_CTRL)], Field(max_length=64)] = []
    security_opt: Annotated[list[Short], Field(max_length=16)] = []
    labels: Labels = {}
    health: HealthRequest | None = None
    no_healthcheck: bool | None = None
    log_opts: Annotated[list[Short], Field(max_length=16)] | None = None
    db_mode: bool | None = None


class ExecRequest(_Body):
    """POST /containers/{ref}/exec."""

    cmd: Annotated[list[Arg], Field(min_length=1, max_length=LIST_MAX)]
    env: Annotated[list[Arg], Field(max_length=LIST_MAX)] = []
    workdir: PathText | None = None
    user: Short | None = None
    tty: bool = False
    interactive: bool = False


class StopRequest(_Body):
    """POST /containers/stop: SIGTERM to all, SIGKILL to what is left after ``t`` seconds."""

    ids: Annotated[list[ContainerRef], Field(min_length=1, max_length=FEW)]
    t: Annotated[float, Field(ge=0, le=86400)] = 10.0


class VolumeCreate(_Body):
    """POST /volumes."""

    name: VolumeName
    labels: Labels = {}


#: OS/ARCH[/VARIANT], as in an image index: the platform a build's blocks run on
PLATFORM_PATTERN = r"^[a-z0-9_.-]+/[a-z0-9_.-]+(/[a-z0-9_.-]+)?$"


class PathBuild(_Body):
    """POST /builds/path: a build of a directory on the daemon's machine."""

    tag: Text(256, min_length=1, pattern=_NO_CTRL)
    context: PathText
    file: Text(4096, min_length=1, pattern=_NO_CTRL) = "MiniBox"
    target: Text(128, pattern=_NO_CTRL) | None = None
    no_cache: bool = False
    timestamp: Annotated[int, Field(ge=0, le=MAX_TIMESTAMP)] | None = None
    pull: Literal["missing", "always", "never"] = "missing"
    network: Literal["build", "none", "host"] = "build"
    platform: Text(64, pattern=PLATFORM_PATTERN) | None = None


class ErrorDetail(BaseModel):
    kind: str
    message: str
    hint: str | None = None


class ErrorResponse(BaseModel):
    """Every 4xx and 5xx answer: ``{"error": {kind, message, hint}}``."""

    error: ErrorDetail


# for the app: documents the error shape (and replaces FastAPI's own 422 body)
ERROR_RESPONSES = {"4XX": {"model": ErrorResponse, "description": "bad input: what, where, "
                                                                   "what to do"},
                   "5XX": {"model": ErrorResponse, "description": "a failure of the daemon"}}
