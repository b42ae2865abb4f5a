"""The ``sluice`` command.

``main``: the command and its top-level verbs (``worker``, ``ingest``, ``stack``, ``produce``,
``demo``, ``settings``); ``groups``: the ``dlq``, ``topics`` and ``catalog``
command groups; ``kibana``: ``sluice kibana import`` and ``objects``; ``settings``: the
settings loading every command shares, with one line per bad setting instead of a traceback.

Imports: anything. The CLI is the top layer, and the only one that may import the local
tooling (``worker.local``).
"""
