"""Dead letters: what could not be delivered, with its original bytes and the reason.

``publisher``: dead letters written to the dead-letter topic, with headers saying where the
record came from, at which stage it failed and why; ``limit``: the safety limit that stops a
worker instead of dead-lettering all traffic; ``replay``: reading the topic back, for
``sluice dlq inspect`` and ``sluice dlq replay``.

Imports: ``worker.config``, ``worker.events`` and ``worker.kafka``. Never a sink, the pipeline
or the CLI.
"""
