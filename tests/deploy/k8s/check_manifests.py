"""What deploy/k8s must do for Outgrow, beyond what the schemas can say (tests/deploy/k8s.sh).

  python check_manifests.py --settings crates/platform/src/config/settings.rs \
      --base base.yaml --overlay production=prod.yaml --overlay staging=… \
      [--scan deploy/k8s] [--env-example deploy/k8s/secrets.env.example]
  python check_manifests.py --self-test …same arguments…

Each overlay's rendering is checked for:
  * probes: readiness GET /readyz, liveness GET /healthz, a startup probe, on the port named
    http that OUTGROW_LISTEN listens on;
  * rollout: RollingUpdate with maxUnavailable 0 and maxSurge 25 %; no replica count where an
    autoscaler owns it;
  * drain: the API's grace period ≥ preStop sleep + OUTGROW_SHUTDOWN_DELAY +
    OUTGROW_SHUTDOWN_TIMEOUT + 5 s, the delay ≥ the readiness probe's period × failureThreshold;
    the workers' grace period ≥ their shutdown timeout + 5 s and longer than the API's;
  * hygiene of every pod: non-root, read-only root filesystem with emptyDirs on /tmp and the
    data dir, no privilege escalation, ALL capabilities dropped, seccomp RuntimeDefault, no
    service account token, no service links (they would inject OUTGROW_* variables Outgrow
    refuses), requests and limits on every container, topology spread over zones and nodes;
  * configuration: every env var taken from a ConfigMap or Secret exists there (the Secret is
    the base's placeholder one: the overlays must not ship it), every OUTGROW_* variable is a
    setting of crates/platform/src/config/settings.rs, secrets only come from the Secret, the
    values the contract fixes (json logs, no auto-migration, secure cookies, S3, …);
  * the objects tie together: Services and PDBs and NetworkPolicies select pods that exist,
    the Ingress (class nginx, TLS for its hosts, bodies ≥ 10 MiB) points at a Service port, the
    HPA (autoscaling/v2, CPU 70 %, the overlay's bounds) targets the API, KEDA's ScaledObject
    targets the workers with a query on the jobs table for the workers' queues and a
    TriggerAuthentication whose Secret key exists, the NetworkPolicies allow what Outgrow needs
    and nothing else;
  * blue-green: two tracks, the Service api selects exactly one, api-preview the other;
  * no secret-looking value anywhere in the files (--scan) or in the base's Secret.
--self-test breaks the renderings in memory, one way at a time, and fails unless each breakage
is reported (and the unbroken renderings pass).
"""

import argparse
import copy
import ipaddress
import math
import pathlib
import re
import sys

import yaml

IMAGE = "ghcr.io/outgrow/outgrow"
SECRET = "outgrow-secrets"
DATA_DIR = "/var/lib/outgrow"
# The overlays and what each must scale to. A new overlay must be added here.
OVERLAYS = {
    "production": {"namespace": "outgrow", "hpa": (2, 10), "keda": (1, 20), "tracks": None},
    "staging": {"namespace": "outgrow-staging", "hpa": (1, 3), "keda": (1, 3), "tracks": None},
    "blue-green": {"namespace": "outgrow", "hpa": (2, 10), "keda": (1, 20), "tracks": ("blue", "green")},
}
# The Secret's keys (the configuration contract); the optional ones may be absent from the real one.
SECRET_KEYS = {
    "OUTGROW_DATABASE_URL": False,
    "OUTGROW_DATABASE_REPLICA_URLS": True,
    "OUTGROW_DATABASE_SHARD_URLS": True,
    "OUTGROW_REDIS_URL": False,
    "OUTGROW_JWT_KEYS": False,
    "OUTGROW_SMTP_URL": False,
    "AWS_ACCESS_KEY_ID": True,
    "AWS_SECRET_ACCESS_KEY": True,
    "OUTGROW_SENTRY_DSN": True,
}
# Non-secret variables every Outgrow container must get, with the value when the contract fixes it.
CONFIG_KEYS = {
    "OUTGROW_LISTEN": "0.0.0.0:8080",
    "OUTGROW_LOG_FORMAT": "json",
    "OUTGROW_LOG_LEVEL": None,
    "OUTGROW_PUBLIC_URL": None,
    "OUTGROW_TRUSTED_PROXIES": None,
    "OUTGROW_AUTO_MIGRATE": "false",
    "OUTGROW_SHUTDOWN_DELAY": None,
    "OUTGROW_SHUTDOWN_TIMEOUT": None,
    "OUTGROW_DATABASE_MAX_CONNECTIONS": None,
    "OUTGROW_OBJECT_STORE_URL": None,
    "AWS_REGION": None,
    "OUTGROW_WORKER_CONCURRENCY": None,
    "OUTGROW_WORKER_QUEUES": None,
    "OUTGROW_METRICS_ENABLED": "true",
    "OUTGROW_SECURE_COOKIES": "true",
    "OUTGROW_MAIL_FROM": None,
}
NON_OUTGROW_CONFIG = {"AWS_REGION"}
ROLE_ARGS = {"api": ["serve", "--no-workers"], "worker": ["worker"], "migrate": ["migrate"]}
NETPOL_EGRESS_PORTS = {53, 5432, 6379, 443, 587}
INGRESS_FROM_NAMESPACES = {"ingress-nginx", "monitoring"}
PLACEHOLDER = "CHANGE-ME"
MARGIN_S = 5


class Report:
    def __init__(self):
        self.failures = []
        self.checks = 0

    def check(self, ok, where, message):
        self.checks += 1
        if not ok:
            self.failures.append(f"{where}: {message}")
        return ok


# ---------------------------------------------------------------------------------------------
# parsing helpers


def duration_s(text):
    """Outgrow's (humantime) durations as the manifests write them: 500ms, 10s, 2m, 1h."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*", str(text))
    if not match:
        raise ValueError(f"not a duration: {text!r}")
    value, unit = float(match[1]), match[2]
    return value * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


def quantity(text, cpu):
    text = str(text)
    units = {"m": 0.001} if cpu else {
        "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9,
    }
    for suffix, factor in sorted(units.items(), key=lambda kv: -len(kv[0])):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def size_bytes(text):
    """nginx sizes: 11m, 10240k, 1g, bytes."""
    match = re.fullmatch(r"(\d+)([kKmMgG]?)", str(text))
    if not match:
        raise ValueError(f"not an nginx size: {text!r}")
    return int(match[1]) * {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}[match[2].lower()]


def known_settings(settings_rs):
    """The keys of Outgrow's `settings!` table (the environment variable is OUTGROW_<KEY>)."""
    keys, inside = set(), False
    for line in pathlib.Path(settings_rs).read_text().splitlines():
        if re.match(r"^settings!\s*\{", line):
            inside = True
            continue
        if inside and line.startswith("}"):
            break
        match = re.match(r"^    ([a-z][a-z0-9_]*):\s", line) if inside else None
        if match:
            keys.add(match[1])
    if len(keys) < 20:
        sys.exit(f"check_manifests: read only {len(keys)} settings from {settings_rs}: has its table changed shape?")
    return keys


def load(path):
    return [doc for doc in yaml.safe_load_all(pathlib.Path(path).read_text()) if doc]


def by_kind(docs, kind):
    return [doc for doc in docs if doc.get("kind") == kind]


def name_of(doc):
    return doc.get("metadata", {}).get("name", "?")


def labels_match(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def pod_templates(docs):
    """(where, workload, pod template) for every Deployment and Job."""
    for doc in docs:
        if doc.get("kind") in ("Deployment", "Job"):
            yield f"{doc['kind']}/{name_of(doc)}", doc, doc["spec"]["template"]


def role_of(template):
    return template.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/component")


def containers_of(spec):
    return list(spec.get("initContainers", [])) + list(spec.get("containers", []))


# ---------------------------------------------------------------------------------------------
# the checks


def check_env(report, where, container, docs, secret, settings):
    """Resolves the container's environment; returns {name: literal value or None (secret)}."""
    configmaps = {name_of(d): d.get("data", {}) or {} for d in by_kind(docs, "ConfigMap")}
    env = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            ref = source["configMapRef"]["name"]
            if report.check(ref in configmaps or source["configMapRef"].get("optional"), where, f"envFrom ConfigMap {ref} does not exist"):
                env.update(configmaps.get(ref, {}))
        elif "secretRef" in source:
            ref = source["secretRef"]["name"]
            report.check(ref == SECRET, where, f"envFrom Secret {ref} is not {SECRET}")
            env.update({key: None for key in secret})
    for var in container.get("env", []):
        name = var["name"]
        if "value" in var:
            env[name] = var["value"]
            report.check(name not in SECRET_KEYS, where, f"{name} is a secret but is given as a literal value")
            continue
        source = var.get("valueFrom", {})
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            report.check(ref["name"] == SECRET, where, f"{name} comes from Secret {ref['name']}, not {SECRET}")
            report.check(ref["key"] in secret, where, f"{name}: key {ref['key']} is not in Secret {SECRET}")
            optional = bool(ref.get("optional"))
            if ref["key"] in SECRET_KEYS:
                report.check(optional == SECRET_KEYS[ref["key"]], where,
                             f"{name}: secretKeyRef optional={optional}, the contract says {SECRET_KEYS[ref['key']]}")
            env[name] = None
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            data = configmaps.get(ref["name"])
            report.check(data is not None and ref["key"] in data, where, f"{name}: key {ref['key']} is not in ConfigMap {ref['name']}")
            env[name] = (data or {}).get(ref["key"])
        else:
            env[name] = None
    for name, value in env.items():
        if name.startswith("OUTGROW_"):
            report.check(name[len("OUTGROW_"):].lower() in settings, where,
                         f"{name} is not an Outgrow setting (crates/platform/src/config/settings.rs): Outgrow would refuse to start")
        elif value is not None:
            report.check(name in NON_OUTGROW_CONFIG, where, f"unexpected non-Outgrow variable {name}")
        if name in SECRET_KEYS:
            report.check(value is None, where, f"{name} is a secret but has a literal or ConfigMap value")
    for name in SECRET_KEYS:
        report.check(name in env and env[name] is None, where, f"{name} is not taken from Secret {SECRET}")
    for name, fixed in CONFIG_KEYS.items():
        if report.check(name in env, where, f"{name} is not set"):
            if fixed is not None:
                report.check(str(env[name]) == fixed, where, f"{name}={env[name]!r}, expected {fixed!r}")
    return env


def check_config_values(report, where, env):
    for name in ("OUTGROW_SHUTDOWN_DELAY", "OUTGROW_SHUTDOWN_TIMEOUT"):
        try:
            duration_s(env.get(name))
        except ValueError as error:
            report.check(False, where, f"{name}: {error}")
    try:
        for cidr in str(env.get("OUTGROW_TRUSTED_PROXIES", "")).split(","):
            ipaddress.ip_network(cidr.strip())
    except ValueError as error:
        report.check(False, where, f"OUTGROW_TRUSTED_PROXIES: {error}")
    report.check(str(env.get("OUTGROW_OBJECT_STORE_URL", "")).startswith("s3://"), where, "OUTGROW_OBJECT_STORE_URL is not s3://…")
    report.check(str(env.get("OUTGROW_PUBLIC_URL", "")).startswith("https://"), where, "OUTGROW_PUBLIC_URL is not https://…")
    for name in ("OUTGROW_DATABASE_MAX_CONNECTIONS", "OUTGROW_WORKER_CONCURRENCY"):
        report.check(str(env.get(name, "")).isdigit() and int(env[name]) >= 1, where, f"{name} is not a positive integer")


def check_pod(report, where, workload, template, docs, secret, settings):
    spec = template["spec"]
    labels = template.get("metadata", {}).get("labels", {})
    role = role_of(template)
    report.check(role in ROLE_ARGS, where, f"pod label app.kubernetes.io/component={role!r} is not one of {sorted(ROLE_ARGS)}")
    report.check(labels.get("app.kubernetes.io/name") == "outgrow", where, "pod lacks app.kubernetes.io/name=outgrow")
    selector = workload["spec"].get("selector", {}).get("matchLabels")
    if workload["kind"] == "Deployment":
        report.check(labels_match(selector, labels), where, "the selector does not match the pod template's labels")
    pod_sc = spec.get("securityContext", {})
    report.check(spec.get("automountServiceAccountToken") is False, where, "automountServiceAccountToken is not false")
    report.check(spec.get("enableServiceLinks") is False, where,
                 "enableServiceLinks is not false: Services named outgrow-… would inject OUTGROW_* variables Outgrow refuses")
    report.check(spec.get("serviceAccountName") not in (None, "default"), where, "runs as the default ServiceAccount")
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for container in containers_of(spec):
        cwhere = f"{where} container {container['name']}"
        sc = container.get("securityContext", {})
        run_as_non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
        report.check(run_as_non_root is True, cwhere, "runAsNonRoot is not true")
        report.check(isinstance(uid, int) and uid > 0, cwhere, f"runAsUser is {uid!r}, not a non-root uid")
        report.check(sc.get("readOnlyRootFilesystem") is True, cwhere, "readOnlyRootFilesystem is not true")
        report.check(sc.get("allowPrivilegeEscalation") is False, cwhere, "allowPrivilegeEscalation is not false")
        report.check(not sc.get("privileged"), cwhere, "is privileged")
        report.check("ALL" in sc.get("capabilities", {}).get("drop", []), cwhere, "does not drop ALL capabilities")
        report.check(not sc.get("capabilities", {}).get("add"), cwhere, "adds capabilities")
        seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {})).get("type")
        report.check(seccomp == "RuntimeDefault", cwhere, f"seccompProfile is {seccomp!r}, not RuntimeDefault")
        mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
        for path in ("/tmp", DATA_DIR):
            report.check(path in mounts and "emptyDir" in volumes.get(mounts[path], {}), cwhere,
                         f"{path} is not an emptyDir mount (the root filesystem is read-only)")
        resources = container.get("resources", {})
        for kind in ("cpu", "memory"):
            request = resources.get("requests", {}).get(kind)
            limit = resources.get("limits", {}).get(kind)
            if report.check(request is not None and limit is not None, cwhere, f"{kind} request and limit are not both set"):
                report.check(quantity(request, kind == "cpu") <= quantity(limit, kind == "cpu"), cwhere, f"{kind} request {request} exceeds its limit {limit}")
        image = container.get("image", "")
        repo, _, tag = image.partition("@")[0].rpartition(":") if ":" in image.split("/")[-1] else (image, "", "")
        report.check(repo == IMAGE and tag not in ("", "latest"), cwhere, f"image {image!r} is not {IMAGE}:<tag> with an explicit tag")
        report.check(container.get("args") == ROLE_ARGS.get(role), cwhere, f"args {container.get('args')} are not {ROLE_ARGS.get(role)} for a {role} pod")
        report.check(not container.get("command"), cwhere, "overrides the image's entrypoint")
        env = check_env(report, cwhere, container, docs, secret, settings)
        check_config_values(report, cwhere, env)
        yield container, env


def check_spread(report, where, template):
    labels = template["metadata"].get("labels", {})
    keys = set()
    for constraint in template["spec"].get("topologySpreadConstraints", []):
        keys.add(constraint.get("topologyKey"))
        report.check(labels_match(constraint.get("labelSelector", {}).get("matchLabels"), labels), where,
                     f"topology spread over {constraint.get('topologyKey')} selects other pods than its own")
    for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname"):
        report.check(key in keys, where, f"no topologySpreadConstraint over {key}")


def check_rollout(report, where, deployment):
    strategy = deployment["spec"].get("strategy", {})
    rolling = strategy.get("rollingUpdate", {})
    report.check(strategy.get("type") == "RollingUpdate", where, "strategy is not RollingUpdate")
    report.check(str(rolling.get("maxUnavailable")) in ("0", "0%"), where, f"maxUnavailable is {rolling.get('maxUnavailable')!r}, not 0")
    report.check(rolling.get("maxSurge") == "25%", where, f"maxSurge is {rolling.get('maxSurge')!r}, not 25%")
    report.check("replicas" not in deployment["spec"], where, "sets replicas although an autoscaler owns the count (an apply would reset it)")


def check_api(report, where, deployment, container, env):
    spec = deployment["spec"]["template"]["spec"]
    annotations = deployment["spec"]["template"].get("metadata", {}).get("annotations", {})
    ports = {p.get("name"): p for p in container.get("ports", [])}
    listen_port = int(str(env.get("OUTGROW_LISTEN", ":0")).rpartition(":")[2] or 0)
    report.check("http" in ports and ports["http"].get("containerPort") == listen_port, where,
                 f"no container port named http on OUTGROW_LISTEN's port {listen_port} (Prometheus scrapes the port named http)")

    def probe(kind, path):
        http = (container.get(kind) or {}).get("httpGet")
        if report.check(http is not None, where, f"no {kind} with httpGet"):
            if path:
                report.check(http.get("path") == path, where, f"{kind} path is {http.get('path')!r}, not {path}")
            report.check(http.get("port") in ("http", listen_port), where, f"{kind} port {http.get('port')!r} is not the listener")
        return container.get(kind) or {}

    readiness = probe("readinessProbe", "/readyz")
    probe("livenessProbe", "/healthz")
    probe("startupProbe", None)
    report.check(annotations.get("prometheus.io/scrape") == "true" and str(annotations.get("prometheus.io/port")) == str(listen_port)
                 and annotations.get("prometheus.io/path") == "/metrics", where, "no prometheus.io scrape/port/path annotations for /metrics")
    sleep = (((container.get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {}).get("seconds")
    report.check(isinstance(sleep, int) and sleep > 0, where, "no preStop sleep (endpoint removal needs time to reach the ingress controller)")
    delay = duration_s(env.get("OUTGROW_SHUTDOWN_DELAY", "0s"))
    timeout = duration_s(env.get("OUTGROW_SHUTDOWN_TIMEOUT", "30s"))
    grace = spec.get("terminationGracePeriodSeconds", 30)
    need = (sleep or 0) + delay + timeout + MARGIN_S
    report.check(grace >= need, where,
                 f"terminationGracePeriodSeconds {grace} < preStop {sleep} + shutdown delay {delay:g} + shutdown timeout {timeout:g} + margin {MARGIN_S} = {need:g}")
    unready_after = readiness.get("periodSeconds", 10) * readiness.get("failureThreshold", 3)
    report.check(delay >= unready_after, where,
                 f"OUTGROW_SHUTDOWN_DELAY {delay:g}s is shorter than the readiness probe needs to see the 503 ({unready_after}s)")
    return grace


def check_worker(report, where, deployment, container, env, api_grace):
    spec = deployment["spec"]["template"]["spec"]
    timeout = duration_s(env.get("OUTGROW_SHUTDOWN_TIMEOUT", "30s"))
    grace = spec.get("terminationGracePeriodSeconds", 30)
    report.check(grace >= timeout + MARGIN_S, where, f"terminationGracePeriodSeconds {grace} < shutdown timeout {timeout:g} + margin {MARGIN_S}")
    if api_grace:
        report.check(grace > api_grace, where, f"the workers' grace period {grace} is not longer than the API's {api_grace} (jobs outlast requests)")
    report.check(not container.get("ports"), where, "declares ports: `outgrow worker` serves no HTTP")


def check_job(report, where, job):
    spec = job["spec"]
    report.check(isinstance(spec.get("backoffLimit"), int) and 0 <= spec["backoffLimit"] <= 6, where, "backoffLimit is not set to 0–6")
    report.check(isinstance(spec.get("ttlSecondsAfterFinished"), int), where, "ttlSecondsAfterFinished is not set")
    report.check(isinstance(spec.get("activeDeadlineSeconds"), int), where, "activeDeadlineSeconds is not set")
    report.check(spec["template"]["spec"].get("restartPolicy") in ("Never", "OnFailure"), where, "restartPolicy is not Never/OnFailure")


def pods_selected(docs, selector):
    return [(w, t) for _, w, t in pod_templates(docs) if labels_match(selector, t["metadata"].get("labels", {}))]


def check_services(report, docs, expect):
    deployments = by_kind(docs, "Deployment")
    services = {name_of(s): s for s in by_kind(docs, "Service")}
    for name, service in services.items():
        where = f"Service/{name}"
        selected = pods_selected(docs, service["spec"].get("selector"))
        if report.check(selected, where, "selects no pods"):
            for workload, template in selected:
                report.check(role_of(template) == "api", where, f"selects {workload['kind']}/{name_of(workload)} (only the API serves HTTP)")
                ports = {p.get("name") for c in template["spec"]["containers"] for p in c.get("ports", [])}
                for port in service["spec"].get("ports", []):
                    target = port.get("targetPort")
                    report.check(not isinstance(target, str) or target in ports, where, f"targetPort {target} is not a port of the pods")
    tracks = expect["tracks"]
    if tracks:
        by_track = {}
        for deployment in deployments:
            track = deployment["spec"]["template"]["metadata"]["labels"].get("track")
            if role_of(deployment["spec"]["template"]) == "api":
                report.check(track in tracks, f"Deployment/{name_of(deployment)}", f"track label {track!r} is not one of {tracks}")
                report.check(deployment["spec"]["selector"]["matchLabels"].get("track") == track, f"Deployment/{name_of(deployment)}",
                             "the track is not part of the selector (the two tracks' ReplicaSets would overlap)")
                by_track.setdefault(track, []).append(name_of(deployment))
        report.check(sorted(by_track) == sorted(tracks) and all(len(v) == 1 for v in by_track.values()), "blue-green",
                     f"expected one API Deployment per track {tracks}, found {by_track}")
        live = {}
        for name in ("api", "api-preview"):
            service = services.get(name)
            if not report.check(service is not None, "blue-green", f"no Service {name}"):
                continue
            selector = service["spec"].get("selector", {})
            matched = [name_of(w) for w, t in pods_selected(docs, selector) if w["kind"] == "Deployment"]
            report.check(selector.get("track") in tracks and len(matched) == 1, f"Service/{name}",
                         f"selects {matched or 'nothing'} (selector {selector}): it must select exactly one track")
            live[name] = selector.get("track")
        report.check(live.get("api") != live.get("api-preview"), "blue-green", f"api and api-preview select the same track {live.get('api')!r}")
    else:
        report.check("api" in services, "overlay", "no Service api")


def check_ingress(report, docs):
    services = {name_of(s): s for s in by_kind(docs, "Service")}
    ingresses = by_kind(docs, "Ingress")
    report.check(len(ingresses) >= 1, "overlay", "no Ingress")
    for ingress in ingresses:
        where = f"Ingress/{name_of(ingress)}"
        spec = ingress["spec"]
        annotations = ingress["metadata"].get("annotations", {})
        report.check(spec.get("ingressClassName") == "nginx", where, "ingressClassName is not nginx")
        body = annotations.get("nginx.ingress.kubernetes.io/proxy-body-size")
        try:
            ok = body is not None and size_bytes(body) >= 10 * 2**20
        except ValueError:
            ok = False
        report.check(ok, where, f"nginx.ingress.kubernetes.io/proxy-body-size {body!r} is below the 10 MiB upload limit")
        tls_hosts = {h for t in spec.get("tls", []) for h in t.get("hosts", [])}
        report.check(all(t.get("secretName") for t in spec.get("tls", [])) and tls_hosts, where, "no TLS section with a secretName")
        for rule in spec.get("rules", []):
            report.check(rule.get("host") in tls_hosts, where, f"host {rule.get('host')} is not covered by the TLS section")
            for path in rule.get("http", {}).get("paths", []):
                backend = path["backend"]["service"]
                service = services.get(backend["name"])
                if report.check(service is not None, where, f"backend Service {backend['name']} does not exist"):
                    port_names = {p.get("name") for p in service["spec"]["ports"]}
                    port_numbers = {p.get("port") for p in service["spec"]["ports"]}
                    port = backend["port"]
                    report.check(port.get("name") in port_names or port.get("number") in port_numbers, where, f"backend port {port} is not a port of Service {backend['name']}")


def check_hpa(report, docs, expect):
    deployments = {name_of(d): d for d in by_kind(docs, "Deployment")}
    targeted = set()
    for hpa in by_kind(docs, "HorizontalPodAutoscaler"):
        where = f"HorizontalPodAutoscaler/{name_of(hpa)}"
        spec = hpa["spec"]
        report.check(hpa["apiVersion"] == "autoscaling/v2", where, f"apiVersion is {hpa['apiVersion']}, not autoscaling/v2")
        ref = spec["scaleTargetRef"]
        target = deployments.get(ref["name"]) if ref.get("kind") == "Deployment" else None
        if report.check(target is not None, where, f"targets {ref.get('kind')}/{ref.get('name')}, which does not exist"):
            report.check(role_of(target["spec"]["template"]) == "api", where, "does not target an API Deployment")
            targeted.add(ref["name"])
        cpu = [m for m in spec.get("metrics", []) if m.get("type") == "Resource" and m["resource"]["name"] == "cpu"]
        report.check(len(cpu) == 1 and cpu[0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}, where,
                     f"does not target 70 % CPU utilization ({cpu})")
        bounds = (spec.get("minReplicas"), spec.get("maxReplicas"))
        report.check(bounds == expect["hpa"], where, f"replicas {bounds[0]}–{bounds[1]}, expected {expect['hpa'][0]}–{expect['hpa'][1]}")
        window = spec.get("behavior", {}).get("scaleDown", {}).get("stabilizationWindowSeconds")
        report.check(isinstance(window, int) and window >= 60, where, f"scale-down stabilization window is {window!r}, not ≥ 60 s")
    for name, deployment in deployments.items():
        if role_of(deployment["spec"]["template"]) == "api":
            report.check(name in targeted, f"Deployment/{name}", "no HorizontalPodAutoscaler targets it")


def check_pdbs(report, docs):
    roles = set()
    for pdb in by_kind(docs, "PodDisruptionBudget"):
        where = f"PodDisruptionBudget/{name_of(pdb)}"
        selected = pods_selected(docs, pdb["spec"].get("selector", {}).get("matchLabels"))
        report.check(selected, where, "selects no pods")
        report.check("maxUnavailable" in pdb["spec"] or "minAvailable" in pdb["spec"], where, "sets neither maxUnavailable nor minAvailable")
        roles |= {role_of(t) for _, t in selected}
    for role in ("api", "worker"):
        report.check(role in roles, "overlay", f"no PodDisruptionBudget covers the {role} pods")


def ports_of(rules):
    return {p.get("port") for rule in rules for p in rule.get("ports", [])}


def check_network_policies(report, docs):
    policies = by_kind(docs, "NetworkPolicy")
    for where, _, template in pod_templates(docs):
        labels = template["metadata"].get("labels", {})
        selecting = [p for p in policies if labels_match(p["spec"].get("podSelector", {}).get("matchLabels"), labels)]
        if not report.check(selecting, where, "no NetworkPolicy selects its pods"):
            continue
        types = {t for p in selecting for t in p["spec"].get("policyTypes", [])}
        report.check(types >= {"Ingress", "Egress"}, where, f"its NetworkPolicies restrict only {sorted(types)}")
        ingress = [rule for p in selecting for rule in p["spec"].get("ingress", [])]
        egress = [rule for p in selecting for rule in p["spec"].get("egress", [])]
        role = role_of(template)
        allowed_egress = NETPOL_EGRESS_PORTS if role != "migrate" else {53, 5432}
        report.check(ports_of(egress) == allowed_egress, where,
                     f"egress ports {sorted(map(str, ports_of(egress)))}, expected exactly {sorted(allowed_egress)}")
        report.check(all(rule.get("ports") for rule in egress), where, "an egress rule allows every port")
        dns = [rule for rule in egress if ports_of([rule]) == {53}]
        report.check(all(rule.get("to") for rule in dns), where, "DNS egress is not limited to the cluster's resolver")
        if role == "api":
            namespaces = set()
            for rule in ingress:
                report.check(ports_of([rule]) == {8080} and rule.get("from"), where, f"an ingress rule allows {sorted(map(str, ports_of([rule])))} from {rule.get('from', 'anywhere')}")
                for peer in rule.get("from", []):
                    ns = peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
                    report.check(ns in INGRESS_FROM_NAMESPACES and peer.get("podSelector"), where,
                                 f"ingress from {peer} (only the ingress controller's and Prometheus's pods)")
                    namespaces.add(ns)
            report.check(namespaces == INGRESS_FROM_NAMESPACES, where, f"ingress allowed from {sorted(map(str, namespaces))}, expected {sorted(INGRESS_FROM_NAMESPACES)}")
        else:
            report.check(not ingress, where, "accepts ingress traffic (it serves nothing)")


def check_keda(report, docs, secret, expect, worker_queues):
    deployments = {name_of(d): d for d in by_kind(docs, "Deployment")}
    auths = {name_of(a): a for a in by_kind(docs, "TriggerAuthentication")}
    scaled = by_kind(docs, "ScaledObject")
    report.check(len(scaled) == 1, "overlay", f"expected one KEDA ScaledObject, found {len(scaled)}")
    for obj in scaled:
        where = f"ScaledObject/{name_of(obj)}"
        spec = obj["spec"]
        target = deployments.get(spec["scaleTargetRef"]["name"])
        report.check(target is not None and role_of(target["spec"]["template"]) == "worker", where, "does not target the worker Deployment")
        bounds = (spec.get("minReplicaCount"), spec.get("maxReplicaCount"))
        report.check(bounds == expect["keda"], where, f"replicas {bounds[0]}–{bounds[1]}, expected {expect['keda'][0]}–{expect['keda'][1]}")
        for trigger in spec.get("triggers", []):
            meta = trigger.get("metadata", {})
            if trigger["type"] == "postgresql":
                query = " ".join(meta.get("query", "").split())
                for part in ("FROM jobs", "state = 'ready'", "run_at <= now()"):
                    report.check(part in query, where, f"the query does not have {part!r}: {query}")
                queues = re.search(r"queue IN \(([^)]*)\)", query)
                if queues:
                    listed = {q.strip().strip("'") for q in queues[1].split(",")}
                    report.check(listed == worker_queues, where, f"the query counts queues {sorted(listed)}, the workers serve {sorted(worker_queues)}")
                report.check(float(meta.get("targetQueryValue", 0)) > 0, where, "targetQueryValue is not positive")
            elif trigger["type"] == "prometheus":
                report.check("jobs_queue_depth" in meta.get("query", ""), where, "the prometheus query does not read jobs_queue_depth")
            else:
                report.check(False, where, f"unexpected trigger type {trigger['type']}")
            ref = (trigger.get("authenticationRef") or {}).get("name")
            if trigger["type"] == "postgresql" and report.check(ref in auths, where, f"authenticationRef {ref} does not exist"):
                for target_ref in auths[ref]["spec"].get("secretTargetRef", []):
                    report.check(target_ref["name"] == SECRET and target_ref["key"] in secret, f"TriggerAuthentication/{ref}",
                                 f"secretTargetRef {target_ref['name']}/{target_ref['key']} does not exist")


def check_namespace(report, docs, expect):
    namespaces = by_kind(docs, "Namespace")
    if report.check(len(namespaces) == 1, "overlay", f"expected one Namespace, found {len(namespaces)}"):
        ns = namespaces[0]
        report.check(name_of(ns) == expect["namespace"], "Namespace", f"is {name_of(ns)}, expected {expect['namespace']}")
        report.check(ns["metadata"].get("labels", {}).get("pod-security.kubernetes.io/enforce") == "restricted", "Namespace",
                     "does not enforce the restricted Pod Security Standard")
    for doc in docs:
        if doc["kind"] != "Namespace":
            report.check(doc["metadata"].get("namespace") == expect["namespace"], f"{doc['kind']}/{name_of(doc)}",
                         f"is in namespace {doc['metadata'].get('namespace')!r}, not {expect['namespace']}")
        labels = doc["metadata"].get("labels", {})
        report.check(labels.get("app.kubernetes.io/name") == "outgrow" and labels.get("app.kubernetes.io/component"),
                     f"{doc['kind']}/{name_of(doc)}", "lacks the app.kubernetes.io/name and component labels (the pipeline applies by component)")


def check_secret(report, base_docs):
    secrets = [s for s in by_kind(base_docs, "Secret") if name_of(s) == SECRET]
    if not report.check(len(secrets) == 1, "base", f"no placeholder Secret {SECRET}"):
        return {}
    secret = secrets[0]
    report.check(not secret.get("data"), f"Secret/{SECRET}", "has base64 data: placeholders belong in stringData, real values nowhere in git")
    values = secret.get("stringData", {}) or {}
    report.check(set(values) == set(SECRET_KEYS), f"Secret/{SECRET}", f"keys {sorted(values)} differ from the contract {sorted(SECRET_KEYS)}")
    for key, value in values.items():
        report.check(PLACEHOLDER in str(value), f"Secret/{SECRET}", f"{key} is not a {PLACEHOLDER} placeholder")
        for problem in secret_findings(str(value)):
            report.check(False, f"Secret/{SECRET}", f"{key}: {problem}")
    return values


SECRET_PATTERNS = [
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), "an AWS access key id"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
    (re.compile(r"\b(?:ghp|gho|ghs|github_pat)_[A-Za-z0-9_]{20,}"), "a GitHub token"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"), "a JWT"),
]
URL_CREDENTIALS = re.compile(r"[a-z][a-z0-9+.-]*://[^\s/:@'\"]*:([^\s@/'\"]+)@")
TOKEN = re.compile(r"[A-Za-z0-9+/_=-]{32,}")


def entropy(text):
    counts = {c: text.count(c) for c in set(text)}
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def secret_findings(text):
    for pattern, what in SECRET_PATTERNS:
        if pattern.search(text):
            yield f"looks like {what}"
    for match in URL_CREDENTIALS.finditer(text):
        password = match[1]
        if PLACEHOLDER not in password and not password.startswith(("$", "<", "{")):
            yield f"a URL with a password ({match[0][:24]}…)"
    for match in TOKEN.finditer(text):
        token = match[0]
        if (PLACEHOLDER in token or re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", token) or re.fullmatch(r"[a-z0-9-]+", token)
                or re.fullmatch(r"/?(?:[a-z0-9_.-]+/)+[A-Za-z0-9_.-]*", token)):  # a hash, a word, a path
            continue
        if entropy(token) >= 4.0 and re.search(r"\d", token) and re.search(r"[A-Z]", token) and re.search(r"[a-z]", token):
            yield f"a high-entropy string ({token[:6]}…)"


def scan_files(report, root):
    files = [p for p in sorted(pathlib.Path(root).rglob("*")) if p.is_file()]
    for path in files:
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            report.check(False, str(path), "is not text")
            continue
        for number, line in enumerate(text.splitlines(), 1):
            for problem in secret_findings(line):
                report.check(False, f"{path}:{number}", f"{problem}: never commit a secret")
    return len(files)


def check_overlay(report, name, docs, base_secret, settings):
    expect = OVERLAYS[name]
    report.check(not any(d["kind"] == "Secret" and name_of(d) == SECRET for d in docs), "overlay",
                 f"ships the placeholder Secret {SECRET}: an apply would overwrite the real one")
    api_grace, workers = None, []
    for where, workload, template in pod_templates(docs):
        role = role_of(template)
        for container, env in list(check_pod(report, where, workload, template, docs, base_secret, settings)):
            if workload["kind"] == "Deployment":
                check_rollout(report, where, workload)
                check_spread(report, where, template)
            if role == "api":
                grace = check_api(report, where, workload, container, env)
                api_grace = grace if api_grace is None else min(api_grace, grace)
            elif role == "worker":
                workers.append((where, workload, container, env))
            elif role == "migrate":
                report.check(workload["kind"] == "Job", where, "the migration must run as a Job")
                check_job(report, where, workload)
    report.check(api_grace is not None, "overlay", "no API Deployment")
    report.check(len(workers) == 1, "overlay", f"expected one worker Deployment, found {len(workers)}")
    report.check(any(d["kind"] == "Job" and role_of(d["spec"]["template"]) == "migrate" for d in docs), "overlay", "no migrate Job")
    for where, workload, container, env in workers:
        check_worker(report, where, workload, container, env, api_grace)
    # every workload gets the same secret contract
    secret_sets = {
        where: sorted(v["name"] for c in containers_of(t["spec"]) for v in c.get("env", []) if "secretKeyRef" in v.get("valueFrom", {}))
        for where, _, t in pod_templates(docs)
    }
    report.check(len({tuple(v) for v in secret_sets.values()}) == 1, "overlay", f"the workloads take different secrets: {secret_sets}")
    queues = set()
    for configmap in by_kind(docs, "ConfigMap"):
        leaked = sorted(set(configmap.get("data", {}) or {}) & set(SECRET_KEYS))
        report.check(not leaked, f"ConfigMap/{name_of(configmap)}", f"holds secrets {leaked} (they belong in Secret {SECRET})")
        queues |= {q.strip() for q in str(configmap.get("data", {}).get("OUTGROW_WORKER_QUEUES", "")).split(",") if q.strip()}
    check_services(report, docs, expect)
    check_ingress(report, docs)
    check_hpa(report, docs, expect)
    check_pdbs(report, docs)
    check_network_policies(report, docs)
    check_keda(report, docs, base_secret, expect, queues)
    check_namespace(report, docs, expect)


def run(base_docs, overlays, settings, scan=None):
    report = Report()
    base_secret = check_secret(report, base_docs)
    missing = set(OVERLAYS) - set(overlays)
    report.check(not missing, "overlays", f"not rendered: {sorted(missing)}")
    for name, docs in overlays.items():
        if not report.check(name in OVERLAYS, f"overlay {name}", "has no expectations in check_manifests.py (add it to OVERLAYS)"):
            continue
        sub = Report()
        check_overlay(sub, name, docs, base_secret, settings)
        report.checks += sub.checks
        report.failures += [f"[{name}] {failure}" for failure in sub.failures]
    if scan:
        count = scan_files(report, scan)
        print(f"  scanned {count} files under {scan} for secret-looking values")
    return report


# ---------------------------------------------------------------------------------------------
# self-test: every breakage must be reported


def find(docs, kind, name):
    return next(d for d in docs if d["kind"] == kind and name_of(d) == name)


def container(docs, kind, name):
    return find(docs, kind, name)["spec"]["template"]["spec"]["containers"][0]


def mutations():
    """(description, overlay, mutate(base_docs, docs), expected text in a failure)."""

    def set_(path_fn, value):
        def mutate(base, docs):
            obj, key = path_fn(base, docs)
            obj[key] = value
        return mutate

    def delete(path_fn):
        def mutate(base, docs):
            obj, key = path_fn(base, docs)
            del obj[key]
        return mutate

    api = lambda d: container(d, "Deployment", "api")
    return [
        ("maxUnavailable 1", "production",
         set_(lambda b, d: (find(d, "Deployment", "api")["spec"]["strategy"]["rollingUpdate"], "maxUnavailable"), 1), "maxUnavailable"),
        ("maxSurge 50%", "production",
         set_(lambda b, d: (find(d, "Deployment", "worker")["spec"]["strategy"]["rollingUpdate"], "maxSurge"), "50%"), "maxSurge"),
        ("readiness on /healthz", "production",
         set_(lambda b, d: (api(d)["readinessProbe"]["httpGet"], "path"), "/healthz"), "readinessProbe path"),
        ("no liveness probe", "staging", delete(lambda b, d: (api(d), "livenessProbe")), "livenessProbe"),
        ("grace period 30 s", "production",
         set_(lambda b, d: (find(d, "Deployment", "api")["spec"]["template"]["spec"], "terminationGracePeriodSeconds"), 30), "terminationGracePeriodSeconds"),
        ("shutdown delay 2s", "production",
         set_(lambda b, d: (find(d, "ConfigMap", "outgrow-config")["data"], "OUTGROW_SHUTDOWN_DELAY"), "2s"), "shorter than the readiness probe"),
        ("worker grace below its timeout", "production",
         set_(lambda b, d: (find(d, "Deployment", "worker")["spec"]["template"]["spec"], "terminationGracePeriodSeconds"), 60), "shutdown timeout"),
        ("writable root filesystem", "production",
         delete(lambda b, d: (container(d, "Job", "migrate")["securityContext"], "readOnlyRootFilesystem")), "readOnlyRootFilesystem"),
        ("runs as root", "staging",
         set_(lambda b, d: (find(d, "Deployment", "worker")["spec"]["template"]["spec"]["securityContext"], "runAsUser"), 0), "runAsUser"),
        ("no memory limit", "production",
         delete(lambda b, d: (container(d, "Deployment", "worker")["resources"]["limits"], "memory")), "memory request and limit"),
        ("service links on", "production",
         set_(lambda b, d: (find(d, "Deployment", "api")["spec"]["template"]["spec"], "enableServiceLinks"), True), "enableServiceLinks"),
        ("secret key missing from the Secret", "production",
         lambda b, d: api(d)["env"][0]["valueFrom"]["secretKeyRef"].update(key="OUTGROW_DATABASE_URI"), "is not in Secret"),
        ("unknown OUTGROW_ variable", "production",
         set_(lambda b, d: (find(d, "ConfigMap", "outgrow-config")["data"], "OUTGROW_LISTEN_ADDR"), "0.0.0.0:8080"), "not an Outgrow setting"),
        ("secret in the ConfigMap", "staging",
         set_(lambda b, d: (find(d, "ConfigMap", "outgrow-config")["data"], "OUTGROW_REDIS_URL"), "redis://cache:6379"), "holds secrets"),
        ("auto-migrate on", "production",
         set_(lambda b, d: (find(d, "ConfigMap", "outgrow-config")["data"], "OUTGROW_AUTO_MIGRATE"), "true"), "OUTGROW_AUTO_MIGRATE"),
        ("HPA at 80 %", "production",
         lambda b, d: find(d, "HorizontalPodAutoscaler", "api")["spec"]["metrics"][0]["resource"]["target"].update(averageUtilization=80), "70 % CPU"),
        ("staging HPA up to 10", "staging",
         set_(lambda b, d: (find(d, "HorizontalPodAutoscaler", "api")["spec"], "maxReplicas"), 10), "expected 1–3"),
        ("blue-green Service selects both tracks", "blue-green",
         delete(lambda b, d: (find(d, "Service", "api")["spec"]["selector"], "track")), "exactly one track"),
        ("blue-green preview on the live track", "blue-green",
         set_(lambda b, d: (find(d, "Service", "api-preview")["spec"]["selector"], "track"), "blue"), "same track"),
        ("overlay ships the placeholder Secret", "production",
         lambda b, d: d.append(copy.deepcopy(find(b, "Secret", SECRET)) | {"metadata": {"name": SECRET, "namespace": "outgrow",
                                                                                       "labels": {"app.kubernetes.io/name": "outgrow", "app.kubernetes.io/component": "config"}}}),
         "overwrite the real one"),
        ("a real-looking JWT key in the Secret", "production",
         set_(lambda b, d: (find(b, "Secret", SECRET)["stringData"], "OUTGROW_JWT_KEYS"), "k1:q9Xv2LmT7rB4wZ8pK1sD6fH3jN0cY5uA"), "placeholder"),
        ("ingress from anywhere", "production",
         delete(lambda b, d: (find(d, "NetworkPolicy", "api")["spec"]["ingress"][0], "from")), "ingress"),
        ("egress to any port", "production",
         lambda b, d: find(d, "NetworkPolicy", "worker")["spec"]["egress"].append({}), "allows every port"),
        ("upload limit below 10 MiB", "production",
         lambda b, d: find(d, "Ingress", "api")["metadata"]["annotations"].update({"nginx.ingress.kubernetes.io/proxy-body-size": "1m"}), "proxy-body-size"),
        ("KEDA counts other queues", "production",
         set_(lambda b, d: (find(d, "ConfigMap", "outgrow-config")["data"], "OUTGROW_WORKER_QUEUES"), "default,mail,exports"), "the workers serve"),
        ("KEDA without its TriggerAuthentication", "staging",
         lambda b, d: d.remove(find(d, "TriggerAuthentication", "outgrow-postgres")), "authenticationRef"),
        ("image :latest", "production",
         set_(lambda b, d: (container(d, "Deployment", "api"), "image"), IMAGE + ":latest"), "explicit tag"),
        ("replicas fixed under the HPA", "production",
         set_(lambda b, d: (find(d, "Deployment", "api")["spec"], "replicas"), 3), "autoscaler owns"),
        ("migrate Job without ttl", "production",
         delete(lambda b, d: (find(d, "Job", "migrate")["spec"], "ttlSecondsAfterFinished")), "ttlSecondsAfterFinished"),
    ]


def self_test(base_docs, overlays, settings):
    clean = run(base_docs, overlays, settings)
    if clean.failures:
        print("self-test: the unbroken renderings fail:", *clean.failures, sep="\n  ")
        return False
    ok = True
    for description, overlay, mutate, expected in mutations():
        base, docs = copy.deepcopy(base_docs), {k: copy.deepcopy(v) for k, v in overlays.items()}
        mutate(base, docs[overlay])
        report = run(base, docs, settings)
        hit = [f for f in report.failures if expected in f]
        if hit:
            print(f"  self-test: {description} [{overlay}] -> rejected: {hit[0][:150]}")
        else:
            ok = False
            print(f"  self-test FAILED: {description} [{overlay}] was not reported as {expected!r}; failures: {report.failures[:3]}")
    findings = list(secret_findings("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY1 id AKIAIOSFODNN7EXAMPLE "
                                    "url postgres://u:hunter2@db/x jwt k1:Qm9vT3k1ZHpVbXl0R2hBcFNvN1JkV0t6YjJ0cUxmTnA4"))
    if len(findings) >= 4:
        print(f"  self-test: the secret scan finds {len(findings)} problems in a leaky line")
    else:
        ok = False
        print(f"  self-test FAILED: the secret scan found only {findings}")
    return ok


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--settings", required=True)
    parser.add_argument("--base", required=True)
    parser.add_argument("--overlay", action="append", default=[], help="NAME=RENDERING")
    parser.add_argument("--scan", help="directory to scan for secret-looking values")
    parser.add_argument("--env-example", help="the env file the README creates the Secret from: same keys as the Secret")
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args()
    settings = known_settings(args.settings)
    base_docs = load(args.base)
    overlays = {}
    for item in args.overlay:
        name, _, path = item.partition("=")
        overlays[name] = load(path)
    if args.self_test:
        if not self_test(base_docs, overlays, settings):
            sys.exit(1)
        print(f"  self-test: {len(mutations())} breakages, each reported")
        return
    report = run(base_docs, overlays, settings, args.scan)
    if args.env_example:
        keys = [line.split("=", 1)[0] for line in pathlib.Path(args.env_example).read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
        report.check(sorted(keys) == sorted(SECRET_KEYS) and all(PLACEHOLDER in line for line in
                     pathlib.Path(args.env_example).read_text().splitlines() if "=" in line and not line.startswith("#")),
                     args.env_example, f"keys {sorted(keys)} are not the Secret's {sorted(SECRET_KEYS)}, each a {PLACEHOLDER} placeholder")
    for failure in report.failures:
        print(f"  FAIL {failure}")
    if report.failures:
        print(f"check_manifests: {len(report.failures)} of {report.checks} checks failed")
        sys.exit(1)
    print(f"  {report.checks} assertions hold over {', '.join(overlays)} ({len(settings)} Outgrow settings known)")


if __name__ == "__main__":
    main()
