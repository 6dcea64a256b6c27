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
           "networks": {k: {"name": n.name, **({"external": True} if n.external else {}),
                            **({"ipam": {"config": [{"subnet": n.subnet}]}} if n.subnet else {})}
                        for k, n in project.networks.items()},
           "volumes": {k: {"name": v.name, **({"external": True} if v.external else {})}
                       for k, v in project.volumes.items()}}
    doc = _clean(doc)
    for n, s in doc["services"].items():
        s.pop("name", None)
        aliases = s.pop("aliases", None)
        if aliases:            # compose's mapping form: the aliases under their network
            s["networks"] = {k: {"aliases": aliases[k]} if k in aliases else None
                             for k in project.services[n].networks}
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
