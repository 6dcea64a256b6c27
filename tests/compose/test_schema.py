"""Compose files that are wrong: each error names the file, the line and the field path,
says what is expected, exits non-zero without a traceback, and touches no daemon (these
run `minibox compose config` with no daemon at all)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from minibox.compose import netadapter, plan
from minibox.errors import ParseError


def _config(tmp_path, text: str, *args, files: dict | None = None):
    (tmp_path / "minibox-compose.yaml").write_text(textwrap.dedent(text))
    for rel, content in (files or {}).items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
    env = {"PATH": "/usr/bin:/bin", "MINIBOX_API": "http://127.0.0.1:1", "NO_COLOR": "1"}
    import os
    env["PYTHONPATH"] = os.environ.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "minibox.cli.main", "compose", *args, "config"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)


BAD = [
    ("cycle", """\
        services:
          a:
            image: busybox
            depends_on: [b]
          b:
            image: busybox
            depends_on: [c]
          c:
            image: busybox
            depends_on: [a]
        """, 4, "services.a.depends_on", "dependency cycle: a -> b -> c -> a"),
    ("unknown dependency", """\
        services:
          web:
            image: busybox
            depends_on:
              - db
              - cache
          db:
            image: busybox
        """, 6, "services.web.depends_on[1]", "depends on 'cache', which is not a service"),
    ("unknown dependency in map form", """\
        services:
          web:
            image: busybox
            depends_on:
              dbb:
                condition: service_healthy
          db:
            image: busybox
        """, 5, "services.web.depends_on.dbb", "did you mean 'db'?"),
    ("wrong type", """\
        services:
          web:
            image: busybox
            ports:
              - "8080:80"
              - [80]
        """, 6, "services.web.ports[1]", "invalid port mapping"),
    ("wrong type of a whole field", """\
        services:
          web:
            image: busybox
            environment: 3
        """, 4, "services.web.environment", "expected a list of KEY=VALUE or a mapping"),
    ("a bool that is not one", """\
        services:
          db:
            image: busybox
            db_mode: "yes please"
        """, 4, "services.db.db_mode", "expected true or false"),
    ("missing build context", """\
        services:
          web:
            build:
              context: ./nowhere
        """, 4, "services.web.build.context", "is not a directory"),
    ("unknown field", """\
        services:
          web:
            image: busybox
            comand: ["true"]
        """, 4, "services.web.comand", "did you mean 'command'?"),
    ("undeclared volume", """\
        services:
          web:
            image: busybox
            volumes:
              - data:/data
        """, 5, "services.web.volumes[0]", "not declared in the top-level `volumes`"),
    ("data without db_mode", """\
        services:
          db:
            image: busybox
            data: /var/lib/db
        """, 4, "services.db.data", "needs `db_mode: true`"),
    ("bad condition", """\
        services:
          web:
            image: busybox
            depends_on:
              db: {condition: service_ready}
          db:
            image: busybox
        """, 5, "services.web.depends_on.db.condition", "invalid condition 'service_ready'"),
    ("duplicate key", """\
        services:
          web:
            image: busybox
          web:
            image: busybox
        """, 4, "services.web", "is given twice"),
    ("no image nor build", """\
        services:
          web:
            command: ["true"]
        """, 2, "services.web", "has neither `image` nor `build`"),
    ("undeclared network", """\
        services:
          web:
            image: busybox
            networks: [front, back]
        networks:
          front:
        """, 4, "services.web.networks[1]", "the network 'back' is not declared"),
    ("undeclared network in map form", """\
        services:
          web:
            image: busybox
            networks:
              frnt:
                aliases: [www]
        networks:
          front:
        """, 5, "services.web.networks.frnt", "(declared: front, default)"),
    ("unknown field of a service's network", """\
        services:
          web:
            image: busybox
            networks:
              front:
                alias: [www]
        networks:
          front:
        """, 6, "services.web.networks.front.alias", "did you mean 'aliases'?"),
    ("bad alias", """\
        services:
          web:
            image: busybox
            networks:
              front:
                aliases: [ok, "not ok"]
        networks:
          front:
        """, 6, "services.web.networks.front.aliases[1]", "invalid alias 'not ok'"),
    ("network driver", """\
        services:
          web: {image: busybox}
        networks:
          front:
            driver: overlay
        """, 5, "networks.front.driver", "unsupported network driver 'overlay'"),
    ("network subnet", """\
        services:
          web: {image: busybox}
        networks:
          back:
            ipam:
              config:
                - subnet: 10.1.2.3/24
        """, 7, "networks.back.ipam.config[0].subnet", "invalid subnet '10.1.2.3/24'"),
    ("ipam of an external network", """\
        services:
          web: {image: busybox}
        networks:
          corp:
            external: true
            ipam: {config: [{subnet: 10.1.2.0/24}]}
        """, 6, "networks.corp.ipam", "an external network's addresses are set where"),
    ("healthcheck duration", """\
        services:
          web:
            image: busybox
            healthcheck:
              test: ["CMD", "true"]
              interval: soon
        """, 6, "services.web.healthcheck.interval", "invalid duration 'soon'"),
]


@pytest.mark.parametrize("text,line,path,words", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_files_name_file_line_and_field(tmp_path, text, line, path, words):
    r = _config(tmp_path, text)
    assert r.returncode != 0
    assert f"minibox-compose.yaml:{line}: {path}: " in r.stderr, r.stderr
    assert words in r.stderr, r.stderr
    shown = textwrap.dedent(text).splitlines()[line - 1]
    assert f"{line} | {shown.rstrip()}" in r.stderr            # the line is shown
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_invalid_yaml_names_the_line(tmp_path):
    r = _config(tmp_path, "services:\n  web:\n    image: [busybox\n  db: {}\n")
    assert r.returncode == 2 and "minibox-compose.yaml:4: invalid YAML" in r.stderr, r.stderr


def test_no_file_says_where_it_looked(tmp_path):
    r = _config(tmp_path, "services: {}\n", "-f", "other.yaml")
    assert r.returncode == 2 and "no compose file at other.yaml" in r.stderr


def test_config_resolves_paths_env_and_defaults(tmp_path):
    (tmp_path / "site").mkdir()
    r = _config(tmp_path, """\
        name: shop
        services:
          web:
            build: ./web
            command: httpd -f -p 80
            environment:
              A: 1
              B: "two words"
            env_file: web.env
            volumes:
              - ./site:/www:ro
              - data:/data
              - /scratch
            depends_on:
              db:
                condition: service_healthy
          db:
            image: busybox
            restart: no
            db_mode: true
            data: /var/lib/db
            healthcheck:
              test: CMD-SHELL true
        volumes:
          data:
        """, files={"web/MiniBox": "BASE busybox\n", "web.env": "# c\nC=3\n"})
    assert r.returncode == 0, r.stderr
    import yaml
    doc = yaml.safe_load(r.stdout)
    web = doc["services"]["web"]
    assert doc["name"] == "shop"
    assert web["build"] == {"context": str(tmp_path / "web"),
                            "minibox_file": str(tmp_path / "web" / "MiniBox")}
    assert web["command"] == ["httpd", "-f", "-p", "80"]
    assert web["environment"] == ["C=3", "A=1", "B=two words"]
    assert web["volumes"][0] == {"kind": "bind", "source": str(tmp_path / "site"),
                                 "target": "/www", "readonly": True}
    assert web["volumes"][2]["kind"] == "anonymous"
    assert web["depends_on"] == {"db": "service_healthy"}
    assert doc["services"]["db"]["restart"] == "no"
    assert doc["volumes"] == {"data": {"name": "shop_data"}}


def test_project_waves_and_request(tmp_path):
    (tmp_path / "minibox-compose.yaml").write_text(textwrap.dedent("""\
        services:
          web: {image: busybox, depends_on: [api, cache]}
          api: {image: busybox, depends_on: [db]}
          db: {image: busybox, db_mode: true, data: /d, mem_limit: 64m, cpus: 0.5}
          cache: {image: busybox}
        """))
    p = plan.load_project(str(tmp_path / "minibox-compose.yaml"), "demo")
    assert plan.waves(p) == [["db", "cache"], ["api"], ["web"]]
    body = plan.request(p, p.services["db"])
    assert body["name"] == "demo-db-1" and body["db_mode"] is True
    assert "demo_db-data:/d" in body["volumes"] and body["memory"] == "64m"
    assert body["labels"]["minibox.compose.project"] == "demo"
    # the hash changes with the configuration, and only with it
    again = plan.request(p, p.services["db"])
    assert again["labels"] == body["labels"]
    p.services["db"].environment.append("X=1")
    assert plan.request(p, p.services["db"])["labels"] != body["labels"]


def test_project_name_defaults_to_the_file_directory(tmp_path):
    d = tmp_path / "My Shop"
    d.mkdir()
    (d / "minibox-compose.yaml").write_text("services:\n  a: {image: busybox}\n")
    assert plan.load_project(str(d / "minibox-compose.yaml")).name == "myshop"
    with pytest.raises(ParseError, match="invalid project name 'Bad Name'"):
        plan.load_project(str(d / "minibox-compose.yaml"), "Bad Name")


def test_networks_list_and_mapping_forms_with_aliases_and_subnet(tmp_path):
    """A service on several networks: its first carries the port maps, the others are
    extra networks; on each it has its service name and that network's aliases."""
    (tmp_path / "minibox-compose.yaml").write_text(textwrap.dedent("""\
        services:
          proxy:
            image: busybox
            ports: ["8080:80"]
            networks:
              front:
              back: {aliases: [gw]}
          web: {image: busybox, networks: [front]}
          db: {image: busybox}
        networks:
          front: {driver: bridge}
          back:
            ipam: {config: [{subnet: 10.91.3.0/24}]}
          corp: {external: true}
        """))
    p = plan.load_project(str(tmp_path / "minibox-compose.yaml"), "demo")
    assert p.networks["back"].subnet == "10.91.3.0/24" and p.networks["corp"].name == "corp"
    proxy = plan.request(p, p.services["proxy"], 1, netadapter.for_service(p, p.services["proxy"]))
    assert proxy["network"] == "demo_front" and proxy["network_aliases"] == ["proxy"]
    assert proxy["extra_networks"] == {"demo_back": ["proxy", "gw"]}
    assert proxy["ports"] == ["8080:80"]
    web = netadapter.for_service(p, p.services["web"])
    assert web == {"network": "demo_front", "network_aliases": ["web"]}
    assert netadapter.for_service(p, p.services["db"])["network"] == "demo_default"
    r = _config(tmp_path, (tmp_path / "minibox-compose.yaml").read_text())
    import yaml
    doc = yaml.safe_load(r.stdout)
    assert doc["services"]["proxy"]["networks"] == {"front": None, "back": {"aliases": ["gw"]}}
    assert doc["networks"]["back"]["ipam"] == {"config": [{"subnet": "10.91.3.0/24"}]}
