"""A schemathesis run over the real daemon's /openapi.json: whatever the schema allows and
whatever it forbids, no route answers 5xx, and every answer has the documented status,
content type and shape.

Every route is exercised (none is excluded).  What keeps the run harmless on a shared
host (see conftest): the farm has no image, so no generated body can create a container
(and so none can bind a host path); its build prefix is a directory of its own, so a path
build can only pack that; what the run does create (volumes, build jobs) is removed after
it and checked for.  Bounded: 10 generated examples per route (plus schemathesis's
boundary cases), derandomized, no shrinking: about 1,900 requests, ~2-3 minutes on a loaded
2-core machine.
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, Phase, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (content_type_conformance,  # noqa: E402
                                               negative_data_rejection,
                                               response_schema_conformance,
                                               status_code_conformance)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, negative_data_rejection]
EXAMPLES = 10


@pytest.fixture(scope="module")
def api_headers(farm) -> dict:
    with farm.http() as c:
        return {k: v for k, v in c.headers.items() if k.lower() in ("authorization",
                                                                      "x-api-token")}


@pytest.fixture(scope="module")
def api_schema(farm, api_headers):
    with farm.http() as c:
        assert c.get("/images").json() == [], "the schemathesis farm must have no image"
    schema = schemathesis.openapi.from_url(farm.api + "/openapi.json", headers=api_headers,
                                           timeout=60)
    schema.config.base_url = farm.api
    return schema


@pytest.fixture(scope="module", autouse=True)
def cleanup(farm):
    """After the run: remove what it created, and check nothing else is left."""
    yield
    with farm.http() as c:
        for v in c.get("/volumes").json():
            c.delete(f"/volumes/{v['name']}", params={"force": "true"})
        for job in c.get("/builds", params={"limit": 1000}).json():
            c.post(f"/builds/{job['id']}/cancel")
        assert c.get("/volumes").json() == []
        assert c.get("/containers", params={"all": "true"}).json() == []
        assert c.get("/images").json() == []


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_no_5xx_and_no_broken_response(case, api_headers):
    case.call_and_validate(headers=api_headers, checks=CHECKS, timeout=60)
