# The project image: the API, a Prefect worker, or `prefect deploy` (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    FILEORG_DATA_URL=/data \
    PREFECT_SERVER_ANALYTICS_ENABLED=false

WORKDIR /app
# Dependencies first, so that a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir -p api flows tasks storage \
    && touch api/__init__.py flows/__init__.py tasks/__init__.py storage/__init__.py \
    && pip install . \
    && pip uninstall -y fileorg \
    && rm -rf api flows tasks storage build *.egg-info
COPY api ./api
COPY flows ./flows
COPY tasks ./tasks
COPY storage ./storage
COPY prefect.yaml ./
# The sources stay in /app (on PYTHONPATH): the API finds its migrations beside api/db.py and
# `prefect deploy` records /app as the workers' working folder.
RUN pip install --no-deps . \
    && useradd --create-home --uid 1000 fileorg \
    && mkdir -p /data /home/fileorg/.prefect \
    && chown -R fileorg:fileorg /data /home/fileorg

USER fileorg
EXPOSE 8000
CMD ["uvicorn", "api.main:app", "--host", "0.0.0.0", "--port", "8000"]
