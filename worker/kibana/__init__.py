"""Kibana: the `events-*` data view and a dashboard of the report's panels, and their import.

Generated from the report's panel definitions (``worker.report.panels``), so that the report
and the dashboard are one list of panels: ``data_view``: the data view, the report's derived
columns as its runtime fields; ``formula``: Lens formulas stored as Lens stores them;
``lens``: one report panel as a Lens visualization; ``saved_objects``: the data view and the
dashboard as saved objects (NDJSON); ``importer``: Kibana's saved-objects import API
(`sluice kibana import`).

Imports: ``worker.config`` and ``worker.report.panels`` (plain records) only; an import-linter
contract keeps the rest of the report out. Nothing below the command imports it.
"""
