# One image for every role: `relay worker`, `relay api`, `relay sandbox`, Flower (see
# docker-compose.yml). tests/integration/test_packaging.py rebuilds the file set these COPY
# lines make and installs it as the RUN line does.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY producers ./producers
COPY worker ./worker
COPY sandbox ./sandbox
COPY relay ./relay
# The source goes once installed: `celery -A worker.app` puts the working folder first on
# sys.path, and must import the installed package, not a copy beside it.
RUN pip install -c constraints.txt '.[all]' && rm -rf /src \
    && useradd --system --uid 10001 relay
WORKDIR /app
USER relay
# the API, the sandbox, Flower
EXPOSE 8080 8088 5555
CMD ["relay", "worker"]
