"""Kibana: the `events-*` data view and a dashboard of the seeds' panels, and their import.

``panels``: the dashboard's panels as plain records (seed 003's API usage, seed 000's
behaviour); ``saved_objects``: Kibana saved objects generated from them (a data view and a
dashboard of Lens panels, as NDJSON); ``importer``: Kibana's saved-objects import API
(`sluice kibana import`).

Imports: ``worker.config`` only. Nothing below the command imports it.
"""
