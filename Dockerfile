# The project image: the API, a Prefect worker, or `prefect deploy` (see docker-compose.yml).
FROM python:3.11-slim

# Python writes no bytecode in the container, so uv compiles the dependencies' once, at
# build time (UV_COMPILE_BYTECODE): else every process compiled all it imported from source.
ENV PYTHONDONTWRITEBYTECODE=1 \
    UV_COMPILE_BYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    PATH=/app/.venv/bin:$PATH \
    FILEORG_DATA_URL=/data \
    PREFECT_SERVER_ANALYTICS_ENABLED=false

WORKDIR /app
# Dependencies first, from the lock (the same uv and `uv sync --locked` as the README's set-up, without
# the development group), so that a code change does not reinstall them and the image cannot drift
# from what the tests ran against.
COPY pyproject.toml uv.lock README.md ./
RUN pip install uv==0.13.9 \
    && uv sync --locked --no-dev --no-install-project
COPY api ./api
COPY flows ./flows
COPY tasks ./tasks
COPY storage ./storage
COPY prefect.yaml ./
# The sources stay in /app (on PYTHONPATH): the API finds its migrations beside api/db.py and
# `prefect deploy` records /app as the workers' working folder.
RUN uv sync --locked --no-dev --no-editable \
    && useradd --create-home --uid 1000 fileorg \
    && mkdir -p /data /home/fileorg/.prefect \
    && chown -R fileorg:fileorg /data /home/fileorg

USER fileorg
EXPOSE 8000
CMD ["uvicorn", "api.main:app", "--host", "0.0.0.0", "--port", "8000"]
