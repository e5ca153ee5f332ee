"""A copy of a Prometheus configuration that this machine's promtool can check.

Usage: prometheus_config.py IN.yml OUT.yml

Debian's promtool (package prometheus) is built without Kubernetes service discovery: it
rejects `kubernetes_sd_configs` as an unknown field. The check then runs promtool on this copy,
where each kubernetes_sd_configs block is replaced by an empty static_configs (so everything
else — relabelling, rule files, other jobs — is still checked by promtool) after this script
has checked the block itself: a list of mappings with a valid role and only known keys.
Exits 1 on a malformed block.
"""

import sys

import yaml

ROLES = {"node", "service", "pod", "endpoints", "endpointslice", "ingress"}
KEYS = {
    "role", "namespaces", "selectors", "api_server", "kubeconfig_file", "attach_metadata",
    "basic_auth", "authorization", "oauth2", "proxy_url", "no_proxy", "proxy_from_environment",
    "proxy_connect_header", "follow_redirects", "enable_http2", "tls_config",
}


def main():
    source, target = sys.argv[1:3]
    with open(source, encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    problems = []
    replaced = []
    for job in config.get("scrape_configs") or []:
        blocks = job.pop("kubernetes_sd_configs", None)
        if blocks is None:
            continue
        name = job.get("job_name")
        if not isinstance(blocks, list) or not blocks:
            problems.append(f"job {name}: kubernetes_sd_configs must be a non-empty list")
            continue
        for block in blocks:
            if not isinstance(block, dict):
                problems.append(f"job {name}: a kubernetes_sd_configs entry is not a mapping")
                continue
            if block.get("role") not in ROLES:
                problems.append(f"job {name}: kubernetes_sd_configs role {block.get('role')!r} not in {sorted(ROLES)}")
            unknown = set(block) - KEYS
            if unknown:
                problems.append(f"job {name}: unknown kubernetes_sd_configs keys {sorted(unknown)}")
            namespaces = block.get("namespaces")
            if namespaces is not None and not isinstance(namespaces.get("names", []), list):
                problems.append(f"job {name}: namespaces.names must be a list")
        job.setdefault("static_configs", []).append({"targets": []})
        replaced.append(name)
    for problem in problems:
        print(f"FAIL: {problem}")
    if problems:
        return 1
    with open(target, "w", encoding="utf-8") as handle:
        yaml.safe_dump(config, handle, sort_keys=False)
    if replaced:
        print(f"kubernetes_sd_configs of {', '.join(replaced)} checked here, replaced for promtool")
    return 0


if __name__ == "__main__":
    sys.exit(main())
