# One image for every role: `relay worker`, `relay api`, `relay sandbox`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY producers ./producers
COPY worker ./worker
COPY sandbox ./sandbox
COPY relay ./relay
RUN pip install -c constraints.txt . && useradd --system --uid 10001 relay
USER relay
EXPOSE 8080
CMD ["relay", "worker"]
