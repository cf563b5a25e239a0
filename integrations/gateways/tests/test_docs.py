"""docs/gateways.md shows the very files these tests run nginx and Caddy
with, and its other configurations are at least well-formed YAML."""

from __future__ import annotations

import re

import pytest
import yaml

from .harness import CADDYFILE, NGINX_TEMPLATE, REPO_ROOT

DOC = REPO_ROOT / "docs" / "gateways.md"

# A marker line, then a fenced block: the block must be the file, byte for byte.
TESTED = re.compile(r"<!-- tested: (?P<path>\S+) -->\n```[a-z]*\n(?P<body>.*?)```\n", re.DOTALL)
FENCED = re.compile(r"^```(?P<lang>[a-z]*)\n(?P<body>.*?)^```$", re.DOTALL | re.MULTILINE)


def test_the_doc_shows_the_tested_files_as_they_are() -> None:
    doc = DOC.read_text()
    shown = {m["path"]: m["body"] for m in TESTED.finditer(doc)}
    wanted = {p.relative_to(REPO_ROOT).as_posix(): p for p in (NGINX_TEMPLATE, CADDYFILE)}
    assert set(shown) == set(wanted), (
        f"docs/gateways.md marks {sorted(shown)} as tested; the tests use {sorted(wanted)}"
    )
    for path, file in wanted.items():
        assert shown[path] == file.read_text(), (
            f"the block after '<!-- tested: {path} -->' in docs/gateways.md differs from "
            f"{path}: copy the file into the doc (or the doc into the file) so they agree"
        )


def yaml_blocks() -> list[str]:
    return [m["body"] for m in FENCED.finditer(DOC.read_text()) if m["lang"] == "yaml"]


@pytest.mark.parametrize("index", range(len(yaml_blocks())))
def test_every_yaml_block_parses(index: int) -> None:
    documents = list(yaml.safe_load_all(yaml_blocks()[index]))
    assert documents
    assert all(isinstance(d, dict) for d in documents)


def test_the_untested_configurations_say_what_the_tested_ones_do() -> None:
    """The settings the tests prove for nginx and Caddy, in the others."""
    envoy = yaml.safe_load(next(b for b in yaml_blocks() if "envoy.filters.http.ext_authz" in b))
    filters = envoy["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"
    ]["http_filters"]
    names = [f["name"] for f in filters]
    # The client's identity headers go before the check; the router is last.
    assert names == [
        "envoy.filters.http.header_mutation",
        "envoy.filters.http.ext_authz",
        "envoy.filters.http.router",
    ]
    authz = filters[1]["typed_config"]
    assert authz["failure_mode_allow"] is False
    assert authz["http_service"]["path_prefix"].startswith("/v1/gateway/check/")
    assert {p["exact"] for p in authz["allowed_headers"]["patterns"]} == {
        "origin",
        "sec-websocket-protocol",
    }
    added = authz["http_service"]["authorization_request"]["headers_to_add"]
    assert [h["key"] for h in added] == ["x-wsticket-gateway-key"]
    upstream = authz["http_service"]["authorization_response"]["allowed_upstream_headers"]
    identity = {p["exact"] for p in upstream["patterns"]}
    assert identity == {
        "x-wsticket-user",
        "x-wsticket-audience",
        "x-wsticket-origin",
        "x-wsticket-claims",
    }
    removed = {m["remove"] for m in filters[0]["typed_config"]["mutations"]["request_mutations"]}
    assert identity <= removed

    # And no configuration shown does what the doc says must never be done.
    shown = "\n".join(yaml_blocks())
    for never in [
        "auth-cache-key",
        "auth-signin",
        "failure_mode_allow: true",
        "failOpen: true",
        "trustForwardHeader: true",
        "REQ(X-ENVOY-ORIGINAL-PATH?:PATH)",
        "$request ",
        "$request_uri",
    ]:
        assert never not in shown, never
