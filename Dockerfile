# The Sluice worker image. Build: docker build -t sluice . ; run: docker run --env-file .env sluice
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SLUICE_STATE_DIR=/var/lib/sluice \
    SLUICE_LOG_FORMAT=json

WORKDIR /app
COPY pyproject.toml README.md ./
COPY worker ./worker
# The build fails if aiokafka could not decode a codec Kafka defines (cramjam comes with the
# package's aiokafka[lz4,snappy,zstd] dependency): producers use all of them.
RUN pip install --no-cache-dir . \
    && python -c "from worker.ops.startup_checks import missing_codecs; m = missing_codecs(); assert not m, m" \
    && mkdir -p /var/lib/sluice && chown 10001 /var/lib/sluice

# Parts spool under SLUICE_STATE_DIR; nothing else is written.
USER 10001
# 6066: /metrics and /health/* (worker and ingest); 8080: sluice ingest (SLUICE_INGEST_PORT).
EXPOSE 6066 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:6066/health/live', timeout=2)"
ENTRYPOINT ["sluice"]
CMD ["worker"]
