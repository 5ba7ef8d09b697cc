"""Builds the FastAPI app: settings, Redis clients, the job store, routers and error handlers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse

from api import auth, errors, observability, tus
from api.celery_client import make_celery
from api.limits import BodyLimit
from api.routes import (
    checkpoints,
    curves,
    dashboard,
    datasets,
    events,
    forks,
    health,
    job_delete,
    jobs,
    logs,
    metrics,
    schedules,
    search_curves,
    searches,
    sweep_curves,
    sweeps,
    uploads,
)
from api.search_driver import Driver
from tricklab.server import retention
from tricklab.server.connection import connect, connect_async
from tricklab.server.store import Store
from tricklab.settings import Settings, get_settings

TAGS = [
    {"name": "jobs", "description": "Create training jobs, follow them, fetch their results."},
    {"name": "curves", "description": "Metric and learning-rate curves of a job."},
    {"name": "schedules", "description": "Preview a learning-rate schedule without training."},
    {"name": "datasets", "description": "Built-in datasets and your uploads."},
    {
        "name": "uploads",
        "description": "Resumable uploads (tus 1.0.0); a finished one becomes a dataset.",
    },
    {"name": "health", "description": "Liveness and readiness."},
    {"name": "sweeps", "description": "Grids and ablations over seeds, with a results table."},
    {
        "name": "searches",
        "description": "Hyperparameter search with Optuna (TPE, random, grid) and a confirm stage.",
    },
]

# Every router, registered here and nowhere else; the order is the OpenAPI order.
ROUTERS = (
    jobs.router,
    job_delete.router,
    checkpoints.router,
    curves.router,
    events.router,
    schedules.router,
    datasets.router,
    uploads.router,
    health.router,
    dashboard.router,
    forks.router,
    sweeps.router,
    sweep_curves.router,
    searches.router,
    search_curves.router,
    metrics.router,
    logs.router,
)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Background work of an API process: the search driver (api/search_driver.py)."""
    driver = Driver(app.state.store, app.state.settings, app.state.celery)
    driver.start()
    # the retention round (tricklab.server.retention): TTL, checkpoints, stale workers
    stop_retention = retention.start_background(app.state.store, app.state.settings)
    stop_uploads = tus.start_sweeper(app.state.store, app.state.settings)  # expired uploads
    try:
        yield
    finally:
        driver.stop()
        if stop_uploads is not None:
            stop_uploads.set()
        if stop_retention is not None:
            stop_retention.set()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    from tricklab.server.logs import setup_logging  # JSON lines unless TRICKLAB_LOG_FORMAT=text

    setup_logging("api")
    app = FastAPI(
        title="tricklab",
        version="0.1.0",
        description="Training-as-a-service for learning-rate schedules and regularization tricks.",
        openapi_tags=TAGS,
        dependencies=[Depends(auth.require_caller)],
        responses=auth.RESPONSES,
        docs_url=None,  # served by install_docs from vendored assets, not a CDN
        redoc_url=None,  # ReDoc loads from a CDN too; Swagger UI at /docs is the one
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.redis = connect(settings.redis_url)
    app.state.redis_bytes = connect(settings.redis_url, decode=False)  # tricklab.server.series
    app.state.aredis = connect_async(  # bounded: a full pool is a 503 of its own (api/errors.py)
        settings.redis_url,
        max_connections=settings.redis_pool_size,
        pool_timeout_s=settings.redis_pool_timeout_s,
    )
    app.state.store = Store(app.state.redis, settings.key_prefix, settings.events_maxlen)
    app.state.celery = make_celery(settings)
    auth.install(app, settings)
    errors.install(app)
    app.add_middleware(
        BodyLimit,
        max_body_bytes=settings.max_body_bytes,
        max_upload_bytes=settings.max_upload_bytes,
    )
    for router in ROUTERS:
        app.include_router(router)
    dashboard.mount_static(app)
    install_docs(app)
    observability.install(app, settings)  # request latency + log context (outermost middleware)
    return app


SWAGGER = "/static/vendor/swagger-ui"  # copied from npm's swagger-ui-dist by `npm run vendor`


def install_docs(app: FastAPI) -> None:
    """Swagger UI at /docs from api/static/vendor, so it renders without internet access.

    Added as plain routes (as FastAPI adds its own docs), outside the app's
    dependencies: like /openapi.json, the page needs no API key.
    """
    oauth2_url = "/docs/oauth2-redirect"

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root + (app.openapi_url or "/openapi.json"),
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{SWAGGER}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{SWAGGER}/swagger-ui.css",
            swagger_favicon_url=f"{root}{SWAGGER}/favicon-32x32.png",
            oauth2_redirect_url=root + oauth2_url,
            swagger_ui_parameters={"validatorUrl": None},  # no calls to validator.swagger.io
        )

    async def oauth2_redirect(request: Request) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    app.add_route("/docs", swagger_ui, include_in_schema=False)
    app.add_route(oauth2_url, oauth2_redirect, include_in_schema=False)


app = create_app()
