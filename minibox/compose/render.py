"""``compose config``: the project as compose understands it (paths resolved, defaults
filled, environment files read), as YAML."""

from __future__ import annotations

import yaml

from minibox.compose.model import Project


def _clean(v):
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items() if x not in (None, [], {}, False)}
    if isinstance(v, list):
        return [_clean(x) for x in v]
    return v


def to_yaml(project: Project) -> str:
    doc = {"name": project.name,
           "services": {n: _clean(s.to_dict()) for n, s in project.services.items()},
           "networks": {k: {"name": n.name, **({"external": True} if n.external else {})}
                        for k, n in project.networks.items()},
           "volumes": {k: {"name": v.name, **({"external": True} if v.external else {})}
                       for k, v in project.volumes.items()}}
    for s in doc["services"].values():
        s.pop("name", None)
    return yaml.safe_dump(_clean(doc), sort_keys=False, default_flow_style=False)
