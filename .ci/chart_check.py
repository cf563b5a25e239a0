#!/usr/bin/env python3
"""Checks of the Helm chart helm/wsticket, run by .ci/chart-check in its venv.

Uses helm-python-sdk (Helm's Go SDK as a library: no helm CLI, no cluster)
and kubernetes-validate (the Kubernetes OpenAPI schemas, offline):

1. `helm lint --strict` with the default values and every ci/*-values.yaml
   (all options; a Redis Cluster; Sentinel);
2. render those, plus a single-replica in-memory setup and two ways of giving
   a Cluster or Sentinel password inline, and validate every manifest with
   `kubernetes-validate --strict -k 1.30.0`. ServiceMonitor and
   PrometheusRule are CRDs that those schemas don't know: they are skipped
   there and checked here instead (shape, and the rules being exactly
   files/alerts.yaml);
3. check what the manifests must say (security context, probes, every secret
   file the config names being a key of a mounted Secret, the Redis topology
   in [store] as redis.mode says, the sentinels' password file exactly when
   redis.sentinel.authSentinels asks for it, no password in the ConfigMap,
   the NetworkPolicy's Redis ports, what NOTES.txt says about the Sentinel
   passwords, ...);
4. check that bad values fail to render: a typo'd key (schema), more than one
   replica without Redis, two Redis topologies, a password in a Cluster or
   Sentinel URL, a malformed Redis URL, ticket secret or JWT HMAC secret
   (without the message echoing any of them), a sentinels' password without
   a Redis password to take it from, and the other guards in
   templates/_helpers.tpl; and that the schema puts nothing but a type on
   the values that may hold a secret (Helm's schema errors can echo a value:
   the templates check those, with messages that never do);
5. if a wsticket binary built from the current sources is around, run
   `wsticket check-config` on each rendered wsticket.toml, with the secret
   files it names materialised in a temporary directory.

Exit status 0 when everything passed. The last line reads
"chart-check: N passed, N failed".
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import pathlib
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import tomllib
from typing import Any

import helm_python as helm
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "wsticket"
ALL_OPTIONS = CHART / "ci" / "all-options-values.yaml"
CLUSTER = CHART / "ci" / "cluster-values.yaml"
SENTINEL = CHART / "ci" / "sentinel-values.yaml"
ALERTS = CHART / "files" / "alerts.yaml"
KUBE_VERSION = "1.30.0"
SECRET_DIR = "/run/secrets/wsticket"
# A Cluster or Sentinel password from another Secret than the one at SECRET_DIR,
# and the sentinels' own password when it is another key of that Secret.
REDIS_PASSWORD_APART = "/run/secrets/wsticket-redis/password"
SENTINEL_PASSWORD_APART = "/run/secrets/wsticket-redis/sentinel-password"
# Every secret file the chart hands to wsticket is under here.
SECRETS_ROOT = "/run/secrets"
# In URLs: userinfo with a password ("user:password@" or ":password@").
URL_PASSWORD = re.compile(r"rediss?://[^/?#\s\"]*:[^/?#\s\"]*@")
# The password in the rejected values below; no error message may echo it.
CI_PASSWORD = "ci-only-pw-0000"
# Nor these, in other rejected values.
NEVER_ECHOED = (CI_PASSWORD, "hunter2")
# Values that may hold a secret (in a dotted path, [] is any item of a list):
# the schema gives them a type and nothing else (no pattern, length, enum,
# uniqueItems, ...), since Helm's schema errors may print the value.
SECRET_VALUES = ("redis.url", "redis.password", "redis.cluster.urls[]", "redis.sentinel.urls[]",
                 "ticketSecrets[].secret", "auth.jwt.hs_secret")
# Custom resources of the Prometheus operator: not in the Kubernetes schemas.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}

passed = 0
failed: list[str] = []


def ok(cond: bool, what: str) -> bool:
    global passed
    if cond:
        passed += 1
    else:
        failed.append(what)
        print(f"FAIL: {what}", flush=True)
    return cond


def section(title: str) -> None:
    print(f"== {title}", flush=True)


def merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Values as Helm sees them: `over` deep-merged onto the chart's defaults."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


# ---- 1. lint ------------------------------------------------------------------


def lint(label: str, values: dict[str, Any] | None) -> None:
    report = helm.lint(CHART, values, strict=True, kube_version=f"v{KUBE_VERSION}")
    for m in report.get("messages", []):
        level = {1: "INFO", 2: "WARNING", 3: "ERROR"}.get(m.get("severity"), "UNKNOWN")
        print(f"  lint {label}: [{level}] {m.get('path')}: {m.get('error')}")
    bad = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
    ok(not report.get("errors") and not bad, f"helm lint --strict ({label})")


# ---- 2. render ----------------------------------------------------------------


def render(chart: helm.Chart, values: dict[str, Any], name: str,
           namespace: str) -> tuple[list[dict[str, Any]], str]:
    """The manifests, and the text of NOTES.txt."""
    out = chart.render(values, name=name, namespace=namespace)
    docs = []
    notes = ""
    for path, text in sorted(out.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc["__template"] = path
                docs.append(doc)
    return docs, notes


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == kind]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(docs, kind)
    if len(found) != 1:
        raise AssertionError(f"expected one {kind}, found {len(found)}")
    return found[0]


def write_manifests(docs: list[dict[str, Any]], outdir: pathlib.Path, case: str) -> list[pathlib.Path]:
    """One file per core-API object, for kubernetes-validate; CRDs are left out."""
    files = []
    for i, d in enumerate(docs):
        if d["kind"] in CRD_KINDS:
            print(f"  {case}: {d['kind']} {d['metadata']['name']}: a CRD, not in the Kubernetes "
                  f"{KUBE_VERSION} schemas: skipped by kubernetes-validate, shape checked below")
            continue
        clean = {k: v for k, v in d.items() if k != "__template"}
        f = outdir / f"{case}-{i:02d}-{d['kind']}-{d['metadata']['name']}.yaml"
        f.write_text(yaml.safe_dump(clean, sort_keys=False))
        files.append(f)
    return files


# ---- 3. what the manifests must say ----------------------------------------------


def config_secret_files(cfg: dict[str, Any]) -> list[str]:
    """Paths of the secret files a wsticket.toml names."""
    paths = [s["secret_file"] for s in cfg.get("tickets", {}).get("secrets", [])]
    paths += [c["key_sha256_file"] for c in cfg.get("clients", [])]
    if "hs_secret_file" in cfg.get("auth", {}).get("jwt", {}):
        paths.append(cfg["auth"]["jwt"]["hs_secret_file"])
    store = cfg.get("store", {})
    if "cluster_password_file" in store:
        paths.append(store["cluster_password_file"])
    for key in ("master_password_file", "sentinel_password_file"):
        if key in store.get("sentinel", {}):
            paths.append(store["sentinel"][key])
    return list(dict.fromkeys(paths))  # the sentinels may share the master's file


def secret_key_of(path: str, pod: dict[str, Any], ctr: dict[str, Any]) -> tuple[str, str] | None:
    """(Secret name, key) of the Secret volume that puts a file at `path`, or None."""
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    for m in ctr.get("volumeMounts", []):
        if not path.startswith(m["mountPath"].rstrip("/") + "/"):
            continue
        secret = vols.get(m["name"], {}).get("secret")
        if not secret:
            return None
        rel = path[len(m["mountPath"].rstrip("/")) + 1:]
        items = secret.get("items")
        if items is None:
            return (secret["secretName"], rel) if "/" not in rel else None
        key = next((i["key"] for i in items if i["path"] == rel), None)
        return (secret["secretName"], key) if key else None
    return None


def check_case(case: str, docs: list[dict[str, Any]], notes: str, values: dict[str, Any], namespace: str,
               expect_kinds: set[str], replicas: int | None) -> dict[str, Any]:
    kinds = {d["kind"] for d in docs}
    ok(kinds == expect_kinds, f"{case}: kinds {sorted(kinds)} == {sorted(expect_kinds)}")

    dep = one(docs, "Deployment")
    cm = one(docs, "ConfigMap")
    svc = one(docs, "Service")
    pod = dep["spec"]["template"]["spec"]
    (ctr,) = pod["containers"]
    toml_text = cm["data"]["wsticket.toml"]
    try:
        cfg = tomllib.loads(toml_text)
    except tomllib.TOMLDecodeError as e:
        ok(False, f"{case}: wsticket.toml parses as TOML ({e})")
        cfg = {}
    else:
        ok(True, f"{case}: wsticket.toml parses as TOML")

    ok(dep["spec"].get("replicas") == replicas, f"{case}: Deployment replicas == {replicas}")
    psc, csc = pod["securityContext"], ctr["securityContext"]
    ok(psc.get("runAsNonRoot") is True and psc.get("runAsUser") == 65532 and psc.get("runAsGroup") == 65532
       and psc.get("fsGroup") == 65532 and psc.get("seccompProfile", {}).get("type") == "RuntimeDefault",
       f"{case}: pod securityContext non-root 65532, seccomp RuntimeDefault")
    ok(csc.get("readOnlyRootFilesystem") is True and csc.get("allowPrivilegeEscalation") is False
       and csc.get("capabilities", {}).get("drop") == ["ALL"],
       f"{case}: container read-only root, no privilege escalation, capabilities dropped")
    ok(pod.get("automountServiceAccountToken") is False, f"{case}: no service account token")
    ok(ctr.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/healthz"
       and ctr.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/readyz",
       f"{case}: liveness /healthz, readiness /readyz")
    ok(set(ctr.get("resources", {})) == {"requests", "limits"}, f"{case}: resource requests and limits")
    env = {e["name"]: e for e in ctr.get("env", [])}
    ok(env.get("WSTICKET_LOG_FORMAT", {}).get("value") == "json", f"{case}: JSON logs")
    drain = cfg.get("shutdown_delay_secs", 0) + cfg.get("shutdown_grace_secs", 10)
    ok(pod["terminationGracePeriodSeconds"] > drain,
       f"{case}: terminationGracePeriodSeconds {pod['terminationGracePeriodSeconds']} > "
       f"shutdown_delay_secs + shutdown_grace_secs ({drain})")
    ok("checksum/config" in dep["spec"]["template"]["metadata"].get("annotations", {}),
       f"{case}: config checksum annotation")
    ok(any(t.get("topologyKey") == "kubernetes.io/hostname" for t in pod.get("topologySpreadConstraints", [])),
       f"{case}: spread across kubernetes.io/hostname")
    ports = {p["name"]: p["containerPort"] for p in ctr["ports"]}
    ok(cfg.get("listen") == f"0.0.0.0:{ports.get('http')}" and cfg.get("admin_listen") == f"0.0.0.0:{ports.get('metrics')}",
       f"{case}: listen/admin_listen match the container ports")
    ok({p["name"] for p in svc["spec"]["ports"]} == {"http", "metrics"}, f"{case}: Service ports http and metrics")
    mounts = {m["mountPath"]: m["name"] for m in ctr.get("volumeMounts", [])}
    ok(mounts.get("/etc/wsticket") == "config" and ctr["args"][-1] == "/etc/wsticket/wsticket.toml",
       f"{case}: config mounted where --config points")

    # Every secret file the config names is a key of a mounted Secret.
    paths = config_secret_files(cfg)
    files = {p: secret_key_of(p, pod, ctr) for p in paths}
    ok(all((p.startswith(SECRET_DIR + "/") or p in (REDIS_PASSWORD_APART, SENTINEL_PASSWORD_APART)) and files[p]
           for p in paths),
       f"{case}: every secret file the config names is a key of a mounted Secret "
       f"({sum(1 for f in files.values() if f)} of {len(paths)})")
    own = {d["metadata"]["name"]: d for d in by_kind(docs, "Secret")}
    needed: dict[str, list[str]] = {}
    for f in files.values():
        if f:
            needed.setdefault(f[0], []).append(f[1])
    for name, keys in sorted(needed.items()):
        if name in own:
            data = own[name].get("data", {})
            ok(all(k in data for k in keys), f"{case}: Secret {name} holds {keys}")
        else:
            print(f"  {case}: existing Secret {name} must hold {keys}")
    ok(not any(k in toml_text for k in ("secret =", "key_sha256 =", "redis_url =", "hs_secret =", "password =")),
       f"{case}: no secret inline in the ConfigMap")
    redis = env.get("WSTICKET_REDIS_URL", {}).get("valueFrom", {}).get("secretKeyRef")
    if redis and redis["name"] in own:
        ok(redis["key"] in own[redis["name"]].get("data", {}), f"{case}: Redis URL key in Secret {redis['name']}")
    store = check_topology(case, cfg, toml_text, env, docs, values, files, notes)

    for sm in by_kind(docs, "ServiceMonitor"):
        check_servicemonitor(case, sm, svc, namespace, values)
    for pr in by_kind(docs, "PrometheusRule"):
        check_prometheusrule(case, pr)
    for hpa in by_kind(docs, "HorizontalPodAutoscaler"):
        ok(hpa["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"], f"{case}: HPA targets the Deployment")
    for pdb in by_kind(docs, "PodDisruptionBudget"):
        ok(pdb["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"],
           f"{case}: PDB selects the pods")
    for np in by_kind(docs, "NetworkPolicy"):
        ok(np["spec"]["podSelector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
           and set(np["spec"]["policyTypes"]) == {"Ingress", "Egress"},
           f"{case}: NetworkPolicy selects the pods, ingress and egress")
    return {"deployment": dep, "config": toml_text, "secrets": own, "files": files, "redis": redis,
            "store": store}


def check_topology(case: str, cfg: dict[str, Any], toml_text: str, env: dict[str, Any],
                   docs: list[dict[str, Any]], values: dict[str, Any],
                   files: dict[str, tuple[str, str] | None], notes: str) -> str:
    """[store] holds the topology redis.mode names, and only that one; returns
    the store `wsticket check-config` should report (redis or memory). `files`:
    (Secret, key) of each secret file the config names."""
    r = values["redis"]
    mode = r.get("mode") or "single"
    store = cfg.get("store", {})
    topo = sorted(k for k in ("redis_url", "redis_url_file", "cluster_urls", "sentinel") if k in store)
    want_pw = bool(r.get("password") or (r.get("existingSecret") and r.get("existingSecretPasswordKey")))
    if mode == "cluster":
        ok(topo == ["cluster_urls"], f"{case}: [store] has cluster_urls and no other topology ({topo})")
        ok(store.get("cluster_urls") == r["cluster"]["urls"], f"{case}: cluster_urls == redis.cluster.urls")
        ok(("cluster_password_file" in store) == want_pw,
           f"{case}: cluster_password_file {'set' if want_pw else 'absent'}, as the values say")
    elif mode == "sentinel":
        s = store.get("sentinel", {})
        ok(topo == ["sentinel"], f"{case}: [store.sentinel] and no other topology ({topo})")
        ok(s.get("master_name") == r["sentinel"]["masterName"] and s.get("urls") == r["sentinel"]["urls"]
           and s.get("db") == r["sentinel"].get("db", 0),
           f"{case}: [store.sentinel] master_name, urls, db == redis.sentinel.*")
        ok(("master_password_file" in s) == want_pw,
           f"{case}: master_password_file {'set' if want_pw else 'absent'}, as the values say")
        check_sentinel_password(case, s, r, values, files, notes, want_pw)
    else:
        ok(topo == [], f"{case}: no topology in [store] (single Redis by WSTICKET_REDIS_URL, or in-memory)")
    single = mode == "single" and bool(r.get("url") or r.get("existingSecret"))
    ok(("WSTICKET_REDIS_URL" in env) == single,
       f"{case}: WSTICKET_REDIS_URL {'set' if single else 'unset'} (it would override a Cluster or Sentinel)")
    ok(not URL_PASSWORD.search(toml_text) and not (r.get("password") and r["password"] in toml_text),
       f"{case}: no Redis password in the ConfigMap")
    limit = (values.get("resources") or {}).get("limits", {}).get("memory")
    if mode == "single" and not single and limit and "memory_max_bytes" not in values["config"].get("store", {}):
        units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
        suffix = next((u for u in units if str(limit).endswith(u)), "")
        want = int(str(limit)[:len(str(limit)) - len(suffix)]) * units.get(suffix, 1) // 2
        ok(store.get("memory_max_bytes") == want,
           f"{case}: in-memory store.memory_max_bytes is half of resources.limits.memory {limit} ({want})")
    else:
        ok("memory_max_bytes" not in store or "memory_max_bytes" in values["config"].get("store", {}),
           f"{case}: no memory_max_bytes from the chart with Redis")
    want_mif = values["config"].get("store", {}).get("max_in_flight")
    ok(store.get("max_in_flight") == want_mif, f"{case}: store.max_in_flight == {want_mif}")
    for np in by_kind(docs, "NetworkPolicy"):
        npr = values["networkPolicy"]["redis"]
        want = {npr["port"]} | ({npr["sentinelPort"]} if mode == "sentinel" else set())
        rule = np["spec"]["egress"][0]
        got = {p["port"] for p in rule["ports"]}
        ok(got == want and all(p["protocol"] == "TCP" for p in rule["ports"])
           and rule.get("to", []) == npr.get("to", []),
           f"{case}: NetworkPolicy egress to Redis on ports {sorted(want)} ({sorted(got)})")
    return "redis" if mode != "single" or single else "memory"


def check_sentinel_password(case: str, s: dict[str, Any], r: dict[str, Any], values: dict[str, Any],
                            files: dict[str, tuple[str, str] | None], notes: str, want_pw: bool) -> None:
    """sentinel_password_file is in [store.sentinel] exactly with
    redis.sentinel.authSentinels: the master's password file, or the file of
    redis.sentinel.sentinelPasswordKey from the master password's Secret; and
    NOTES.txt says so."""
    auth = bool(r["sentinel"].get("authSentinels"))
    ok(("sentinel_password_file" in s) == auth,
       f"{case}: sentinel_password_file {'set' if auth else 'absent'}, as redis.sentinel.authSentinels says")
    pw_key = "redis-password" if r.get("password") else r.get("existingSecretPasswordKey")
    own_key = r["sentinel"].get("sentinelPasswordKey") or pw_key
    distinct = own_key != pw_key
    if auth and want_pw:
        spf, mpf = s.get("sentinel_password_file"), s.get("master_password_file")
        if distinct:
            ok(spf != mpf and files.get(spf) is not None and files.get(mpf) is not None
               and files[spf] == (files[mpf][0], own_key),
               f"{case}: sentinel_password_file is the key {own_key} of the master password's Secret "
               f"({files.get(spf)}, beside {files.get(mpf)})")
            ok(f"key {own_key}, as the file {spf}" in notes, f"{case}: NOTES.txt names the sentinels' key and file")
            if values.get("existingSecret") and files[mpf][0] == values["existingSecret"]:
                ok(f"\n  {own_key}\n" in notes,
                   f"{case}: NOTES.txt lists {own_key} among the keys of Secret {values['existingSecret']}")
            else:
                ok(f"its key {own_key} (the sentinels' password)" in notes,
                   f"{case}: NOTES.txt says the sentinels' key is mounted too")
        else:
            ok(spf == mpf, f"{case}: sentinel_password_file is master_password_file ({spf})")
            ok("sentinel password: the master's, the same file" in notes,
               f"{case}: NOTES.txt says the sentinels share it")
    elif not auth:
        ok("no sentinel password, as redis.sentinel.authSentinels is false" in notes,
           f"{case}: NOTES.txt says the sentinels have no password")


def check_servicemonitor(case: str, sm: dict[str, Any], svc: dict[str, Any], namespace: str,
                         values: dict[str, Any]) -> None:
    ok(sm["apiVersion"] == "monitoring.coreos.com/v1" and set(sm) - {"__template"} == {"apiVersion", "kind", "metadata", "spec"},
       f"{case}: ServiceMonitor shape")
    sel = sm["spec"]["selector"]["matchLabels"]
    ok(all(svc["metadata"]["labels"].get(k) == v for k, v in sel.items()), f"{case}: ServiceMonitor selects the Service")
    ok(namespace in sm["spec"].get("namespaceSelector", {}).get("matchNames", []),
       f"{case}: ServiceMonitor looks in the release namespace")
    svc_ports = {p["name"] for p in svc["spec"]["ports"]}
    ok(all(e.get("port") in svc_ports and e.get("path") == "/metrics" for e in sm["spec"]["endpoints"]),
       f"{case}: ServiceMonitor scrapes the Service's metrics port at /metrics")
    want = values.get("serviceMonitor", {}).get("labels", {})
    ok(all(sm["metadata"]["labels"].get(k) == v for k, v in want.items()), f"{case}: ServiceMonitor labels")


def check_prometheusrule(case: str, pr: dict[str, Any]) -> None:
    ok(pr["apiVersion"] == "monitoring.coreos.com/v1" and set(pr) - {"__template"} == {"apiVersion", "kind", "metadata", "spec"},
       f"{case}: PrometheusRule shape")
    ok(pr["spec"] == yaml.safe_load(ALERTS.read_text()),
       f"{case}: PrometheusRule spec is exactly files/alerts.yaml (the file promtool tests)")
    rules = [r for g in pr["spec"]["groups"] for r in g["rules"]]
    ok({r["alert"] for r in rules} == {"WsticketTicketReuseSpike", "WsticketStoreErrors", "WsticketHighLatency",
                                       "WsticketMintsLimited", "WsticketUserRevocationsBurst",
                                       "WsticketPodNotReady"}, f"{case}: the six alerts")
    ok(all(r["labels"].get("severity") and r["annotations"].get("summary") and r["annotations"].get("description")
           for r in rules), f"{case}: every alert has a severity, a summary and a description")


# ---- 4. values that must not render ------------------------------------------------


REJECTED: list[tuple[str, dict[str, Any], str]] = [
    ("typo'd top-level key", {"replicasCount": 3}, "additional properties 'replicasCount' not allowed"),
    ("typo'd nested key", {"networkPolicy": {"enabeld": True}}, "additional properties 'enabeld' not allowed"),
    ("a secret inline in config", {"config": {"tickets": {"secrets": []}}}, "additional properties 'secrets' not allowed"),
    ("a Redis URL in config", {"config": {"store": {"redis_url": "redis://r:6379"}}},
     "additional properties 'redis_url' not allowed"),
    ("a malformed ticket secret id", {"ticketSecrets": [{"id": "K1"}]}, "ticketSecrets/0/id"),
    ("2 replicas without Redis", {"redis": {"existingSecret": ""}}, "in-memory store serves a single replica"),
    ("autoscaling without Redis",
     {"replicaCount": 1, "autoscaling": {"enabled": True}, "redis": {"existingSecret": ""}},
     "in-memory store serves a single replica"),
    ("Redis without ticket secrets", {"ticketSecrets": []}, "ticket secrets are required with Redis"),
    ("both redis.url and redis.existingSecret", {"redis": {"url": "redis://r:6379/0"}},
     "set only one of redis.url and redis.existingSecret"),
    ("a ticket secret value with existingSecret",
     {"ticketSecrets": [{"id": "k1", "secret": "A" * 42 + "A"}]}, "existingSecret \"wsticket-secrets\" is used"),
    ("a client hash with existingSecret",
     {"clients": [{"name": "web", "can": ["issue"], "keySha256": "0" * 64}]}, "clients[0].keySha256 is set"),
    ("no ticket secret value without existingSecret", {"existingSecret": ""},
     "ticketSecrets[0].secret is required"),
    ("no client hash without existingSecret",
     {"existingSecret": "", "ticketSecrets": [{"id": "k1", "secret": "A" * 43}],
      "clients": [{"name": "web", "can": ["issue"]}]}, "clients[0].keySha256 is required"),
    ("an inline JWT HMAC secret with existingSecret",
     {"auth": {"jwt": {"algorithms": ["HS256"], "hs_secret": "x" * 32}}}, "auth.jwt.hs_secret is set"),
    ("duplicate ticket secret ids", {"ticketSecrets": [{"id": "k1"}, {"id": "k1"}]}, "is used twice"),
    ("a grace period not above the shutdown delay and grace", {"terminationGracePeriodSeconds": 15},
     "must exceed config.shutdown_delay_secs + config.shutdown_grace_secs (5 + 10)"),
    ("a client without permissions", {"clients": [{"name": "web", "can": []}]}, "clients/0/can"),
    # Redis Cluster and Sentinel.
    ("an unknown redis.mode", {"redis": {"mode": "standalone"}}, "at '/redis/mode': value must be one of"),
    ("a Cluster in config.store", {"config": {"store": {"cluster_urls": ["redis://r:6379"]}}},
     "additional properties 'cluster_urls' not allowed"),
    ("store.max_in_flight 0", {"config": {"store": {"max_in_flight": 0}}}, "config/store/max_in_flight"),
    ("store.max_in_flight above 1000000", {"config": {"store": {"max_in_flight": 1000001}}},
     "config/store/max_in_flight"),
    ("a malformed limits rate", {"config": {"limits": {"mint_per_user": "10 per second"}}},
     "config/limits/mint_per_user"),
    ("an unknown limits key", {"config": {"limits": {"mint_per_hour": 5}}},
     "additional properties 'mint_per_hour' not allowed"),
    ("an unknown tickets.on_reuse", {"config": {"tickets": {"on_reuse": "revoke"}}},
     "config/tickets/on_reuse"),
    ("events.heartbeat_secs 0", {"config": {"events": {"heartbeat_secs": 0}}},
     "config/events/heartbeat_secs"),
    ("a fractional memory limit with the in-memory store",
     {"replicaCount": 1, "existingSecret": "", "redis": {"existingSecret": ""},
      "ticketSecrets": [{"id": "k1", "secret": "A" * 43}], "resources": {"limits": {"memory": "0.5Gi"}}},
     'resources.limits.memory "0.5Gi": give a whole number'),
    ("a password in a Cluster URL",
     {"redis": {"mode": "cluster", "cluster": {"urls": ["redis://r0:6379", f"rediss://:{CI_PASSWORD}@r1:6379"]}}},
     "redis.cluster.urls[1] has a password in it, and these URLs are written into the ConfigMap in plain text: "
     "remove it from the URL, and put it in the Secret redis.existingSecret"),
    ("a user and password in a Sentinel URL",
     {"redis": {"mode": "sentinel",
                "sentinel": {"masterName": "mymaster", "urls": [f"redis://default:{CI_PASSWORD}@s0:26379/0"]}}},
     "redis.sentinel.urls[0] has a password in it"),
    ("Cluster and Sentinel at once",
     {"redis": {"mode": "cluster", "cluster": {"urls": ["redis://r:6379"]},
                "sentinel": {"masterName": "mymaster", "urls": ["redis://s:26379"]}}},
     "set exactly one Redis topology: redis.mode is cluster, but redis.sentinel (redis.mode sentinel) is set too"),
    ("redis.url with redis.mode sentinel",
     {"redis": {"mode": "sentinel", "url": "redis://r:6379/0", "existingSecret": "",
                "sentinel": {"masterName": "mymaster", "urls": ["redis://s:26379"]}}},
     "set exactly one Redis topology: redis.mode is sentinel, but redis.url"),
    ("Cluster URLs with redis.mode left at single", {"redis": {"cluster": {"urls": ["redis://r:6379"]}}},
     "redis.mode is single, but redis.cluster.urls (redis.mode cluster) is set too"),
    ("redis.mode cluster without nodes", {"redis": {"mode": "cluster"}},
     "list at least one node in redis.cluster.urls"),
    ("redis.mode sentinel without sentinels", {"redis": {"mode": "sentinel", "sentinel": {"masterName": "m"}}},
     "list at least one sentinel in redis.sentinel.urls"),
    ("redis.mode sentinel without a master name",
     {"redis": {"mode": "sentinel", "sentinel": {"urls": ["redis://s:26379"]}}}, "set redis.sentinel.masterName"),
    ("a Cluster URL that is not redis:// or rediss://",
     {"redis": {"mode": "cluster", "cluster": {"urls": [f"http://:{CI_PASSWORD}@r:6379"]}}},
     "redis.cluster.urls[0] must start with redis:// or rediss://"),
    ("Cluster URLs mixing redis:// and rediss://",
     {"redis": {"mode": "cluster", "cluster": {"urls": ["redis://r0:6379", "rediss://r1:6379"]}}},
     "redis.cluster.urls mixes redis:// and rediss://"),
    ("both redis.password and redis.existingSecret",
     {"redis": {"mode": "cluster", "cluster": {"urls": ["redis://r:6379"]}, "password": CI_PASSWORD}},
     "set only one of redis.password and redis.existingSecret"),
    ("redis.password with a single Redis", {"redis": {"password": CI_PASSWORD}},
     "redis.password is for redis.mode cluster and sentinel"),
    ("WSTICKET_REDIS_URL in extraEnv with a Cluster",
     {"redis": {"mode": "cluster", "cluster": {"urls": ["redis://r:6379"]}},
      "extraEnv": [{"name": "WSTICKET_REDIS_URL", "value": "redis://r:6379"}]},
     "extraEnv sets WSTICKET_REDIS_URL, which would override redis.mode cluster"),
    ("a Sentinel URL that is empty",
     {"redis": {"mode": "sentinel", "sentinel": {"masterName": "mymaster", "urls": [""]}}},
     "redis.sentinel.urls[0] must start with redis:// or rediss://"),
    ("a Cluster URL listed twice, with a password",
     {"redis": {"mode": "cluster", "cluster": {"urls": [f"redis://:{CI_PASSWORD}@r:6379"] * 2}}},
     "redis.cluster.urls[0] has a password in it"),
    ("a Sentinel URL listed twice",
     {"redis": {"mode": "sentinel",
                "sentinel": {"masterName": "mymaster",
                             "urls": ["redis://s0:26379", "redis://s1:26379", "redis://s0:26379"]}}},
     "redis.sentinel.urls[2] repeats redis.sentinel.urls[0]; list each URL once"),
    # The sentinels' own password.
    ("redis.sentinel.authSentinels without a Redis password",
     {"redis": {"mode": "sentinel", "existingSecretPasswordKey": "",
                "sentinel": {"masterName": "mymaster", "urls": ["redis://s0:26379"], "authSentinels": True}}},
     "redis.sentinel.authSentinels is true, but no Redis password is configured"),
    ("redis.sentinel.authSentinels without any Redis Secret",
     {"redis": {"mode": "sentinel", "existingSecret": "",
                "sentinel": {"masterName": "mymaster", "urls": ["redis://s0:26379"], "authSentinels": True,
                             "sentinelPasswordKey": "sentinel-password"}}},
     "redis.sentinel.authSentinels is true, but no Redis password is configured"),
    ("redis.sentinel.sentinelPasswordKey without authSentinels",
     {"redis": {"mode": "sentinel",
                "sentinel": {"masterName": "mymaster", "urls": ["redis://s0:26379"],
                             "sentinelPasswordKey": "sentinel-password"}}},
     "redis.sentinel.sentinelPasswordKey is set, but redis.sentinel.authSentinels is false"),
    ("redis.sentinel.sentinelPasswordKey with redis.password",
     {"redis": {"mode": "sentinel", "existingSecret": "", "password": CI_PASSWORD,
                "sentinel": {"masterName": "mymaster", "urls": ["redis://s0:26379"], "authSentinels": True,
                             "sentinelPasswordKey": "sentinel-password"}}},
     "redis.sentinel.sentinelPasswordKey names a key of redis.existingSecret, but redis.password is used"),
    ("redis.sentinel.authSentinels with a Cluster",
     {"redis": {"mode": "cluster", "cluster": {"urls": ["redis://r:6379"]}, "sentinel": {"authSentinels": True}}},
     "redis.mode is cluster, but redis.sentinel (redis.mode sentinel) is set too"),
    ("a malformed redis.sentinel.sentinelPasswordKey",
     {"redis": {"mode": "sentinel",
                "sentinel": {"masterName": "mymaster", "urls": ["redis://s0:26379"], "authSentinels": True,
                             "sentinelPasswordKey": "sentinel/password"}}},
     "at '/redis/sentinel/sentinelPasswordKey'"),
    # Secrets in the values: the messages name the value, never echo it.
    ("a redis.url that is not redis:// or rediss://", {"redis": {"url": "http://:hunter2@x", "existingSecret": ""}},
     "redis.url must start with redis:// or rediss://"),
    ("a redis.url without a scheme", {"redis": {"url": f":{CI_PASSWORD}@r:6379/0", "existingSecret": ""}},
     "redis.url must start with redis:// or rediss://"),
    ("a redis.url without a host", {"redis": {"url": "rediss://", "existingSecret": ""}},
     "redis.url must start with redis:// or rediss://, followed by the host"),
    ("a redis.url that is not a string", {"redis": {"url": [f"redis://:{CI_PASSWORD}@r:6379"], "existingSecret": ""}},
     "at '/redis/url': got array, want string"),
    ("a redis.password that is not a string",
     {"redis": {"mode": "cluster", "existingSecret": "", "password": [CI_PASSWORD],
                "cluster": {"urls": ["redis://r:6379"]}}},
     "at '/redis/password': got array, want string"),
    ("a ticket secret of the wrong length",
     {"existingSecret": "", "ticketSecrets": [{"id": "k1", "secret": CI_PASSWORD}]},
     "ticketSecrets[0].secret must be base64url of 32 bytes, unpadded"),
    ("a ticket secret with a character outside base64url",
     {"existingSecret": "", "ticketSecrets": [{"id": "k1", "secret": "A" * 43},
                                              {"id": "k2", "secret": (CI_PASSWORD + "+" * 43)[:43]}]},
     "ticketSecrets[1].secret must be base64url of 32 bytes, unpadded"),
    ("a ticket secret that is not a string",
     {"existingSecret": "", "ticketSecrets": [{"id": "k1", "secret": {"value": CI_PASSWORD}}]},
     "at '/ticketSecrets/0/secret': got object, want string"),
    ("a JWT HMAC secret shorter than 32 bytes",
     {"existingSecret": "", "ticketSecrets": [{"id": "k1", "secret": "A" * 43}],
      "auth": {"jwt": {"algorithms": ["HS256"], "hs_secret": CI_PASSWORD * 2}}},
     "auth.jwt.hs_secret must be at least 32 bytes long"),
]


def check_rejected(chart: helm.Chart) -> None:
    for label, values, needle in REJECTED:
        try:
            chart.render(values, name="wsticket", namespace="wsticket")
        except helm.HelmError as e:
            msg = str(e)
            ok(needle in msg and not any(s in msg for s in NEVER_ECHOED),
               f"rejects {label} (message {msg!r} names {needle!r} and echoes no password)")
        else:
            ok(False, f"rejects {label}: it rendered")


def schema_at(schema: dict[str, Any], path: str) -> dict[str, Any]:
    """The subschema of a dotted path like "ticketSecrets[].secret"."""
    for part in path.split("."):
        items = part.endswith("[]")
        schema = schema["properties"][part.removesuffix("[]")]
        if items:
            schema = schema["items"]
    return schema


def check_schema_secrets() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    for path in SECRET_VALUES:
        try:
            sub = schema_at(schema, path)
        except KeyError:
            ok(False, f"schema: {path} is in values.schema.json")
            continue
        extra = sorted(set(sub) - {"type", "description"})
        ok(sub.get("type") == "string" and not extra,
           f"schema: {path} is a string with no other constraint (found {extra or 'none'}), "
           f"so no schema error can echo it")
        if path.endswith("[]"):
            parent = schema_at(schema, path.removesuffix("[]"))
            extra = sorted(set(parent) - {"type", "description", "items"})
            ok(not extra, f"schema: {path.removesuffix('[]')} is a list with no constraint of its own "
                          f"(found {extra or 'none'})")


# ---- 5. wsticket check-config on the rendered config --------------------------------


def find_binary() -> pathlib.Path | None:
    if os.environ.get("WSTICKET_BIN"):
        return pathlib.Path(os.environ["WSTICKET_BIN"])
    dirs = [pathlib.Path(os.environ["CARGO_TARGET_DIR"])] if os.environ.get("CARGO_TARGET_DIR") else []
    dirs += [ROOT / "target", pathlib.Path("/var/tmp/wsticket-ci-target")]
    found = [d / p / "wsticket" for d in dirs for p in ("release", "debug") if (d / p / "wsticket").is_file()]
    if not found:
        return None
    newest = max(found, key=lambda p: p.stat().st_mtime)
    sources = [ROOT / "Cargo.lock", *(ROOT / "src").rglob("*.rs")]
    if newest.stat().st_mtime < max(p.stat().st_mtime for p in sources):
        print(f"  {newest} is older than the sources: skipped (set WSTICKET_BIN to force)")
        return None
    return newest


def check_config_with_binary(binary: pathlib.Path, case: str, r: dict[str, Any]) -> None:
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="wsticket-check-config-"))
    try:
        # Each secret file the config names, under tmp/secrets/ instead of
        # SECRETS_ROOT: from the chart's own Secret, or (an existing Secret)
        # a value of the right shape.
        sdir = tmp / "secrets"
        for path, found in r["files"].items():
            if not found:
                continue
            name, key = found
            f = sdir / path[len(SECRETS_ROOT) + 1:]
            f.parent.mkdir(parents=True, exist_ok=True)
            if name in r["secrets"]:
                f.write_bytes(base64.b64decode(r["secrets"][name]["data"][key]))
            elif key.startswith("ticket-secret-"):
                f.write_text(base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode() + "\n")
            elif key.endswith("-key-sha256"):
                f.write_text(hashlib.sha256(secrets.token_bytes(32)).hexdigest() + "\n")
            else:
                f.write_text(secrets.token_urlsafe(24) + "\n")
            # As the chart mounts them (defaultMode 0440): wsticket refuses
            # secret files others may write and warns about ones all may read.
            f.chmod(0o440)
        conf = tmp / "wsticket.toml"
        conf.write_text(r["config"].replace(SECRETS_ROOT + "/", f"{sdir}/"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("WSTICKET_")}
        if r["redis"]:
            secret = r["secrets"].get(r["redis"]["name"])
            url = (base64.b64decode(secret["data"][r["redis"]["key"]]).decode() if secret
                   else "redis://redis.invalid:6379/0")
            env["WSTICKET_REDIS_URL"] = url
        p = subprocess.run([str(binary), "check-config", "--config", str(conf)], env=env,
                           capture_output=True, text=True, timeout=60)
        out = (p.stdout + p.stderr).strip()
        print(f"  {case}: {out}")
        ok(p.returncode == 0, f"{case}: wsticket check-config accepts the rendered config")
        ok(f"store {r['store']}" in out, f"{case}: check-config reports the {r['store']} store")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---- main -------------------------------------------------------------------------


def main() -> int:
    outdir = pathlib.Path(tempfile.mkdtemp(prefix="wsticket-chart-check-"))
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    all_options = yaml.safe_load(ALL_OPTIONS.read_text())
    cluster = yaml.safe_load(CLUSTER.read_text())
    sentinel = yaml.safe_load(SENTINEL.read_text())
    memory = {"replicaCount": 1, "existingSecret": "", "redis": {"existingSecret": ""}, "ticketSecrets": [],
              "clients": [{"name": "web-backend", "can": ["issue"], "keySha256": "ab" * 32}],
              "config": {"tickets": {"allowed_origins": ["https://app.example.com"]}}}
    # A Cluster password in the values: into the chart's Secret, which is the
    # one mounted at SECRET_DIR.
    ticket_secret = base64.urlsafe_b64encode(b"ci-only-cluster-ticket-secret-k1").rstrip(b"=").decode()
    cluster_own = {"existingSecret": "", "ticketSecrets": [{"id": "k1", "secret": ticket_secret}],
                   "redis": {"mode": "cluster", "existingSecret": "", "password": "ci-only-cluster-password",
                             "cluster": {"urls": ["redis://redis-cluster.redis.svc:6379"]}}}
    # A Sentinel password in the values beside an existing Secret: the chart's
    # Secret holds only the password and is mounted apart; and no
    # NetworkPolicy `to`, so any destination on the Redis and Sentinel ports.
    sentinel_apart = {"redis": {"mode": "sentinel", "existingSecret": "", "password": "ci-only-master-password",
                                "sentinel": {"masterName": "mymaster", "urls": ["rediss://sentinel.redis.svc:26379"]}},
                      "networkPolicy": {"enabled": True}}
    # Sentinels with their own password, another key of the Secret of the
    # master's: the default Secret mounted at SECRET_DIR, or (as in
    # ci/sentinel-values.yaml) another one, whose two keys are mounted apart.
    sentinel_urls = ["redis://sentinel-0.redis.svc:26379", "redis://sentinel-1.redis.svc:26379"]
    sentinel_own_key = {"redis": {"mode": "sentinel",
                                  "sentinel": {"masterName": "mymaster", "urls": sentinel_urls,
                                               "authSentinels": True, "sentinelPasswordKey": "sentinel-password"}}}
    sentinel_own_key_apart = merged(sentinel_own_key, {"redis": {"existingSecret": "redis"}})
    base_kinds = {"Deployment", "Service", "ConfigMap", "ServiceAccount"}
    cases: list[tuple[str, dict[str, Any], str, str, set[str], int | None]] = [
        ("defaults", {}, "wsticket", "wsticket", base_kinds, 2),
        ("all-options", all_options, "edge", "prod",
         base_kinds | {"Secret", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ServiceMonitor",
                       "PrometheusRule", "NetworkPolicy"}, None),
        ("memory-single", memory, "tickets", "web", base_kinds | {"Secret"}, 1),
        ("cluster", cluster, "wsticket", "chat", base_kinds | {"PodDisruptionBudget", "NetworkPolicy"}, 3),
        ("sentinel", sentinel, "wsticket", "chat", base_kinds | {"NetworkPolicy"}, 2),
        ("cluster-own-secret", cluster_own, "wsticket", "chat", base_kinds | {"Secret"}, 2),
        ("sentinel-password-apart", sentinel_apart, "wsticket", "chat", base_kinds | {"Secret", "NetworkPolicy"}, 2),
        ("sentinel-own-password", sentinel_own_key, "wsticket", "chat", base_kinds, 2),
        ("sentinel-own-password-apart", sentinel_own_key_apart, "wsticket", "chat", base_kinds, 2),
    ]

    section("helm lint --strict")
    lint("defaults", None)
    lint("all-options", all_options)
    lint("cluster", cluster)
    lint("sentinel", sentinel)

    rendered: dict[str, dict[str, Any]] = {}
    files: list[pathlib.Path] = []
    with helm.Chart.load(CHART) as chart:
        section("render")
        all_docs = {}
        all_notes = {}
        for case, values, name, namespace, _, _ in cases:
            try:
                docs, all_notes[case] = render(chart, values, name, namespace)
            except helm.HelmError as e:
                ok(False, f"{case}: renders ({e})")
                continue
            ok(True, f"{case}: renders ({len(docs)} objects)")
            all_docs[case] = docs
            files += write_manifests(docs, outdir, case)

        section(f"kubernetes-validate --strict -k {KUBE_VERSION} ({len(files)} manifests in {outdir})")
        kv = shutil.which("kubernetes-validate") or str(pathlib.Path(sys.executable).parent / "kubernetes-validate")
        p = subprocess.run([kv, "--strict", "-k", KUBE_VERSION, *map(str, files)], capture_output=True, text=True)
        print("\n".join("  " + line for line in (p.stdout + p.stderr).strip().splitlines()))
        ok(p.returncode == 0 and "INFO" in p.stdout and not any(
            w in p.stdout + p.stderr for w in ("ERROR", "WARN", "Couldn't find schema")),
           "kubernetes-validate: every core manifest is valid")

        section("manifest contents")
        for case, values, name, namespace, kinds, replicas in cases:
            if case in all_docs:
                try:
                    rendered[case] = check_case(case, all_docs[case], all_notes[case], merged(defaults, values),
                                                namespace, kinds, replicas)
                except (AssertionError, KeyError, TypeError, ValueError) as e:
                    ok(False, f"{case}: manifest checks ({type(e).__name__}: {e})")

        section("values that must not render")
        check_rejected(chart)
        check_schema_secrets()

    section("wsticket check-config on the rendered configs")
    binary = find_binary()
    if binary is None:
        print("  no wsticket binary built from the current sources: skipped "
              "(build it, or set WSTICKET_BIN)")
    else:
        print(f"  using {binary}")
        for case, r in rendered.items():
            check_config_with_binary(binary, case, r)

    if not failed:
        shutil.rmtree(outdir, ignore_errors=True)
    else:
        print(f"rendered manifests kept in {outdir}")
    print(f"chart-check: {passed} passed, {len(failed)} failed")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
