#!/usr/bin/env python3
"""Structural checks of deploy/terraform, offline (no terraform binary, no AWS).

Every .tf file is parsed with python-hcl2; a parse error fails. Then the facts the runbooks
(docs/operations.md) and deploy/terraform/README.md rely on are asserted, one group at a time:

  versions    required_version; hashicorp/aws pinned; every resource's provider required
  references  every var.X is declared in variables.tf with a description and a type, and used;
              every local, data source and resource referenced is declared; locals and data
              sources are used; every output has a description; validations are well formed
  api-asg     aws_autoscaling_group.api: min 2, max 10, ELB health checks with a grace period,
              the target group attached, rolling instance refresh (>= 90 % healthy) on every
              launch template version; target tracking on average CPU at 70 %; scheduled actions
  worker-asg  aws_autoscaling_group.worker: min >= 1, its own launch template
  launch      every launch template: IMDSv2 required, encrypted gp3 root volume, user data from
              a template under templates/
  alb         target group on 8080 probing /readyz, stickiness off, deregistration delay = the
              app's drain (shutdown delay + timeout) and the drain longer than the probe's
              detection; HTTPS listener with the certificate variable; HTTP redirects to HTTPS
  rds         one primary: postgres >= 15, Multi-AZ, encrypted, backups kept (PITR), deletion
              protection, Performance Insights, TLS forced; replicas (count default 2) replicate
              the primary
  redis       replication group: automatic failover, Multi-AZ, encryption at rest and in transit,
              AUTH token not a literal, >= 2 nodes
  s3          public access block all true, versioning, SSE, lifecycle: exports expire, noncurrent
              versions expire, incomplete multipart uploads aborted
  network     3 AZs of public/private/database subnets, NAT; security groups least privilege:
              ALB <- clients 443/80, api <- ALB 8080, RDS <- app 5432, Redis <- app 6379
  alarms      ALB 5xx rate, p95 > 0.5 s, unhealthy hosts, ASG CPU > 85 %, RDS CPU, free storage,
              replica lag, Redis CPU, memory, evictions — each to the SNS topic, which has an
              e-mail subscription
  secrets     no literal password/secret/token values (also in the template and the example
              tfvars); generated secrets flow only into Secrets Manager, RDS and ElastiCache —
              never into locals, user data or outputs
  user-data   the template's ${...} inputs are exactly what compute.tf passes; the OUTGROW_*
              settings Outgrow needs are all provided, and (with --settings) each is a setting
              Outgrow has
  readme      every variable and output is in README.md's tables; init/plan/apply and the S3
              backend are shown

Usage: check_terraform.py DIR [--settings crates/platform/src/config/settings.rs]
Prints one line per file and per group; exits 1 when anything failed.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import sys

import hcl2
from hcl2.utils import SerializationOptions

UNRESOLVED = object()
FAILURES: list[str] = []

# The environment Outgrow is configured through on EC2 (the brief of the deployment).
REQUIRED_SETTINGS = [
    "OUTGROW_DATABASE_URL",
    "OUTGROW_DATABASE_REPLICA_URLS",
    "OUTGROW_REDIS_URL",
    "OUTGROW_OBJECT_STORE_URL",
    "AWS_REGION",
    "OUTGROW_JWT_KEYS",
    "OUTGROW_SMTP_URL",
    "OUTGROW_TRUSTED_PROXIES",
    "OUTGROW_LISTEN",
    "OUTGROW_LOG_FORMAT",
    "OUTGROW_SHUTDOWN_DELAY",
    "OUTGROW_AUTO_MIGRATE",
]

SECRET_KEY = re.compile(
    r"(^|_)(password|passwd|secret|secret_string|token|auth_token|dsn|private_key|secret_key|access_key|jwt_keys?)$"
)
SECRET_LITERAL = [
    (re.compile(r"\b(postgres(ql)?|rediss?|smtps?)://[^:@/\s\"]*:[^@\s\"$%{]+@"), "a URL with an inline password"),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), "an AWS access key id"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
    (re.compile(r"https://[0-9a-f]{32}@[\w.-]+/\d+"), "a Sentry DSN"),
]


class Group:
    """One assertion group: collects its failures and prints one summary line."""

    def __init__(self, name: str):
        self.name = name
        self.failures: list[str] = []
        self.notes: list[str] = []

    def check(self, ok: bool, message: str) -> bool:
        if not ok:
            self.failures.append(message)
        return ok

    def note(self, message: str) -> None:
        self.notes.append(message)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            self.failures.append(f"check crashed: {exc[0].__name__}: {exc[1]}")
        if self.failures:
            print(f"FAIL {self.name}")
            for failure in self.failures:
                print(f"     - {failure}")
                FAILURES.append(f"{self.name}: {failure}")
        else:
            detail = "; ".join(self.notes)
            print(f"ok   {self.name}" + (f": {detail}" if detail else ""))
        return True  # a crashed group is a failed group, the others still run


# --- Values as python-hcl2 8 serializes them -----------------------------------------------------
# A string literal keeps its quotes ('"abc"', '"a-${var.x}"'); an expression is '${...}'; numbers
# and booleans are Python values; blocks are lists of dicts; labels are quoted keys.


def unquote(label: str) -> str:
    return label[1:-1] if len(label) >= 2 and label[0] == '"' and label[-1] == '"' else label


def is_template(value) -> bool:
    return isinstance(value, str) and len(value) >= 2 and value[0] == '"' and value[-1] == '"'


def literal(value):
    """The Python value of a literal (number, bool, plain string), else UNRESOLVED."""
    if isinstance(value, bool) or isinstance(value, (int, float)):
        return value
    if value is None:
        return None
    if is_template(value):
        inner = value[1:-1]
        if "${" in inner or "%{" in inner:
            return UNRESOLVED
        return inner.replace('\\"', '"').replace("\\\\", "\\")
    if isinstance(value, str):
        m = re.fullmatch(r"\$\{\s*(-?\d+(?:\.\d+)?)\s*\}", value)
        if m:
            number = float(m.group(1))
            return int(number) if number.is_integer() else number
        if value == "${null}":
            return None
    return UNRESOLVED


def expressions(value: str) -> list[str]:
    """The expression texts in one serialized string: the whole '${...}', or each interpolation
    of a template (brace-matched, so nested templates and objects stay inside)."""
    if not isinstance(value, str):
        return []
    if not is_template(value):
        return [value[2:-1]] if value.startswith("${") and value.endswith("}") else []
    out, i, text = [], 0, value[1:-1]
    while True:
        start = text.find("${", i)
        if start < 0:
            return out
        if start > 0 and text[start - 1] == "$":  # $${ is an escape
            i = start + 2
            continue
        depth, j, quote = 0, start + 1, False
        while j < len(text):
            c = text[j]
            if c == "\\":
                j += 2
                continue
            if c == '"':
                quote = not quote
            elif not quote and c == "{":
                depth += 1
            elif not quote and c == "}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        out.append(text[start + 2 : j])
        i = j + 1


def strings(node):
    """Every string value below node (dict keys excluded: they are names and labels)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            if key.startswith("__"):
                continue
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def code_only(expr: str) -> str:
    """expr with its string literals' text removed: only their interpolations remain, so that
    "user-data.sh" or "aws:kms" inside quotes is not taken for a reference."""
    out, i = [], 0
    while i < len(expr):
        c = expr[i]
        if c != '"':
            out.append(c)
            i += 1
            continue
        j = i + 1
        while j < len(expr) and expr[j] != '"':
            if expr[j] == "\\":
                j += 2
                continue
            if expr.startswith("${", j):
                depth, k = 0, j + 1
                while k < len(expr):
                    if expr[k] == "{":
                        depth += 1
                    elif expr[k] == "}":
                        depth -= 1
                        if depth == 0:
                            break
                    k += 1
                out.append(" " + code_only(expr[j + 2 : k]) + " ")
                j = k + 1
                continue
            j += 1
        out.append('""')
        i = j + 1
    return "".join(out)


def expression_text(node) -> str:
    return "\n".join(code_only(e) for s in strings(node) for e in expressions(s))


def raw_expression_text(node) -> str:
    """Like expression_text, string literals included (for function arguments such as paths)."""
    return "\n".join(e for s in strings(node) for e in expressions(s))


def items(node):
    """(key, value) of every attribute below node, recursively, with blocks unwrapped."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key.startswith("__"):
                continue
            yield key, value
            yield from items(value)
    elif isinstance(node, list):
        for item in node:
            yield from items(item)


def blocks(body: dict, name: str) -> list[dict]:
    value = body.get(name, [])
    if isinstance(value, dict):
        return [value]
    return [b for b in value if isinstance(b, dict)] if isinstance(value, list) else []


def block(body: dict, name: str) -> dict:
    found = blocks(body, name)
    return found[0] if found else {}


class Config:
    """The parsed configuration of one directory."""

    def __init__(self, directory: str):
        self.directory = directory
        self.files: dict[str, dict] = {}
        self.variables: dict[str, dict] = {}
        self.variable_files: dict[str, str] = {}
        self.locals: dict[str, object] = {}
        self.resources: dict[tuple[str, str], dict] = {}
        self.data: dict[tuple[str, str], dict] = {}
        self.outputs: dict[str, dict] = {}
        self.terraform: list[dict] = []
        self.providers: list[dict] = []

    def load(self) -> bool:
        paths = sorted(glob.glob(os.path.join(self.directory, "*.tf")))
        if not paths:
            print(f"FAIL parse: no .tf files in {self.directory}")
            FAILURES.append("parse: no .tf files")
            return False
        ok = True
        options = SerializationOptions(with_comments=False)
        for path in paths:
            name = os.path.basename(path)
            try:
                with open(path, encoding="utf-8") as handle:
                    tree = hcl2.load(handle, serialization_options=options)
            except Exception as error:  # python-hcl2 raises lark's errors, among others
                first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                print(f"FAIL parse {name}: {first}")
                FAILURES.append(f"parse {name}: {first}")
                ok = False
                continue
            self.files[name] = tree
            counts = self._index(name, tree)
            print(f"ok   parse {name}: " + (", ".join(f"{n} {k}" for k, n in counts.items() if n) or "empty"))
        return ok

    def _index(self, name: str, tree: dict) -> dict:
        counts = {"resources": 0, "data sources": 0, "variables": 0, "locals": 0, "outputs": 0}
        for top in tree.get("resource", []):
            for rtype, named in top.items():
                for rname, body in named.items():
                    if rname.startswith("__"):
                        continue
                    self.resources[(unquote(rtype), unquote(rname))] = body
                    counts["resources"] += 1
        for top in tree.get("data", []):
            for dtype, named in top.items():
                for dname, body in named.items():
                    if dname.startswith("__"):
                        continue
                    self.data[(unquote(dtype), unquote(dname))] = body
                    counts["data sources"] += 1
        for top in tree.get("variable", []):
            for vname, body in top.items():
                self.variables[unquote(vname)] = body
                self.variable_files[unquote(vname)] = name
                counts["variables"] += 1
        for top in tree.get("locals", []):
            for lname, value in top.items():
                if lname.startswith("__"):
                    continue
                self.locals[lname] = value
                counts["locals"] += 1
        for top in tree.get("output", []):
            for oname, body in top.items():
                self.outputs[unquote(oname)] = body
                counts["outputs"] += 1
        self.terraform += tree.get("terraform", [])
        self.providers += tree.get("provider", [])
        counts["terraform blocks"] = len(tree.get("terraform", []))
        counts["provider blocks"] = len(tree.get("provider", []))
        return counts

    # Values ------------------------------------------------------------------------------------

    def resolve(self, value, depth: int = 0):
        """A literal, or a variable's default / a local's value followed through plain
        references and simple arithmetic; UNRESOLVED when it depends on anything else."""
        if depth > 10:
            return UNRESOLVED
        direct = literal(value)
        if direct is not UNRESOLVED:
            return direct
        if not isinstance(value, str) or not value.startswith("${") or not value.endswith("}"):
            return UNRESOLVED
        expr = value[2:-1].strip()
        m = re.fullmatch(r"var\.(\w+)", expr)
        if m:
            variable = self.variables.get(m.group(1))
            if variable is None or "default" not in variable:
                return UNRESOLVED
            return self.resolve(variable["default"], depth + 1)
        m = re.fullmatch(r"local\.(\w+)", expr)
        if m:
            return self.resolve(self.locals.get(m.group(1), UNRESOLVED), depth + 1) if m.group(1) in self.locals else UNRESOLVED

        def number(match):
            resolved = self.resolve("${" + match.group(0) + "}", depth + 1)
            if isinstance(resolved, bool) or not isinstance(resolved, (int, float)):
                raise ValueError
            return str(resolved)

        try:
            arithmetic = re.sub(r"(?:var|local)\.\w+", number, expr)
        except ValueError:
            return UNRESOLVED
        if re.fullmatch(r"[\d\s+\-*/().]+", arithmetic):
            result = eval(arithmetic, {"__builtins__": {}}, {})  # digits and operators only
            return int(result) if float(result).is_integer() else result
        return UNRESOLVED

    def resources_of(self, rtype: str) -> dict[str, dict]:
        return {name: body for (t, name), body in self.resources.items() if t == rtype}


def refs(text: str, pattern: str) -> set:
    return set(re.findall(pattern, text))


VAR_REF = r"(?<![\w.])var\.([A-Za-z_][\w-]*)"
LOCAL_REF = r"(?<![\w.])local\.([A-Za-z_]\w*)"
DATA_REF = r"(?<![\w.])data\.([A-Za-z_]\w*)\.([A-Za-z_][\w-]*)"


def resource_ref_pattern(prefixes) -> str:
    alternatives = "|".join(sorted(re.escape(p) for p in prefixes))
    return rf"(?<![\w.])((?:{alternatives})_\w+)\.([A-Za-z_][\w-]*)"


# --- The groups ------------------------------------------------------------------------------------


def check_versions(cfg: Config) -> set[str]:
    providers = {}
    with Group("versions") as g:
        terraform = cfg.terraform[0] if cfg.terraform else {}
        g.check(bool(cfg.terraform), "no terraform {} block")
        required_version = literal(terraform.get("required_version"))
        g.check(isinstance(required_version, str) and ">=" in required_version, "terraform.required_version is not a '>=' constraint")
        for entry in blocks(terraform, "required_providers"):
            for local_name, spec in entry.items():
                if local_name.startswith("__") or not isinstance(spec, dict):
                    continue
                providers[local_name] = {k: literal(v) for k, v in spec.items() if not k.startswith("__")}
        aws = providers.get("aws", {})
        g.check(aws.get("source") == "hashicorp/aws", "required_providers.aws.source is not hashicorp/aws")
        version = aws.get("version")
        g.check(isinstance(version, str) and re.fullmatch(r"~>\s*[56]\.\d+(\.\d+)?", version or "") is not None,
                f"required_providers.aws.version is {version!r}, expected a pessimistic ~> 5.x / 6.x pin")
        for name, spec in providers.items():
            g.check(bool(spec.get("source")) and bool(spec.get("version")), f"provider {name} has no source or no version")
        used = {t.split("_", 1)[0] for t, _ in list(cfg.resources) + list(cfg.data)}
        for prefix in sorted(used - set(providers)):
            g.check(False, f"resources of provider {prefix} are used but {prefix} is not in required_providers")
        g.check(any(unquote(k) == "aws" for p in cfg.providers for k in p), "no provider \"aws\" block")
        g.note(f"terraform {required_version}; " + ", ".join(f"{n} {s.get('version')}" for n, s in sorted(providers.items())))
    return set(providers) | {"aws"}


def check_references(cfg: Config, prefixes: set[str]) -> None:
    with Group("references") as g:
        resource_ref = resource_ref_pattern(prefixes)
        # Where each thing is referenced from (variable blocks excluded: a validation naming
        # its own or another variable is not a use).
        sources: list[tuple[str, object]] = []
        sources += [(f"resource {t}.{n}", body) for (t, n), body in cfg.resources.items()]
        sources += [(f"data {t}.{n}", body) for (t, n), body in cfg.data.items()]
        sources += [(f"local.{n}", value) for n, value in cfg.locals.items()]
        sources += [(f"output {n}", body) for n, body in cfg.outputs.items()]
        sources += [("provider", p) for p in cfg.providers]
        used_vars, used_locals, used_data = set(), set(), set()
        for where, node in sources:
            text = expression_text(node)
            for name in refs(text, VAR_REF):
                used_vars.add(name)
                g.check(name in cfg.variables, f"var.{name} is referenced in {where} but not declared")
            for name in refs(text, LOCAL_REF):
                if where != f"local.{name}":
                    used_locals.add(name)
                g.check(name in cfg.locals, f"local.{name} is referenced in {where} but not declared")
            for dtype, dname in refs(text, DATA_REF):
                used_data.add((dtype, dname))
                g.check((dtype, dname) in cfg.data, f"data.{dtype}.{dname} is referenced in {where} but not declared")
            for rtype, rname in refs(text, resource_ref):
                g.check((rtype, rname) in cfg.resources, f"{rtype}.{rname} is referenced in {where} but not declared")
        # Validations refer to variables that exist.
        for name, body in cfg.variables.items():
            text = expression_text(blocks(body, "validation"))
            for other in refs(text, VAR_REF):
                g.check(other in cfg.variables, f"variable {name}'s validation refers to undeclared var.{other}")
        for name, body in sorted(cfg.variables.items()):
            where = cfg.variable_files[name]
            g.check(where == "variables.tf", f"variable {name} is declared in {where}, not variables.tf")
            description = literal(body.get("description"))
            g.check(isinstance(description, str) and description.strip() != "", f"variable {name} has no description")
            g.check("type" in body, f"variable {name} has no type")
            g.check(name in used_vars, f"variable {name} is declared but never used")
            check_default_type(g, name, body)
            for validation in blocks(body, "validation"):
                g.check("condition" in validation, f"variable {name}: a validation has no condition")
                message = literal(validation.get("error_message"))
                g.check(isinstance(message, str) and re.match(r"[A-Z]", message or "") is not None and message.rstrip().endswith((".", "?")),
                        f"variable {name}: error_message must be a sentence (capital first, full stop last)")
                g.check(f"var.{name}" in expression_text(validation.get("condition", "")),
                        f"variable {name}: a validation condition does not refer to var.{name}")
        for name in sorted(set(cfg.locals) - used_locals):
            g.check(False, f"local.{name} is declared but never used")
        for dtype, dname in sorted(set(cfg.data) - used_data):
            g.check(False, f"data.{dtype}.{dname} is declared but never used")
        for name, body in sorted(cfg.outputs.items()):
            description = literal(body.get("description"))
            g.check(isinstance(description, str) and description.strip() != "", f"output {name} has no description")
            g.check("value" in body, f"output {name} has no value")
        g.note(f"{len(cfg.variables)} variables, {len(cfg.locals)} locals, {len(cfg.resources)} resources, "
               f"{len(cfg.data)} data sources, {len(cfg.outputs)} outputs")


def check_default_type(g: Group, name: str, body: dict) -> None:
    if "default" not in body:
        return
    declared = body.get("type", "")
    declared = declared[2:-1] if isinstance(declared, str) and declared.startswith("${") else str(declared)
    default = body["default"]
    value = literal(default)
    if value is None:
        return
    kind = declared.split("(")[0].strip()
    if kind == "number":
        g.check(isinstance(value, (int, float)) and not isinstance(value, bool), f"variable {name}: default is not a number")
    elif kind == "bool":
        g.check(isinstance(value, bool), f"variable {name}: default is not a bool")
    elif kind == "string":
        g.check(isinstance(value, str), f"variable {name}: default is not a string")
    elif kind in ("list", "set"):
        g.check(isinstance(default, list), f"variable {name}: default is not a list")
    elif kind == "map":
        g.check(isinstance(default, dict), f"variable {name}: default is not a map")


def refers(value, pattern: str) -> bool:
    return re.search(pattern, expression_text(value)) is not None


def check_api_asg(cfg: Config) -> None:
    with Group("api-asg") as g:
        asg = cfg.resources.get(("aws_autoscaling_group", "api"))
        if not g.check(asg is not None, "no aws_autoscaling_group.api"):
            return
        min_size, max_size = cfg.resolve(asg.get("min_size")), cfg.resolve(asg.get("max_size"))
        g.check(min_size == 2, f"aws_autoscaling_group.api min_size resolves to {show(min_size)}, expected 2")
        g.check(max_size == 10, f"aws_autoscaling_group.api max_size resolves to {show(max_size)}, expected 10")
        g.check(literal(asg.get("health_check_type")) == "ELB", "aws_autoscaling_group.api health_check_type is not ELB")
        grace = cfg.resolve(asg.get("health_check_grace_period"))
        g.check(isinstance(grace, (int, float)) and grace > 0, "aws_autoscaling_group.api has no health_check_grace_period > 0")
        g.check(refers(asg.get("target_group_arns", []), r"aws_lb_target_group\.\w+\.arn"),
                "aws_autoscaling_group.api is not attached to an aws_lb_target_group (target_group_arns)")
        template = block(asg, "launch_template")
        g.check(refers(template.get("version"), r"aws_launch_template\.\w+\.latest_version"),
                "aws_autoscaling_group.api launch_template.version is not the template's latest_version (no refresh on change)")
        refresh = block(asg, "instance_refresh")
        g.check(literal(refresh.get("strategy")) == "Rolling", "aws_autoscaling_group.api has no Rolling instance_refresh")
        healthy = cfg.resolve(block(refresh, "preferences").get("min_healthy_percentage"))
        g.check(isinstance(healthy, (int, float)) and healthy >= 90,
                f"aws_autoscaling_group.api instance refresh min_healthy_percentage is {show(healthy)}, expected >= 90")
        policies = [
            (name, body) for name, body in cfg.resources_of("aws_autoscaling_policy").items()
            if refers(body.get("autoscaling_group_name"), r"aws_autoscaling_group\.api\b")
        ]
        tracking = []
        for name, body in policies:
            configuration = block(body, "target_tracking_configuration")
            metric = literal(block(configuration, "predefined_metric_specification").get("predefined_metric_type"))
            if literal(body.get("policy_type")) == "TargetTrackingScaling" and metric == "ASGAverageCPUUtilization":
                tracking.append((name, cfg.resolve(configuration.get("target_value"))))
        g.check(bool(tracking), "no TargetTrackingScaling policy on ASGAverageCPUUtilization for aws_autoscaling_group.api")
        for name, target in tracking:
            g.check(target == 70, f"aws_autoscaling_policy.{name} target_value resolves to {show(target)}, expected 70")
        schedules = {
            name: body for name, body in cfg.resources_of("aws_autoscaling_schedule").items()
            if refers(body.get("autoscaling_group_name"), r"aws_autoscaling_group\.api\b")
        }
        g.check(len(schedules) >= 2, f"{len(schedules)} scheduled actions on aws_autoscaling_group.api, expected a scale-up and a scale-down")
        minimums = []
        for name, body in schedules.items():
            g.check(literal(body.get("recurrence")) is not None, f"aws_autoscaling_schedule.{name} has no recurrence")
            count = count_of(cfg, body)
            g.check(count != 0, f"aws_autoscaling_schedule.{name} is off by default (count resolves to {show(count)})")
            scheduled_min, scheduled_max = cfg.resolve(body.get("min_size")), cfg.resolve(body.get("max_size"))
            g.check(isinstance(scheduled_min, int) and isinstance(max_size, int) and 0 <= scheduled_min <= max_size,
                    f"aws_autoscaling_schedule.{name} min_size resolves to {show(scheduled_min)}, not within 0..max_size")
            g.check(scheduled_max == max_size, f"aws_autoscaling_schedule.{name} max_size resolves to {show(scheduled_max)}, not the group's {show(max_size)}")
            g.check(cfg.resolve(body.get("desired_capacity")) == -1,
                    f"aws_autoscaling_schedule.{name} sets desired_capacity (use -1: it would override target tracking)")
            minimums.append(scheduled_min)
        g.check(any(isinstance(m, int) and isinstance(min_size, int) and m > min_size for m in minimums),
                "no scheduled action raises the API's minimum above min_size (business-hours scale-up)")
        g.check(any(m == min_size for m in minimums), "no scheduled action returns the API's minimum to min_size (night scale-down)")
        g.note(f"min {show(min_size)}, max {show(max_size)}, CPU target {', '.join(show(t) for _, t in tracking)} %, "
               f"{len(schedules)} scheduled actions (minimums {', '.join(show(m) for m in minimums)}), refresh >= {show(healthy)} % healthy")


def count_of(cfg: Config, body: dict):
    """A resource's count: 1 without one; `var.flag ? 1 : 0` follows the flag's default."""
    if "count" not in body:
        return 1
    value = body["count"]
    m = re.fullmatch(r"\$\{\s*(var\.\w+)\s*\?\s*(\d+)\s*:\s*(\d+)\s*\}", value) if isinstance(value, str) else None
    if m:
        flag = cfg.resolve("${" + m.group(1) + "}")
        return UNRESOLVED if not isinstance(flag, bool) else int(m.group(2) if flag else m.group(3))
    return cfg.resolve(value)


def check_worker_asg(cfg: Config) -> None:
    with Group("worker-asg") as g:
        asg = cfg.resources.get(("aws_autoscaling_group", "worker"))
        if not g.check(asg is not None, "no aws_autoscaling_group.worker"):
            return
        min_size = cfg.resolve(asg.get("min_size"))
        g.check(isinstance(min_size, int) and min_size >= 1, f"aws_autoscaling_group.worker min_size resolves to {show(min_size)}, expected >= 1")
        template = block(asg, "launch_template")
        g.check(refers(template.get("id"), r"aws_launch_template\.worker\.id"), "aws_autoscaling_group.worker does not use aws_launch_template.worker")
        g.check(refers(template.get("version"), r"aws_launch_template\.worker\.latest_version"),
                "aws_autoscaling_group.worker launch_template.version is not latest_version")
        g.check(not asg.get("target_group_arns"), "aws_autoscaling_group.worker is attached to a target group (workers serve no traffic)")
        g.note(f"min {show(min_size)}, max {show(cfg.resolve(asg.get('max_size')))}")


def check_launch_templates(cfg: Config) -> None:
    with Group("launch") as g:
        templates = cfg.resources_of("aws_launch_template")
        g.check(len(templates) >= 2, f"{len(templates)} launch templates, expected api and worker")
        for name, body in templates.items():
            metadata = block(body, "metadata_options")
            g.check(literal(metadata.get("http_tokens")) == "required", f"aws_launch_template.{name}: IMDSv2 not required (metadata_options.http_tokens)")
            g.check(literal(metadata.get("http_endpoint")) in ("enabled", None), f"aws_launch_template.{name}: metadata endpoint disabled (the S3 client needs IMDS credentials)")
            hops = cfg.resolve(metadata.get("http_put_response_hop_limit", 1))
            g.check(isinstance(hops, int) and hops <= 2, f"aws_launch_template.{name}: hop limit {show(hops)} > 2")
            roots = [b for b in blocks(body, "block_device_mappings") if literal(b.get("device_name")) == "/dev/xvda"]
            if g.check(bool(roots), f"aws_launch_template.{name}: no root volume mapping (/dev/xvda)"):
                ebs = block(roots[0], "ebs")
                g.check(literal(ebs.get("encrypted")) is True, f"aws_launch_template.{name}: root volume not encrypted")
                g.check(literal(ebs.get("volume_type")) == "gp3", f"aws_launch_template.{name}: root volume not gp3")
            g.check("iam_instance_profile" in body, f"aws_launch_template.{name}: no instance profile")
            g.check(re.search(r'templatefile\("\$\{path\.module\}/templates/', raw_expression_text(body.get("user_data", ""))) is not None,
                    f"aws_launch_template.{name}: user_data is not rendered from templates/")
        g.note(f"{', '.join(sorted(templates))}: IMDSv2 required, encrypted gp3 root")


def check_alb(cfg: Config) -> None:
    with Group("alb") as g:
        groups = cfg.resources_of("aws_lb_target_group")
        if not g.check(bool(groups), "no aws_lb_target_group"):
            return
        drain = cfg.resolve("${var.shutdown_delay_seconds + var.shutdown_timeout_seconds}")
        shutdown_delay = cfg.resolve("${var.shutdown_delay_seconds}")
        for name, body in groups.items():
            g.check(cfg.resolve(body.get("port")) == 8080 and literal(body.get("protocol")) == "HTTP", f"aws_lb_target_group.{name} is not HTTP on 8080")
            check = block(body, "health_check")
            g.check(literal(check.get("path")) == "/readyz", f"aws_lb_target_group.{name} health check path is {show(literal(check.get('path')))}, expected /readyz")
            g.check(literal(check.get("matcher")) in ("200", None), f"aws_lb_target_group.{name} health check matcher is not 200")
            stickiness = block(body, "stickiness")
            g.check(not stickiness or literal(stickiness.get("enabled")) is False, f"aws_lb_target_group.{name} has stickiness on")
            delay = cfg.resolve(body.get("deregistration_delay"))
            g.check(isinstance(delay, int) and delay == drain,
                    f"aws_lb_target_group.{name} deregistration_delay resolves to {show(delay)}, expected the drain "
                    f"(shutdown_delay_seconds + shutdown_timeout_seconds = {show(drain)})")
            interval, unhealthy = cfg.resolve(check.get("interval", 30)), cfg.resolve(check.get("unhealthy_threshold", 3))
            if isinstance(interval, int) and isinstance(unhealthy, int) and isinstance(shutdown_delay, int):
                g.check(interval * unhealthy < shutdown_delay,
                        f"the target group needs {interval * unhealthy} s to see a draining instance's 503, "
                        f"longer than shutdown_delay_seconds ({shutdown_delay} s)")
            g.note(f"{name}: /readyz every {show(interval)} s, deregistration delay {show(delay)} s")
        listeners = cfg.resources_of("aws_lb_listener")
        https = [b for b in listeners.values() if cfg.resolve(b.get("port")) == 443]
        if g.check(len(https) == 1, "no HTTPS listener on 443"):
            g.check(literal(https[0].get("protocol")) == "HTTPS", "the 443 listener is not HTTPS")
            g.check(refers(https[0].get("certificate_arn"), r"var\.certificate_arn"), "the HTTPS listener's certificate is not var.certificate_arn")
            g.check(literal(https[0].get("ssl_policy")) is not None or "ssl_policy" in https[0], "the HTTPS listener has no ssl_policy")
            g.check(refers(block(https[0], "default_action").get("target_group_arn"), r"aws_lb_target_group\."), "the HTTPS listener does not forward to the target group")
        http = [b for b in listeners.values() if cfg.resolve(b.get("port")) == 80]
        if g.check(len(http) == 1, "no HTTP listener on 80"):
            action = block(http[0], "default_action")
            redirect = block(action, "redirect")
            g.check(literal(action.get("type")) == "redirect" and literal(redirect.get("protocol")) == "HTTPS"
                    and literal(redirect.get("status_code")) == "HTTP_301", "the HTTP listener does not redirect to HTTPS (301)")
        for name, body in cfg.resources_of("aws_lb").items():
            g.check(literal(body.get("internal")) is not True, f"aws_lb.{name} is internal")
            g.check(literal(body.get("drop_invalid_header_fields")) is True, f"aws_lb.{name} does not drop invalid header fields")


def check_rds(cfg: Config) -> None:
    with Group("rds") as g:
        instances = cfg.resources_of("aws_db_instance")
        primaries = {n: b for n, b in instances.items() if "replicate_source_db" not in b}
        replicas = {n: b for n, b in instances.items() if "replicate_source_db" in b}
        if not g.check(len(primaries) == 1, f"{len(primaries)} primary aws_db_instance, expected 1"):
            return
        (primary_name, primary), = primaries.items()
        where = f"aws_db_instance.{primary_name}"
        g.check(literal(primary.get("engine")) == "postgres", f"{where} engine is not postgres")
        version = cfg.resolve(primary.get("engine_version"))
        major = int(str(version).split(".")[0]) if isinstance(version, (str, int)) and str(version).split(".")[0].isdigit() else None
        g.check(major is not None and major >= 15, f"{where} engine_version resolves to {show(version)}, expected 15 or later")
        g.check(cfg.resolve(primary.get("multi_az")) is True, f"{where} multi_az is not true")
        g.check(cfg.resolve(primary.get("storage_encrypted")) is True, f"{where} storage_encrypted is not true")
        retention = cfg.resolve(primary.get("backup_retention_period"))
        g.check(isinstance(retention, int) and retention > 0, f"{where} backup_retention_period resolves to {show(retention)}, expected > 0 (backups, PITR)")
        g.check(cfg.resolve(primary.get("deletion_protection")) is True, f"{where} deletion_protection is not true")
        g.check(cfg.resolve(primary.get("skip_final_snapshot")) is not True, f"{where} skips its final snapshot")
        g.check(cfg.resolve(primary.get("performance_insights_enabled")) is True, f"{where} performance_insights_enabled is not true")
        g.check(cfg.resolve(primary.get("publicly_accessible")) is not True, f"{where} is publicly accessible")
        g.check(refers(primary.get("parameter_group_name"), r"aws_db_parameter_group\.\w+\.name"), f"{where} does not use an aws_db_parameter_group")
        g.check(literal(primary.get("password")) is UNRESOLVED or "password" not in primary, f"{where} password is a literal")
        force_ssl = [literal(p.get("value")) for body in cfg.resources_of("aws_db_parameter_group").values()
                     for p in blocks(body, "parameter") if literal(p.get("name")) == "rds.force_ssl"]
        g.check(force_ssl == ["1"], "the parameter group does not set rds.force_ssl = 1")
        g.check(bool(replicas), "no read replica (aws_db_instance with replicate_source_db)")
        for name, body in replicas.items():
            g.check(refers(body.get("replicate_source_db"), rf"aws_db_instance\.{primary_name}\.(identifier|arn|id)\b"),
                    f"aws_db_instance.{name} does not replicate aws_db_instance.{primary_name}")
            count = cfg.resolve(body.get("count"))
            g.check(count == 2, f"aws_db_instance.{name} count resolves to {show(count)}, expected a default of 2 replicas")
            g.check(cfg.resolve(body.get("publicly_accessible")) is not True, f"aws_db_instance.{name} is publicly accessible")
        g.note(f"{primary_name}: postgres {show(version)}, Multi-AZ, encrypted, {show(retention)} days of backups; "
               + ", ".join(f"{n} x{show(cfg.resolve(b.get('count')))}" for n, b in replicas.items()))


def check_redis(cfg: Config) -> None:
    with Group("redis") as g:
        groups = cfg.resources_of("aws_elasticache_replication_group")
        if not g.check(bool(groups), "no aws_elasticache_replication_group"):
            return
        for name, body in groups.items():
            where = f"aws_elasticache_replication_group.{name}"
            for attribute in ("automatic_failover_enabled", "multi_az_enabled", "at_rest_encryption_enabled", "transit_encryption_enabled"):
                g.check(cfg.resolve(body.get(attribute)) is True, f"{where} {attribute} is not true")
            g.check(literal(body.get("transit_encryption_mode")) in ("required", None), f"{where} accepts clients without TLS")
            token = body.get("auth_token")
            g.check(token is not None and literal(token) is UNRESOLVED, f"{where} auth_token is missing or a literal")
            g.check(refers(token, r"aws_secretsmanager_secret_version\.\w+\.secret_string"), f"{where} auth_token is not read from Secrets Manager")
            g.check("auth_token_update_strategy" in body, f"{where} has no auth_token_update_strategy (required by provider 6 with auth_token)")
            nodes = cfg.resolve(body.get("num_cache_clusters"))
            g.check(isinstance(nodes, int) and nodes >= 2, f"{where} num_cache_clusters resolves to {show(nodes)}, expected >= 2")
            g.note(f"{name}: {show(nodes)} nodes, failover, Multi-AZ, TLS, encrypted at rest")


def check_s3(cfg: Config) -> None:
    with Group("s3") as g:
        buckets = cfg.resources_of("aws_s3_bucket")
        if not g.check(bool(buckets), "no aws_s3_bucket"):
            return
        for name in buckets:
            mine = rf"aws_s3_bucket\.{name}\.(id|bucket)\b"

            def for_bucket(rtype):
                return [b for b in cfg.resources_of(rtype).values() if refers(b.get("bucket"), mine)]

            blocks_public = for_bucket("aws_s3_bucket_public_access_block")
            if g.check(len(blocks_public) == 1, f"aws_s3_bucket.{name} has no public access block"):
                for attribute in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"):
                    g.check(literal(blocks_public[0].get(attribute)) is True, f"aws_s3_bucket.{name} public access block: {attribute} is not true")
            versioning = for_bucket("aws_s3_bucket_versioning")
            g.check(len(versioning) == 1 and literal(block(versioning[0], "versioning_configuration").get("status")) == "Enabled",
                    f"aws_s3_bucket.{name} versioning is not Enabled")
            encryption = for_bucket("aws_s3_bucket_server_side_encryption_configuration")
            algorithm = literal(block(block(encryption[0], "rule"), "apply_server_side_encryption_by_default").get("sse_algorithm")) if encryption else None
            g.check(algorithm in ("AES256", "aws:kms", "aws:kms:dsse"), f"aws_s3_bucket.{name} has no default server-side encryption")
            lifecycles = for_bucket("aws_s3_bucket_lifecycle_configuration")
            if not g.check(len(lifecycles) == 1, f"aws_s3_bucket.{name} has no lifecycle configuration"):
                continue
            rules = blocks(lifecycles[0], "rule")
            for rule in rules:
                rule_id = literal(rule.get("id"))
                g.check(literal(rule.get("status")) == "Enabled", f"lifecycle rule {rule_id} is not Enabled")
                g.check("filter" in rule, f"lifecycle rule {rule_id} has no filter (provider 6 wants one, even empty)")
            abort = [cfg.resolve(block(r, "abort_incomplete_multipart_upload").get("days_after_initiation")) for r in rules if "abort_incomplete_multipart_upload" in r]
            g.check(bool(abort) and all(isinstance(d, int) and d > 0 for d in abort), "no lifecycle rule aborts incomplete multipart uploads")
            noncurrent = [cfg.resolve(block(r, "noncurrent_version_expiration").get("noncurrent_days")) for r in rules if "noncurrent_version_expiration" in r]
            g.check(bool(noncurrent) and all(isinstance(d, int) and d > 0 for d in noncurrent), "no lifecycle rule expires noncurrent versions")
            exports = [cfg.resolve(block(r, "expiration").get("days")) for r in rules
                       if literal(block(r, "filter").get("prefix")) == "exports/" and "expiration" in r]
            g.check(bool(exports) and all(isinstance(d, int) and d > 0 for d in exports), "no lifecycle rule expires exports/ after N days")
            g.note(f"{name}: private, versioned, {algorithm}; exports expire after {', '.join(map(show, exports))} d, "
                   f"noncurrent after {', '.join(map(show, noncurrent))} d, multipart aborted after {', '.join(map(show, abort))} d")


def check_network(cfg: Config) -> None:
    with Group("network") as g:
        azs = cfg.locals.get("azs")
        g.check(isinstance(azs, str) and re.search(r"slice\([^,]+,\s*0,\s*3\)", azs) is not None, "local.azs is not 3 availability zones")
        subnets = cfg.resources_of("aws_subnet")
        for tier in ("public", "private", "database"):
            g.check(tier in subnets and refers(subnets[tier].get("count"), r"local\.azs"), f"no aws_subnet.{tier} per AZ")
        nat = cfg.resources_of("aws_nat_gateway")
        g.check(bool(nat) and refers(next(iter(nat.values())).get("count"), r"var\.nat_gateway_per_az"),
                "no NAT gateways switchable between one per AZ and one (var.nat_gateway_per_az)")
        for name, body in cfg.resources_of("aws_security_group").items():
            g.check("ingress" not in body and "egress" not in body, f"aws_security_group.{name} has inline rules (use the rule resources)")
        ingress = cfg.resources_of("aws_vpc_security_group_ingress_rule")
        expected = {"alb": {80, 443}, "api": {8080}, "db": {5432}, "redis": {6379}}
        seen: dict[str, set] = {}
        for name, body in ingress.items():
            target = re.search(r"aws_security_group\.(\w+)\.id", expression_text(body.get("security_group_id")))
            group = target.group(1) if target else "?"
            port = cfg.resolve(body.get("from_port"))
            g.check(port == cfg.resolve(body.get("to_port")), f"aws_vpc_security_group_ingress_rule.{name} opens a port range")
            seen.setdefault(group, set()).add(port)
            from_cidr = "cidr_ipv4" in body or "cidr_ipv6" in body
            if group == "alb":
                g.check(port in (80, 443), f"the ALB accepts port {show(port)} (only 80 and 443)")
            else:
                g.check(not from_cidr, f"aws_vpc_security_group_ingress_rule.{name}: {group} accepts traffic from a CIDR, not a security group")
            source = re.search(r"aws_security_group\.(\w+)\.id", expression_text(body.get("referenced_security_group_id"))) or \
                re.search(r"aws_security_group\.(\w+)\.id", expression_text(body.get("for_each", "")))
            if group == "api":
                g.check(source is not None and source.group(1) == "alb", "the API accepts traffic from something other than the ALB")
            if group in ("db", "redis"):
                g.check(source is not None and source.group(1) in ("api", "worker"), f"{group} accepts traffic from something other than the app")
        for group, ports in expected.items():
            g.check(seen.get(group) == ports, f"security group {group} opens {sorted(map(show, seen.get(group, [])))}, expected {sorted(ports)}")
        g.check(not set(seen) - set(expected), f"unexpected ingress on {sorted(set(seen) - set(expected))}")
        g.note("ALB <- clients 443/80, api <- ALB 8080, RDS <- app 5432, Redis <- app 6379")


def check_alarms(cfg: Config) -> None:
    with Group("alarms") as g:
        alarms = cfg.resources_of("aws_cloudwatch_metric_alarm")
        found = {}
        for name, body in alarms.items():
            metrics = [(literal(body.get("namespace")), literal(body.get("metric_name")))]
            for query in blocks(body, "metric_query"):
                metric = block(query, "metric")
                if metric:
                    metrics.append((literal(metric.get("namespace")), literal(metric.get("metric_name"))))
            for metric in metrics:
                found.setdefault(metric, []).append((name, body))
            g.check(refers(body.get("alarm_actions", []), r"aws_sns_topic\.\w+\.arn|local\.alarm_actions"),
                    f"aws_cloudwatch_metric_alarm.{name} does not notify the SNS topic")
            description = body.get("alarm_description")
            g.check(description is not None and "Runbook" in str(description), f"aws_cloudwatch_metric_alarm.{name} has no runbook in its description")
        wanted = {
            ("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count"): "ALB target 5xx rate",
            ("AWS/ApplicationELB", "TargetResponseTime"): "ALB p95 response time",
            ("AWS/ApplicationELB", "UnHealthyHostCount"): "unhealthy hosts",
            ("AWS/EC2", "CPUUtilization"): "ASG CPU",
            ("AWS/RDS", "CPUUtilization"): "RDS CPU",
            ("AWS/RDS", "FreeStorageSpace"): "RDS free storage",
            ("AWS/RDS", "ReplicaLag"): "RDS replica lag",
            ("AWS/ElastiCache", "EngineCPUUtilization"): "Redis CPU",
            ("AWS/ElastiCache", "DatabaseMemoryUsagePercentage"): "Redis memory",
            ("AWS/ElastiCache", "Evictions"): "Redis evictions",
        }
        for metric, label in wanted.items():
            g.check(metric in found, f"no alarm on {label} ({metric[0]} {metric[1]})")
        for name, body in found.get(("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count"), []):
            g.check(any("RequestCount" in str(q) for q in blocks(body, "metric_query")), f"aws_cloudwatch_metric_alarm.{name} alarms on a 5xx count, not a rate of requests")
        for name, body in found.get(("AWS/ApplicationELB", "TargetResponseTime"), []):
            g.check(literal(body.get("extended_statistic")) == "p95" and cfg.resolve(body.get("threshold")) == 0.5,
                    f"aws_cloudwatch_metric_alarm.{name} is not p95 > 0.5 s")
        for name, body in found.get(("AWS/EC2", "CPUUtilization"), []):
            g.check(cfg.resolve(body.get("threshold")) == 85 and refers(body.get("dimensions"), r"aws_autoscaling_group\.api\.name"),
                    f"aws_cloudwatch_metric_alarm.{name} is not the API group's CPU > 85 %")
        subscriptions = cfg.resources_of("aws_sns_topic_subscription")
        g.check(any(literal(s.get("protocol")) == "email" and refers(s.get("endpoint"), r"each\.value|var\.") for s in subscriptions.values()),
                "no e-mail subscription to the alarm topic from a variable")
        g.note(f"{len(alarms)} alarm resources covering {len([m for m in wanted if m in found])}/{len(wanted)} required metrics")


def check_secrets(cfg: Config, template_texts: dict[str, str], example: str | None) -> None:
    with Group("secrets") as g:
        # 1. No literal values under secret-looking names, nor literals shaped like credentials.
        nodes = [(f"{t}.{n}", b) for (t, n), b in cfg.resources.items()] + [(f"data.{t}.{n}", b) for (t, n), b in cfg.data.items()]
        nodes += [(f"local.{n}", v) for n, v in cfg.locals.items()] + [(f"output.{n}", b) for n, b in cfg.outputs.items()]
        nodes += [(f"variable.{n}", b.get("default")) for n, b in cfg.variables.items() if "default" in b]
        for where, node in nodes:
            for problem in secret_literals(node):
                g.check(False, f"{where}: {problem}")
        for name, text in template_texts.items():
            for pattern, what in SECRET_LITERAL:
                g.check(not pattern.search(text), f"{name}: a literal that looks like {what}")
            for m in re.finditer(r"^\s*((?:OUTGROW|AWS)_[A-Z0-9_]+)=(\S+)", text, re.M):
                g.check(not SECRET_KEY.search(m.group(1).lower()), f"{name}: sets {m.group(1)} in clear")
        # 2. Generated secrets flow only into Secrets Manager, RDS and ElastiCache.
        allowed = {
            "random_password": (r"random_password\.\w+\.result", {"aws_secretsmanager_secret_version", "aws_db_instance"}),
            "secret_string": (r"aws_secretsmanager_secret_version\.\w+\.secret_string", {"aws_elasticache_replication_group"}),
        }
        for label, (pattern, sinks) in allowed.items():
            for (rtype, rname), body in cfg.resources.items():
                if re.search(pattern, expression_text(body)):
                    g.check(rtype in sinks, f"{rtype}.{rname} uses a generated secret ({label}); only {', '.join(sorted(sinks))} may")
            for name, value in cfg.locals.items():
                g.check(not re.search(pattern, expression_text(value)), f"local.{name} holds a generated secret (locals reach user data and outputs)")
            for name, body in cfg.outputs.items():
                g.check(not re.search(pattern, expression_text(body)), f"output {name} exposes a generated secret")
        for (rtype, rname), body in cfg.resources.items():
            if rtype == "aws_launch_template":
                g.check(not re.search(r"random_password|secret_string", expression_text(body)), f"aws_launch_template.{rname} user data carries a secret")
        # 3. The example tfvars: only declared variables, no secrets, every required one shown.
        if example is not None:
            try:
                values = hcl2.loads(example, serialization_options=SerializationOptions(with_comments=False))
            except Exception as error:
                g.check(False, f"terraform.tfvars.example does not parse: {str(error).splitlines()[0]}")
                values = {}
            for key, value in values.items():
                if key.startswith("__"):
                    continue
                g.check(key in cfg.variables, f"terraform.tfvars.example sets undeclared variable {key}")
                g.check(not SECRET_KEY.search(key.lower()), f"terraform.tfvars.example sets {key}, a secret")
            for problem in secret_literals(values):
                g.check(False, f"terraform.tfvars.example: {problem}")
            required = sorted(n for n, b in cfg.variables.items() if "default" not in b)
            for name in required:
                g.check(name in values, f"terraform.tfvars.example does not set required variable {name}")
            g.note(f"example tfvars sets {len([k for k in values if not k.startswith('__')])} variables incl. the required {', '.join(required)}")


def secret_literals(node) -> list[str]:
    """Literal values under secret-looking names (attributes, object keys inside expressions,
    env var names), and literals shaped like credentials, anywhere below node."""
    problems = []
    for key, value in items(node):
        value_literal = literal(value)
        if SECRET_KEY.search(unquote(key).lower()) and isinstance(value_literal, str) and value_literal != "":
            problems.append(f"{unquote(key)} is the literal {value_literal[:4]}… (a hard-coded secret)")
    for text in strings(node):
        for m in re.finditer(r'"?\b(\w+)"?\s*=\s*"([^"$%]*)"', "\n".join(expressions(text))):
            if SECRET_KEY.search(m.group(1).lower()) and m.group(2):
                problems.append(f"{m.group(1)} is the literal {m.group(2)[:4]}… (a hard-coded secret)")
        for pattern, what in SECRET_LITERAL:
            if pattern.search(text):
                problems.append(f"a literal that looks like {what}")
    return problems


TEMPLATE_KEYWORDS = {"for", "in", "if", "else", "endif", "endfor", "true", "false", "null"}


def template_inputs(text: str) -> set[str]:
    """The names a Terraform template reads (its ${...} and %{...} expressions)."""
    used, bound = set(), set()
    for m in re.finditer(r"(?<!\$)%\{~?\s*for\s+(\w+)(?:\s*,\s*(\w+))?\s+in\b", text):
        bound.update(x for x in m.groups() if x)
    for m in re.finditer(r"(?<![$%])([$%])\{([^}]*)\}", text):
        expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', m.group(2))
        for name in re.findall(r"(?<![\w.])([A-Za-z_]\w*)\b(?!\s*\()", expr):
            if name not in TEMPLATE_KEYWORDS:
                used.add(name)
    return used - bound


def check_user_data(cfg: Config, settings_file: str | None) -> dict[str, str]:
    texts: dict[str, str] = {}
    with Group("user-data") as g:
        common = cfg.locals.get("user_data_common")
        roles = cfg.locals.get("user_data_roles")
        if not g.check(isinstance(common, dict) and isinstance(roles, dict), "local.user_data_common / local.user_data_roles are not objects"):
            return texts
        role_keys = [set(k for k in v if not k.startswith("__")) for v in roles.values() if isinstance(v, dict)]
        g.check(all(keys == role_keys[0] for keys in role_keys), "the roles in local.user_data_roles do not all set the same inputs")
        provided = set(k for k in common if not k.startswith("__")) | (role_keys[0] if role_keys else set())
        paths = set()
        for name, body in cfg.resources_of("aws_launch_template").items():
            text = raw_expression_text(body.get("user_data", ""))
            m = re.search(r'templatefile\("\$\{path\.module\}/([^"]+)"', text)
            if not g.check(m is not None, f"aws_launch_template.{name} user_data is not a templatefile()"):
                continue
            g.check("local.user_data_common" in text and re.search(r"local\.user_data_roles\[\"\w+\"\]", text) is not None,
                    f"aws_launch_template.{name} does not pass local.user_data_common and its role's inputs")
            paths.add(m.group(1))
        for relative in sorted(paths):
            path = os.path.join(cfg.directory, relative)
            if not g.check(os.path.isfile(path), f"{relative} does not exist"):
                continue
            text = open(path, encoding="utf-8").read()
            texts[relative] = text
            used = template_inputs(text)
            for name in sorted(used - provided):
                g.check(False, f"{relative} reads ${{{name}}}, which compute.tf does not pass")
            for name in sorted(provided - used):
                g.check(False, f"compute.tf passes {name}, which {relative} never reads")
            g.check(text.startswith("#!/bin/bash"), f"{relative} does not start with #!/bin/bash")
        # The settings Outgrow is given, wherever they come from.
        given = set()
        environment = cfg.locals.get("app_environment", "")
        given |= set(re.findall(r"\b((?:OUTGROW|AWS)_[A-Z0-9_]+)\s*=", expression_text(environment)))
        for body in cfg.resources_of("aws_secretsmanager_secret_version").values():
            given |= set(re.findall(r"\b(OUTGROW_[A-Z0-9_]+)\s*=", expression_text(body.get("secret_string", ""))))
        for role in roles.values():
            if isinstance(role, dict):
                given |= {literal(s) for s in role.get("required_settings", []) if isinstance(literal(s), str)}
        for name in REQUIRED_SETTINGS:
            g.check(name in given, f"{name} is not provided (app_environment, a Secrets Manager secret, or a required SSM setting)")
        if settings_file:
            known = outgrow_settings(settings_file)
            g.check(len(known) > 20, f"found only {len(known)} settings in {settings_file}")
            for name in sorted(n for n in given if n.startswith("OUTGROW_")):
                g.check(name in known, f"{name} is not an Outgrow setting ({settings_file})")
            for name in sorted(set(re.findall(r"\b(OUTGROW_[A-Z0-9_]+)\b", expression_text(cfg.variables.get("extra_environment", {}).get("default", {}))))):
                g.check(name in known, f"{name} (extra_environment default) is not an Outgrow setting")
        g.note(f"{', '.join(sorted(texts))}: {len(provided)} inputs, all read; {len(given)} settings provided"
               + (", all known to Outgrow" if settings_file else ""))
    return texts


def check_readme(cfg: Config) -> None:
    with Group("readme") as g:
        path = os.path.join(cfg.directory, "README.md")
        if not g.check(os.path.isfile(path), "README.md is missing"):
            return
        text = open(path, encoding="utf-8").read()
        for name in sorted(cfg.variables):
            g.check(f"| `{name}` |" in text, f"variable {name} is not in README.md's variables table")
        for name in sorted(cfg.outputs):
            g.check(f"| `{name}` |" in text, f"output {name} is not in README.md's outputs table")
        for command in ("terraform init", "terraform plan", "terraform apply", 'backend "s3"', "dynamodb_table"):
            g.check(command in text, f"README.md does not show {command}")
        g.note(f"{len(cfg.variables)} variables and {len(cfg.outputs)} outputs documented")


def outgrow_settings(path: str) -> set[str]:
    """OUTGROW_<KEY> for every key of the settings! table in settings.rs."""
    text = open(path, encoding="utf-8").read()
    start = text.find("settings! {")
    body = text[start:] if start >= 0 else text
    return {"OUTGROW_" + key.upper() for key in re.findall(r"^\s{4}([a-z][a-z0-9_]*):\s", body, re.M)}


def show(value) -> str:
    return "unresolved" if value is UNRESOLVED else repr(value) if isinstance(value, str) else str(value)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory")
    parser.add_argument("--settings", help="Outgrow's settings.rs: every OUTGROW_* given must be one of its keys")
    args = parser.parse_args()

    cfg = Config(args.directory)
    if not cfg.load():
        print("FAIL: the configuration does not parse; nothing else was checked")
        return 1
    example_path = os.path.join(args.directory, "terraform.tfvars.example")
    example = open(example_path, encoding="utf-8").read() if os.path.isfile(example_path) else None
    if example is None:
        print("FAIL example: terraform.tfvars.example is missing")
        FAILURES.append("terraform.tfvars.example is missing")

    prefixes = check_versions(cfg)
    check_references(cfg, prefixes)
    check_api_asg(cfg)
    check_worker_asg(cfg)
    check_launch_templates(cfg)
    check_alb(cfg)
    check_rds(cfg)
    check_redis(cfg)
    check_s3(cfg)
    check_network(cfg)
    check_alarms(cfg)
    templates = check_user_data(cfg, args.settings)
    check_secrets(cfg, templates, example)
    check_readme(cfg)

    if FAILURES:
        print(f"FAIL: {len(FAILURES)} problem(s) in {args.directory}")
        return 1
    print(f"ok: {args.directory} has every fact the runbooks rely on")
    return 0


if __name__ == "__main__":
    sys.exit(main())
