"""What the monitoring checks read from PromQL, Grafana and Outgrow's source.

- metric_selectors(expr): the metric names an expression reads, each with the label names of
  its matchers (`{job=~"…", route!~"…"}`). PromQL is not parsed in full: strings, ranges and
  grouping clauses are removed, then an identifier not followed by "(" (a function or an
  aggregation) and not a keyword is a metric name. Grafana's variables ($job, ${datasource},
  $__rate_interval) are removed first.
- grafana_query(query): the PromQL inside a variable's label_values(…, label).
- exported_metrics(crates): the metrics Outgrow's source registers, with their label names:
  describe_*!("name", …), counter!/gauge!/histogram!("name", "label" => …) and
  telemetry::count/observe("name", &[("label", …)]) literals (integration tests and benchmarks
  aside). Histograms also export _bucket (with le), _sum and _count.
"""

import pathlib
import re

KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "bool", "inf", "nan", "start", "end",
}
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_IDENT = re.compile(r"(?<![\w:.])([A-Za-z_:][\w:]*)")
_MATCHER_LABEL = re.compile(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)")


def metric_selectors(expr):
    """[(metric name, {label names matched})] in the order they appear."""
    text = _VARIABLE.sub("1", expr)
    # Label matchers: remember them by position, then blank them out with strings and ranges.
    text = _STRING.sub('""', text)
    found = []
    out = []
    pos = 0
    for match in re.finditer(r"\{([^{}]*)\}", text):
        out.append(text[pos:match.start()])
        out.append(f" \x00{len(found)}\x00 ")
        found.append({m.group(1) for m in _MATCHER_LABEL.finditer(match.group(1))})
        pos = match.end()
    out.append(text[pos:])
    text = "".join(out)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    selectors = []
    for match in _IDENT.finditer(text):
        name = match.group(1)
        rest = text[match.end():]
        if re.match(r"\s*\(", rest) or name.lower() in KEYWORDS:
            continue
        labels = set()
        block = re.match(r"\s*\x00(\d+)\x00", rest)
        if block:
            labels = found[int(block.group(1))]
        selectors.append((name, labels))
    return selectors


def grafana_query(query):
    """The PromQL a Grafana variable's query evaluates (label_values(expr, label) → expr)."""
    if isinstance(query, dict):
        query = query.get("query", "")
    query = query.strip()
    match = re.fullmatch(r"label_values\((.*),\s*\w+\s*\)", query, re.S)
    if match:
        return match.group(1)
    if re.fullmatch(r"label_values\(\s*\w+\s*\)", query):
        return ""
    match = re.fullmatch(r"query_result\((.*)\)", query, re.S)
    if match:
        return match.group(1)
    return query


def _call_arguments(text, open_paren):
    """The text between the parenthesis at open_paren and its match."""
    depth = 0
    index = open_paren
    while index < len(text):
        char = text[index]
        if char == '"':
            index += 1
            while index < len(text) and text[index] != '"':
                index += 2 if text[index] == "\\" else 1
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0:
                return text[open_paren + 1:index]
        index += 1
    return text[open_paren + 1:]


def exported_metrics(crates):
    """{name: {"kind": counter|gauge|histogram|None, "labels": set, "sources": set}}."""
    metrics = {}

    def add(name, kind, labels, source):
        entry = metrics.setdefault(name, {"kind": None, "labels": set(), "sources": set()})
        if kind and not entry["kind"]:
            entry["kind"] = kind
        entry["labels"] |= labels
        entry["sources"].add(source)

    for path in sorted(pathlib.Path(crates).rglob("*.rs")):
        if "tests" in path.parts or "benches" in path.parts:
            continue  # integration tests and benchmarks export nothing
        text = path.read_text(encoding="utf-8")
        source = str(path)
        for match in re.finditer(r"describe_(counter|gauge|histogram)!\(\s*\"([A-Za-z_:][\w:]*)\"", text):
            add(match.group(2), match.group(1), set(), source)
        for match in re.finditer(r"(?<![\w])(counter|gauge|histogram)!\(\s*\"([A-Za-z_:][\w:]*)\"", text):
            args = _call_arguments(text, text.index("(", match.start()))
            labels = set(re.findall(r"\"(\w+)\"\s*=>", args))
            add(match.group(2), match.group(1), labels, source)
        for match in re.finditer(r"telemetry::(count|observe)\(\s*\"([A-Za-z_:][\w:]*)\"", text):
            args = _call_arguments(text, text.index("(", match.start()))
            labels = set(re.findall(r"\(\s*\"(\w+)\"\s*,", args))
            add(match.group(2), "counter" if match.group(1) == "count" else "histogram", labels, source)
    return metrics


def series_names(metrics):
    """{series name: label names} for the metrics of exported_metrics (histograms expanded)."""
    names = {}
    for name, entry in metrics.items():
        if entry["kind"] == "histogram":
            names[name + "_bucket"] = entry["labels"] | {"le"}
            names[name + "_sum"] = set(entry["labels"])
            names[name + "_count"] = set(entry["labels"])
        else:
            names[name] = set(entry["labels"])
    return names


def exposition_names(text):
    """{series name: label names} of a Prometheus text exposition."""
    names = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.match(r"([A-Za-z_:][\w:]*)(\{([^}]*)\})?\s", line)
        if not match:
            continue
        labels = set(re.findall(r"(\w+)=\"", match.group(3) or ""))
        names.setdefault(match.group(1), set()).update(labels)
    return names
