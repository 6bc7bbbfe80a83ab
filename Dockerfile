# Frontdesk: one image for both processes, `frontdesk run` (the daemon) and
# `frontdesk worker` (automation over Kafka).  Untested here: this machine
# cannot run Docker; see docs/worker.md.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    FRONTDESK_DATA_DIR=/var/lib/frontdesk \
    FRONTDESK_LOG_FORMAT=json

RUN groupadd --system frontdesk \
 && useradd --system --gid frontdesk --home-dir /var/lib/frontdesk --shell /usr/sbin/nologin frontdesk \
 && mkdir -p /var/lib/frontdesk \
 && chown frontdesk:frontdesk /var/lib/frontdesk

WORKDIR /opt/frontdesk
COPY pyproject.toml README.md LICENSE ./
COPY frontdesk ./frontdesk
COPY ingest ./ingest
COPY outbound ./outbound
COPY automation ./automation
COPY channels ./channels
COPY api ./api
COPY runtime ./runtime
COPY tickets ./tickets
RUN pip install --no-compile .

USER frontdesk
VOLUME ["/var/lib/frontdesk"]
# SMTP and HTTP; listen on all interfaces inside the container.
ENV FRONTDESK_SMTP_LISTEN=0.0.0.0:2525 \
    FRONTDESK_HTTP_LISTEN=0.0.0.0:8080
EXPOSE 2525 8080
ENTRYPOINT ["frontdesk"]
CMD ["run"]
