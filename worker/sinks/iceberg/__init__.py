"""The Iceberg sink: events appended to one Iceberg table, exactly once, through a catalog.

``sink`` (the loop: buffers per partition, commits every SLUICE_ICEBERG_COMMIT_INTERVAL),
``client`` (the catalog chosen by settings, the table created or evolved, the start-up check),
``naming`` (the table's identifier, partition spec and the snapshot summary's keys), ``offsets``
(the offsets a table has committed, read from its snapshots), ``commits`` (data files written
and committed with the offsets they cover, conflicts retried), ``maintenance`` (compaction,
snapshot expiry, deletes by user id; ``sluice iceberg``).

Imports: ``worker.config`` and ``worker.events``, like every sink.
"""
