"""The metrics nnserve exports (the contract) and PromQL metric-name extraction.

Used by the deploy tests to check that every PromQL expression in the Grafana
dashboard and the Prometheus alerting rules names only series the server
really exports. Pure functions; no I/O.
"""

import re

# name -> Prometheus metric type, as exported on nnserve's /metrics.
EXPORTED = {
    "nnserve_layer_duration_seconds": "histogram",  # {model,version,layer}
    "nnserve_inference_duration_seconds": "histogram",  # {model,version}
    "nnserve_request_duration_seconds": "histogram",  # {model,method}
    "nnserve_requests_total": "counter",  # {model,method,code}
    "nnserve_inference_rows_total": "counter",  # {model,version}
    "nnserve_model_loaded": "gauge",  # {model,version}
    "nnserve_build_info": "gauge",  # {version}
    "nnserve_model_load_duration_seconds": "histogram",  # {model}
    "nnserve_model_loads_total": "counter",  # {model,result}
    "nnserve_queue_duration_seconds": "histogram",  # {model}
    "nnserve_batch_rows": "histogram",  # {model}
    "nnserve_queue_size": "gauge",  # {model}
    "process_resident_memory_bytes": "gauge",
    "process_cpu_seconds_total": "counter",
    "process_start_time_seconds": "gauge",
}

# Series Prometheus itself attaches to every scrape target.
SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}

HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def series_names():
    """Every series name a scrape of nnserve can contain."""
    names = set()
    for name, kind in EXPORTED.items():
        if kind == "histogram":
            names.update(name + s for s in HISTOGRAM_SUFFIXES)
        else:
            names.add(name)
    return names


def base_metric(series):
    """nnserve_x_seconds_bucket -> nnserve_x_seconds for histograms."""
    for suffix in HISTOGRAM_SUFFIXES:
        stem = series[: -len(suffix)]
        if series.endswith(suffix) and EXPORTED.get(stem) == "histogram":
            return stem
    return series


# PromQL words that look like identifiers but are not metric names.
_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "and", "or", "unless", "offset", "inf", "nan", "atan2",
}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_NUMBER_SUFFIX = re.compile(r"\b\d+(?:\.\d+)?(?:e[+-]?\d+)?[a-z]*\b", re.I)


def grafana_to_promql(expr):
    """Replaces Grafana template variables with values Prometheus accepts."""
    expr = expr.replace("$__rate_interval", "1m").replace("$__interval", "1m")
    expr = expr.replace("${__rate_interval}", "1m")
    expr = re.sub(r"\$\{?(\w+)\}?", ".*", expr)
    return expr


def metric_names(expr):
    """The metric (series) names an expression selects, e.g.
    'sum by (le) (rate(a_bucket{x="y"}[5m]))' -> {'a_bucket'}.

    Function names are identifiers followed by '('; label names only occur
    inside {...} or grouping clauses, which are removed first; so is a
    __name__ matcher turned into its name."""
    names = set()
    for m in re.finditer(r'__name__\s*=\s*"([^"]+)"', expr):
        names.add(m.group(1))
    text = _STRING.sub(" ", expr)
    text = _GROUPING.sub(" ", text)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _NUMBER_SUFFIX.sub(" ", text)
    for m in _IDENT.finditer(text):
        word = m.group(0)
        rest = text[m.end():].lstrip()
        if rest.startswith("("):
            continue  # a function or aggregation
        if word.lower() in _KEYWORDS:
            continue
        names.add(word)
    return names


def unknown_metrics(expr):
    """Names in `expr` that nnserve does not export (and Prometheus does not
    synthesize)."""
    known = series_names() | SYNTHETIC
    return sorted(n for n in metric_names(expr) if n not in known)
