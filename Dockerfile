# shop_recs in a container: one image for every process (web, workers, beat, migrate); the command
# picks the role (docs/deployment.md, docker-compose.yml). Not built in CI here: CI runs ./dev test
# on the machine itself. Build: docker build -t shop_recs .
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # One BLAS thread per process: web workers score one request at a time, and a training worker
    # with --concurrency=1 gets its parallelism from implicit/numpy's own settings.
    OPENBLAS_NUM_THREADS=1 \
    SHOP_RECS_VAR_DIR=/var/lib/shop_recs \
    STATIC_ROOT=/app/staticfiles

WORKDIR /app

# Exactly the reviewed versions, every file checked against its hash (requirements.lock, ./dev lock).
# Every locked package ships manylinux wheels for CPython 3.11, so no compiler is needed.
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock

# A user without a login or a home of its own; it owns only the state directory.
RUN groupadd --system --gid 10001 shop_recs \
    && useradd --system --uid 10001 --gid shop_recs --no-create-home --shell /usr/sbin/nologin shop_recs \
    && mkdir -p /var/lib/shop_recs \
    && chown shop_recs:shop_recs /var/lib/shop_recs

COPY --chown=root:root . .

# Static files with hashed names, pre-compressed, served by WhiteNoise (no CDN, no separate server).
# The settings refuse to load without a SECRET_KEY when DEBUG is off: a throwaway one for this step
# only; the real one comes from the environment at run time.
RUN SECRET_KEY=collectstatic-only-not-used-at-run-time DEBUG=0 \
    python manage.py collectstatic --noinput --verbosity 0

USER shop_recs
EXPOSE 8000
VOLUME ["/var/lib/shop_recs"]

# Liveness: /healthz touches no dependency (readiness, /readyz, is for the load balancer). The probe
# sends a Host from ALLOWED_HOSTS: Django answers 400 to any other.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "scripts/probe.py", "healthz"]

# The web process. gunicorn reads ./gunicorn.conf.py (Prometheus multiprocess hooks); workers, bind
# and timeouts are here. WEB_CONCURRENCY sets the worker count (gunicorn reads it): one or two per core.
# --max-requests recycles a worker now and then (caches are bounded, but a slow leak would not be).
CMD ["gunicorn", "shop_recs.wsgi", \
     "--bind", "0.0.0.0:8000", \
     "--worker-class", "sync", \
     "--timeout", "30", \
     "--graceful-timeout", "30", \
     "--max-requests", "20000", \
     "--max-requests-jitter", "2000", \
     "--access-logfile", "-"]
