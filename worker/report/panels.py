"""The report's panels, defined once: what each shows, as SQL over the archive's columns, and
as the document fields and metric an Elasticsearch / Kibana panel would use.

Two tables are queried:

* ``events``: one row per archived document in the report's range, with the columns of
  ``COLUMNS`` (each derived from the document's fields by the same SQL for NDJSON and Parquet
  objects, ``worker.report.scan`` loads it);
* ``dead_letters``: one row per dead letter in the range (``failed_at``, ``stage``,
  ``error_class``, ``retriable``), read from the dead-letter topic.

A panel's SQL returns the columns it names as ``x``, ``y`` and ``colour``; ``{bucket}`` stands for
the time bucket chosen for the range (an ``INTERVAL``), ``{top}`` for how many categories a
ranking keeps, ``{series}`` for how many coloured series a chart over time keeps (the rest are
summed as ``(other)``).

The same records carry what a Kibana visualisation needs: the filter (``kql``), the document
fields split by (``fields``, in ``Column.document`` terms) and the metric as a Lens formula
(``metric``); derived columns name their Painless runtime field (``Column.painless``). Nothing
here does I/O: the report, and the saved-object generator, read these records.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

NOT_IN_CATALOG = "(not in the catalog)"
OTHER = "(other)"
TOP = 15  # {top}: categories a ranking keeps (the Kibana panels' top values too)
SERIES = 8  # {series}: coloured series a chart over time keeps, the rest summed as OTHER


class Section(StrEnum):
    """The report's three parts."""

    API = "API usage"
    BEHAVIOUR = "Behaviour"
    PIPELINE = "Pipeline"


class Chart(StrEnum):
    """How a panel is drawn. ``line``, ``area`` and ``step`` (an area that holds each value
    until the next: counts per whole hour) have time on x; ``bar`` has categories on x, stacked
    by colour; ``hbar`` categories on y, sorted by value."""

    LINE = "line"
    AREA = "area"
    STEP = "step"
    BAR = "bar"
    HBAR = "hbar"


class Kind(StrEnum):
    """How a column's values are read: a chart's axis type."""

    TIME = "time"
    NUMBER = "number"
    CATEGORY = "category"


@dataclass(frozen=True, slots=True)
class Column:
    """A column of the ``events`` table.

    ``sql`` computes it from an archived document's fields (the same expression for gzip
    NDJSON and Parquet objects, ``{time_field}`` being the field that files events in the
    archive); ``document`` is the document field it comes from (Elasticsearch's field), or, for
    a derived column, ``painless`` is the runtime field that computes it there.
    """

    name: str
    type: str
    sql: str
    description: str
    document: str | None = None
    painless: str | None = None


_ACCESS = "type = 'access_log'"

COLUMNS: tuple[Column, ...] = (
    Column("ts", "TIMESTAMPTZ", "CAST({time_field} AS TIMESTAMPTZ)",
           "the time that files the event in the archive (SLUICE_S3_TIME_FIELD)",
           document="timestamp"),
    Column("type", "VARCHAR", "type", "Segment type, or access_log", document="type"),
    Column("event", "VARCHAR", "event", "a track event's name", document="event"),
    Column("person", "VARCHAR", "coalesce(user_id, anonymous_id)",
           "the user, else the anonymous id", painless=(
               "def u = doc['user_id']; def a = doc['anonymous_id']; "
               "if (u.size() > 0) { emit(u.value) } else if (a.size() > 0) { emit(a.value) }")),
    Column("page", "VARCHAR",
           "CASE WHEN type IN ('page', 'screen') THEN coalesce("
           "json_extract_string(properties, '$.path'), "
           "json_extract_string(context, '$.page.path'), name) END",
           "a page or screen view's path (properties.path, context.page.path), else its name",
           painless=(
               "if (doc['type'].size() > 0 && (doc['type'].value == 'page' || "
               "doc['type'].value == 'screen')) { def p = doc['properties.path']; "
               "def c = doc['context.page.path']; def n = doc['name']; "
               "if (p.size() > 0) { emit(p.value) } else if (c.size() > 0) { emit(c.value) } "
               "else if (n.size() > 0) { emit(n.value) } }")),
    Column("source", "VARCHAR",
           f"CASE WHEN NOT ({_ACCESS}) THEN coalesce(source_id, "
           "json_extract_string(context, '$.library.name'), input_format) END",
           "the Segment source (projectId, sourceId, context.source.id), else the sending "
           "library, else the input form", painless=(
               "if (doc['type'].size() > 0 && doc['type'].value != 'access_log') { "
               "def s = doc['source_id']; def l = doc['context.library.name']; "
               "if (s.size() > 0) { emit(s.value) } else if (l.size() > 0) { emit(l.value) } "
               "else if (doc['input_format'].size() > 0) { emit(doc['input_format'].value) } }")),
    Column("customer", "VARCHAR",
           f"CASE WHEN {_ACCESS} THEN coalesce(customer_name, customer_id, '{NOT_IN_CATALOG}') END",
           "the API key's customer from the catalog", document="customer_name"),
    Column("usage_plan", "VARCHAR",
           f"CASE WHEN {_ACCESS} THEN coalesce(usage_plan_name, usage_plan_id, "
           f"'{NOT_IN_CATALOG}') END",
           "the API key's usage plan from the catalog", document="usage_plan_name"),
    Column("api_key_id", "VARCHAR", "api_key_id", "the caller's API key id",
           document="api_key_id"),
    Column("enriched", "BOOLEAN", "enriched", "false when the API key is not in the catalog",
           document="enriched"),
    Column("endpoint", "VARCHAR", "http_method || ' ' || resource_path",
           "the API resource with its method, e.g. `GET /v1/orders/{id}`", painless=(
               "if (doc['http_method'].size() > 0 && doc['resource_path'].size() > 0) { "
               "emit(doc['http_method'].value + ' ' + doc['resource_path'].value) }")),
    Column("status", "INTEGER", "status", "the HTTP status answered", document="status"),
    Column("status_class", "VARCHAR", "CAST(status // 100 AS VARCHAR) || 'xx'",
           "2xx, 3xx, 4xx, 5xx", painless=(
               "if (doc['status'].size() > 0) { emit((doc['status'].value / 100) + 'xx') }")),
    Column("response_length", "BIGINT", "response_length", "response bytes",
           document="response_length"),
)
COLUMN_NAMES = tuple(column.name for column in COLUMNS)


@dataclass(frozen=True, slots=True)
class Panel:
    """One chart of the report (and of the Kibana dashboard).

    ``sql`` runs over ``events`` (or ``dead_letters`` when ``table`` says so) and returns the
    columns named by ``x``, ``y`` and ``colour``; ``x_kind`` and ``y_kind`` say how to read them.
    ``kql``, ``fields`` and ``metric`` are the same panel for Elasticsearch: the filter, the
    fields split by (``Column`` names; a time axis is the date histogram on ``timestamp``) and
    the Lens formula of the value.
    """

    id: str
    section: Section
    title: str
    description: str
    chart: Chart
    sql: str
    x: str
    y: str
    colour: str | None
    x_kind: Kind
    y_kind: Kind
    kql: str
    fields: tuple[str, ...]
    metric: str = "count()"
    table: str = "events"


def _over_time(group: str, where: str) -> str:
    """Counts per time bucket and `group`, the largest {series} groups kept, the rest summed."""
    return (
        f"WITH counted AS (SELECT time_bucket({{bucket}}, ts) AS time, {group} AS series, "
        f"count(*) AS events FROM events WHERE {where} GROUP BY ALL), "
        "kept AS (SELECT series FROM counted GROUP BY series "
        "ORDER BY sum(events) DESC, series LIMIT {series}) "
        f"SELECT time, CASE WHEN series IN (SELECT series FROM kept) THEN series "
        f"ELSE '{OTHER}' END AS series, sum(events) AS events FROM counted "
        "GROUP BY ALL ORDER BY time, series"
    )


def _ranking(label: str, what: str, where: str, value: str = "count(*)") -> str:
    """The {top} values of `what` by `value`."""
    return (f"SELECT {what} AS {label}, {value} AS events FROM events WHERE {where} "
            f"AND {what} IS NOT NULL GROUP BY ALL ORDER BY events DESC, {label} LIMIT {{top}}")


_BEHAVIOUR = "type <> 'access_log'"
_SIZE_CLASS = (
    "CASE WHEN response_length < 1024 THEN '1. < 1 KiB' "
    "WHEN response_length < 4096 THEN '2. 1-4 KiB' "
    "WHEN response_length < 16384 THEN '3. 4-16 KiB' "
    "WHEN response_length < 65536 THEN '4. 16-64 KiB' "
    "WHEN response_length < 262144 THEN '5. 64-256 KiB' "
    "WHEN response_length < 1048576 THEN '6. 256 KiB-1 MiB' ELSE '7. >= 1 MiB' END"
)

PANELS: tuple[Panel, ...] = (
    Panel("calls_by_plan", Section.API, "Calls over time by usage plan",
          "API Gateway calls per time bucket, one series per usage plan.", Chart.AREA,
          _over_time("usage_plan", _ACCESS), "time", "events", "series", Kind.TIME, Kind.NUMBER,
          "type:access_log", ("usage_plan",)),
    Panel("calls_by_customer", Section.API, "Calls over time by customer",
          "API Gateway calls per time bucket, the largest customers each a series.", Chart.LINE,
          _over_time("customer", _ACCESS), "time", "events", "series", Kind.TIME, Kind.NUMBER,
          "type:access_log", ("customer",)),
    Panel("plan_share", Section.API, "Calls by usage plan",
          "Every call of the range, per usage plan.", Chart.HBAR,
          "SELECT usage_plan AS plan, count(*) AS events FROM events WHERE "
          f"{_ACCESS} GROUP BY ALL ORDER BY events DESC, plan",
          "events", "plan", None, Kind.NUMBER, Kind.CATEGORY, "type:access_log",
          ("usage_plan",)),
    Panel("top_customers", Section.API, "Top customers",
          "The customers with the most calls, coloured by HTTP status class.", Chart.HBAR,
          "WITH top AS (" + _ranking("customer", "customer", _ACCESS) + ") "
          "SELECT customer, status_class, count(*) AS events FROM events "
          f"WHERE {_ACCESS} AND customer IN (SELECT customer FROM top) GROUP BY ALL "
          "ORDER BY customer, status_class",
          "events", "customer", "status_class", Kind.NUMBER, Kind.CATEGORY, "type:access_log",
          ("customer", "status_class")),
    Panel("top_endpoints", Section.API, "Top endpoints",
          "The resources with their methods that get the most calls, by usage plan.",
          Chart.HBAR,
          "WITH top AS (" + _ranking("endpoint", "endpoint", _ACCESS) + ") "
          "SELECT endpoint, usage_plan, count(*) AS events FROM events "
          f"WHERE {_ACCESS} AND endpoint IN (SELECT endpoint FROM top) GROUP BY ALL "
          "ORDER BY endpoint, usage_plan",
          "events", "endpoint", "usage_plan", Kind.NUMBER, Kind.CATEGORY, "type:access_log",
          ("endpoint", "usage_plan")),
    Panel("status_classes", Section.API, "Status classes",
          "Calls per HTTP status class.", Chart.BAR,
          "SELECT status_class, count(*) AS events FROM events WHERE "
          f"{_ACCESS} AND status_class IS NOT NULL GROUP BY ALL ORDER BY status_class",
          "status_class", "events", "status_class", Kind.CATEGORY, Kind.NUMBER,
          "type:access_log", ("status_class",)),
    Panel("error_rate_by_customer", Section.API, "Error rate by customer",
          "Share of calls answered 4xx or 5xx, for the customers with the most calls.",
          Chart.HBAR,
          "SELECT customer, round(avg(CASE WHEN status >= 400 THEN 1.0 ELSE 0.0 END), 4) "
          f"AS error_rate, count(*) AS calls FROM events WHERE {_ACCESS} GROUP BY ALL "
          "ORDER BY calls DESC, customer LIMIT {top}",
          "error_rate", "customer", None, Kind.NUMBER, Kind.CATEGORY, "type:access_log",
          ("customer",), metric="count(kql='status >= 400') / count()"),
    Panel("unknown_keys", Section.API, "API keys not in the catalog",
          "Calls whose API key the catalog does not know (enriched = false).", Chart.HBAR,
          _ranking("api_key_id", "coalesce(api_key_id, '(no key)')",
                   f"{_ACCESS} AND enriched = false"),
          "events", "api_key_id", None, Kind.NUMBER, Kind.CATEGORY,
          "type:access_log and enriched:false", ("api_key_id",)),
    Panel("response_sizes", Section.API, "Response sizes",
          "Calls per response size.", Chart.BAR,
          f"SELECT {_SIZE_CLASS} AS size, count(*) AS events FROM events WHERE {_ACCESS} "
          "AND response_length IS NOT NULL GROUP BY ALL ORDER BY size",
          "size", "events", None, Kind.CATEGORY, Kind.NUMBER, "type:access_log",
          ("response_length",)),
    Panel("events_by_type", Section.BEHAVIOUR, "Events over time by type",
          "Segment events per time bucket, one series per type.", Chart.AREA,
          _over_time("type", _BEHAVIOUR), "time", "events", "series", Kind.TIME, Kind.NUMBER,
          "not type:access_log", ("type",)),
    Panel("top_events", Section.BEHAVIOUR, "Top events",
          "The track events sent most.", Chart.HBAR,
          _ranking("event", "event", "type = 'track'"),
          "events", "event", None, Kind.NUMBER, Kind.CATEGORY, "type:track", ("event",)),
    Panel("daily_active_users", Section.BEHAVIOUR, "Daily active users",
          "Distinct users (or anonymous ids) with at least one event, per UTC day.", Chart.LINE,
          "SELECT time_bucket(INTERVAL 1 DAY, ts) AS day, count(DISTINCT person) AS users "
          f"FROM events WHERE {_BEHAVIOUR} AND person IS NOT NULL GROUP BY ALL ORDER BY day",
          "day", "users", None, Kind.TIME, Kind.NUMBER, "not type:access_log", (),
          metric="unique_count(person)"),
    Panel("top_pages", Section.BEHAVIOUR, "Top pages",
          "Page and screen views per path (or name).", Chart.HBAR,
          _ranking("page", "page", "type IN ('page', 'screen')"),
          "events", "page", None, Kind.NUMBER, Kind.CATEGORY, "type:page or type:screen",
          ("page",)),
    Panel("sources", Section.BEHAVIOUR, "Sources",
          "Events per Segment source (else the sending library).", Chart.HBAR,
          _ranking("source", "source", _BEHAVIOUR),
          "events", "source", None, Kind.NUMBER, Kind.CATEGORY, "not type:access_log",
          ("source",)),
    Panel("dead_letters", Section.PIPELINE, "Dead letters by stage and class",
          "Records the pipeline could not deliver in the range, read from the dead-letter "
          "topic.", Chart.BAR,
          "SELECT stage, error_class, count(*) AS letters FROM dead_letters GROUP BY ALL "
          "ORDER BY stage, error_class",
          "stage", "letters", "error_class", Kind.CATEGORY, Kind.NUMBER, "", (),
          table="dead_letters"),
    Panel("archived_per_hour", Section.PIPELINE, "Events archived per hour",
          "Documents in the S3 archive per hour they are filed under.", Chart.STEP,
          "SELECT time_bucket(INTERVAL 1 HOUR, ts) AS hour, count(*) AS events FROM events "
          "GROUP BY ALL ORDER BY hour",
          "hour", "events", None, Kind.TIME, Kind.NUMBER, "", ()),
)


def panel(panel_id: str) -> Panel:
    """The panel with this id."""
    for candidate in PANELS:
        if candidate.id == panel_id:
            return candidate
    raise KeyError(panel_id)
