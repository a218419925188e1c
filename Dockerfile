# syntax=docker/dockerfile:1
# admitd's image: `admitd serve` as a non-root numeric user, the config from a mounted file
# ($ADMITD_CONFIG) plus ADMITD_* environment variables. How to build it, and where it was
# last built: docs/deploy.md.
#
# The base is pinned by digest; refresh it with
#   docker buildx imagetools inspect python:3.11-slim-bookworm
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY server ./server
# The runtime dependencies only: no [dev] extras (no Envoy, test or lint tools); uvloop,
# which `event_loop: auto` then uses (BENCHMARKS.md, "uvloop vs asyncio"), and httptools
# for Envoy's HTTP ext_authz (`http_listen`, docs/http-authz.md).
RUN python -m venv /opt/admitd \
 && /opt/admitd/bin/pip install '.[uvloop,http]' \
 && /opt/admitd/bin/pip uninstall -y pip

FROM ${PYTHON_IMAGE}
COPY --from=build /opt/admitd /opt/admitd
ENV PATH=/opt/admitd/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ADMITD_CONFIG=/etc/admitd/config/admitd.yaml
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
# Check + grpc.health.v1, step-up pages, Prometheus metrics.
EXPOSE 9001 9002 9464
ENTRYPOINT ["admitd", "serve"]
