# Rewind: `rewind run` in Socket Mode (SLACK_APP_TOKEN) or HTTP mode (port 3000, /slack/events, /healthz).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    REWIND_HTTP_PORT=3000 \
    REWIND_DATABASE_URL=sqlite:////data/rewind.db

# pg_dump/pg_restore/initdb for `rewind replica up`; curl for the health check; libcairo2 for PNG pictures.
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client postgresql curl libcairo2 \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 rewind && mkdir /data && chown rewind /data
WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY bot ./bot
COPY handlers ./handlers
COPY restore ./restore
RUN pip install '.[png]'

USER rewind
VOLUME /data
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD sh -c 'test -n "$SLACK_APP_TOKEN" || curl -fsS "http://127.0.0.1:${REWIND_HTTP_PORT}/healthz"'
CMD ["rewind", "run"]
