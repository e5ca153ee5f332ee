"""Helpers for tests/deploy/k8s.sh: split a `kubectl kustomize` rendering into the objects the
Kubernetes schemas know and the custom resources, and turn the vendored CRDs into JSON schemas.

  python render_tools.py crd-schemas OUTDIR CRD.yaml…
      One JSON schema per served CRD version, OUTDIR/<group>_<version>_<Kind>.json: the CRD's
      openAPIV3Schema, plus apiVersion/kind pinned and metadata.name required, and strict — an
      object with declared properties accepts no other property (the API server would prune an
      unknown field silently, so a typo would go unnoticed). CEL rules
      (x-kubernetes-validations) are not evaluated.
  python render_tools.py split RENDER OUTDIR SCHEMADIR
      OUTDIR/builtin.yaml: the objects of built-in API groups (for kubernetes-validate);
      OUTDIR/custom/<schema stem>/<n>-<kind>-<name>.yaml: each custom resource, one per file
      (check-jsonschema reads one document per file), grouped by the schema that validates it.
      Fails on a custom resource that no vendored schema covers.
"""

import copy
import json
import pathlib
import re
import sys

import yaml


def strict(schema):
    """Recursively forbids undeclared properties where the CRD declares the object's fields."""
    if isinstance(schema, dict):
        if (
            schema.get("type") == "object"
            and "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        for value in schema.values():
            strict(value)
    elif isinstance(schema, list):
        for value in schema:
            strict(value)
    return schema


def crd_schemas(outdir, crd_paths):
    out = pathlib.Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    for path in crd_paths:
        for crd in yaml.safe_load_all(pathlib.Path(path).read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group = crd["spec"]["group"]
            kind = crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if not version.get("served"):
                    continue
                schema = strict(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
                schema["$schema"] = "http://json-schema.org/draft-07/schema#"
                schema["title"] = f"{kind} {group}/{version['name']} (from {pathlib.Path(path).name})"
                props = schema.setdefault("properties", {})
                props["apiVersion"] = {"const": f"{group}/{version['name']}"}
                props["kind"] = {"const": kind}
                props["metadata"] = {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"type": "string", "minLength": 1}},
                }
                schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata", "spec"})
                target = out / f"{group}_{version['name']}_{kind}.json"
                target.write_text(json.dumps(schema, indent=1))
                print(f"{target.name}: {kind} {group}/{version['name']} from {pathlib.Path(path).name}")


def is_builtin(api_version):
    group = api_version.split("/")[0] if "/" in api_version else ""
    return group == "" or "." not in group or group.endswith(".k8s.io")


def split(render, outdir, schemadir):
    docs = [doc for doc in yaml.safe_load_all(pathlib.Path(render).read_text()) if doc]
    out = pathlib.Path(outdir)
    (out / "custom").mkdir(parents=True, exist_ok=True)
    schemas = {p.stem: p for p in pathlib.Path(schemadir).glob("*.json")}
    builtin, custom, missing = [], 0, []
    for n, doc in enumerate(docs):
        api_version, kind = doc.get("apiVersion", ""), doc.get("kind", "")
        if is_builtin(api_version):
            builtin.append(doc)
            continue
        group, _, version = api_version.partition("/")
        stem = f"{group}_{version}_{kind}"
        if stem not in schemas:
            missing.append(f"{kind} {api_version} {doc.get('metadata', {}).get('name')}")
            continue
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", doc.get("metadata", {}).get("name", "unnamed"))
        target = out / "custom" / stem / f"{n:03d}-{kind}-{name}.yaml"
        target.parent.mkdir(exist_ok=True)
        target.write_text(yaml.safe_dump(doc, sort_keys=False))
        custom += 1
    (out / "builtin.yaml").write_text(yaml.safe_dump_all(builtin, sort_keys=False))
    print(f"{len(builtin)} built-in objects, {custom} custom resources")
    if missing:
        for item in missing:
            print(f"no vendored schema for custom resource {item} (add its CRD under tests/deploy/k8s/schemas/)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "crd-schemas":
        crd_schemas(args[0], args[1:])
    elif command == "split":
        split(*args)
    else:
        sys.exit(f"unknown command {command}")
