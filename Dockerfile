# syntax=docker/dockerfile:1
# IZIHelp realtime gateway. Build: docker build -t izihelp-gateway .
# Run:   docker run -p 8080:8080 -e DATABASE_URL=… -e REDIS_URL=… -e MASTER_KEY=… izihelp-gateway
# (single node without DATABASE_URL: mount a volume on /data for the SQLite file and files)

# --- widget: the embeddable widget and the agent console (esbuild) -------------------
FROM node:20-slim AS widget
WORKDIR /widget
COPY widget/package.json widget/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY widget/ ./
RUN npm run build

# --- build: wheels of the gateway and its dependencies ------------------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config libffi-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY connectors ./connectors
COPY recording ./recording
RUN python -m pip wheel --wheel-dir /wheels .

# --- runtime: no compilers, non-root ------------------------------------------------
FROM python:3.11-slim AS runtime
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOST=0.0.0.0 PORT=8080 DATA_DIR=/data LOG_FORMAT=json WIDGET_DIST=/app/widget/dist
RUN groupadd --system --gid 10001 izihelp \
 && useradd --system --uid 10001 --gid izihelp --home-dir /app --shell /usr/sbin/nologin izihelp \
 && mkdir -p /app/docs /data && chown izihelp:izihelp /data
COPY --from=build /wheels /wheels
RUN python -m pip install --no-index --find-links=/wheels izihelp-gateway && rm -rf /wheels
WORKDIR /app
# the REST API description served at /api/v1/openapi.yaml; the built widget and console
COPY docs/openapi.yaml /app/docs/openapi.yaml
COPY --from=widget /widget/dist /app/widget/dist
USER izihelp
VOLUME ["/data"]
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os,sys,urllib.request;sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT','8080'), timeout=2).status == 200 else 1)"]
CMD ["python", "-m", "gateway", "serve"]
