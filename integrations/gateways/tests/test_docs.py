"""docs/gateways.md shows the very files these tests run nginx and Caddy
with, its other configurations are at least well-formed YAML, and every
configuration passes the identity headers on."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from .harness import CADDYFILE, NGINX_TEMPLATE, REPO_ROOT

DOC = REPO_ROOT / "docs" / "gateways.md"

# Every header of the check's 200 that the app gets (lowercase).
IDENTITY = {
    "x-wsticket-user",
    "x-wsticket-audience",
    "x-wsticket-origin",
    "x-wsticket-claims",
    "x-wsticket-issued-at",
}

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
    assert identity == IDENTITY
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


def documents_of_kind(kind: str) -> list[dict[str, Any]]:
    found = []
    for block in yaml_blocks():
        for document in yaml.safe_load_all(block):
            if isinstance(document, dict) and document.get("kind") == kind:
                found.append(document)
    assert found, f"docs/gateways.md shows no {kind}"
    return found


def test_the_untested_configurations_pass_on_every_identity_header() -> None:
    """Traefik, Envoy Gateway and ingress-nginx copy every identity header
    of the answer onto the request, and remove the client's own first."""
    # Traefik: authResponseHeaders removes the client's and copies wsticket's.
    (check,) = [
        m["spec"]["forwardAuth"]
        for m in documents_of_kind("Middleware")
        if "forwardAuth" in m["spec"]
    ]
    assert {h.lower() for h in check["authResponseHeaders"]} == IDENTITY
    assert check["authResponseHeadersRegex"] == "(?i)^x[-_.]wsticket[-_.]"

    # Envoy Gateway: copied from the answer, and the client's removed before
    # any filter.
    (policy,) = documents_of_kind("SecurityPolicy")
    assert set(policy["spec"]["extAuth"]["http"]["headersToBackend"]) == IDENTITY
    (listener,) = documents_of_kind("ClientTrafficPolicy")
    early = listener["spec"]["headers"]["earlyRequestHeaders"]
    assert {h.lower() for h in early["remove"]} >= IDENTITY

    # ingress-nginx: auth-response-headers replaces the client's.
    (ingress,) = documents_of_kind("Ingress")
    names = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/auth-response-headers"]
    assert {h.strip().lower() for h in names.split(",")} == IDENTITY
