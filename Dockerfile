# syncd's image:  docker build -t syncd .   (or: podman build -t syncd .)
# Two stages: the first builds syncd's wheel (its SQL migrations inside, as
# syncd/_sql) and the wheels of its dependencies; the second installs them
# into a slim Python with no compiler, no pip cache and no source tree, and
# runs as an unprivileged user.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY syncd ./syncd
COPY sql ./sql
RUN pip wheel --no-deps --wheel-dir /wheels . \
 && pip wheel --wheel-dir /wheels /wheels/syncd-*.whl

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SYNCD_STATE_DIR=/tmp/syncd SYNCD_LISTEN=0.0.0.0:9464 SYNCD_LOGGING_FORMAT=json
RUN groupadd --system --gid 10001 syncd \
 && useradd --system --uid 10001 --gid syncd --no-create-home --shell /usr/sbin/nologin syncd
COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links /wheels syncd && rm -rf /wheels
USER 10001:10001
EXPOSE 9464
ENTRYPOINT ["syncd"]
CMD ["run", "--config", "/etc/syncd/syncd.toml"]
