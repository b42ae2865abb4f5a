"""`sluice ingest`: an HTTP door that produces what it receives to the source topic.

One module per concept, in the order a request meets them:

* ``connections``: every connection, counted and capped, its headers' deadline and size;
* ``guard``: what every request goes through whatever its path (request id, failed
  authentications, body budget, errors answered in one line, metrics);
* ``server``: the aiohttp application, its paths and their answers (new paths are registered in
  ``IngestServer.application()``, behind the same guards);
* ``auth``: who may send (Segment's signature or basic auth, Firehose's access key, bearer tokens);
* ``client_address``: who sent a request (`X-Forwarded-For` believed only from trusted proxies);
* ``rate_limits``: token buckets per public credential and per client address (429);
* ``body``: reading a request body within its size limit, the memory budget and a minimum pace;
* ``forms``: from a body to the Kafka records it carries (Segment, Firehose, JSON / NDJSON);
* ``raw_json``: the elements of a batch or array as the bytes they were sent as;
* ``tracking``: Segment's tracking API (``/v1/…``) for Segment's libraries and analytics.js, with
  ``tracking_bodies`` (its bodies and limits), ``write_keys`` (which source a key names, a
  watched file), ``cors`` (browsers' preflights) and ``project_settings`` (what analytics.js
  loads);
* ``keys``: which key each record gets, so one user's or one source's events keep their order;
* ``producer`` and ``transactions``: records produced in transactions, so that 200 means
  committed and 503 means never visible;
* ``metrics``: the Prometheus families of ``/metrics``;
* ``run``: start-up checks, the servers, and shutdown on SIGTERM.
"""
