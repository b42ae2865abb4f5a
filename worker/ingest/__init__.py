"""`sluice ingest`: an HTTP door that produces what it receives to the source topic.

One module per concept, in the order a request meets them:

* ``server``: the aiohttp application, its paths and their answers;
* ``auth``: who may send (Segment's signature or basic auth, Firehose's access key, bearer tokens);
* ``client_address``: who sent a request (`X-Forwarded-For` believed only from trusted proxies);
* ``body``: reading a request body with a size limit, while it arrives;
* ``forms``: from a body to the Kafka records it carries (Segment, Firehose, JSON / NDJSON);
* ``raw_json``: the elements of a batch or array as the bytes they were sent as;
* ``tracking``: Segment's tracking API (``/v1/…``) for Segment's libraries and analytics.js, with
  ``tracking_bodies`` (its bodies and limits), ``write_keys`` (which source a key names, a
  watched file), ``cors`` (browsers' preflights) and ``project_settings`` (what analytics.js
  loads);
* ``keys``: which key each record gets, so one user's or one source's events keep their order;
* ``producer``: the idempotent, acks=all producer and what "the broker is unavailable" means;
* ``metrics``: the Prometheus families of ``/metrics``;
* ``run``: start-up checks, the servers, and shutdown on SIGTERM.
"""
