"""The web dashboard: GET / serves the single page; `mount_static` serves its assets at /static.

The page is plain HTML, CSS and ES modules (no build step); the chart library
(uPlot) is vendored into api/static/vendor from npm (`npm run vendor`). The page
and its assets carry no secrets, so they need no API key: the scripts send the
key the user types in as `Authorization: Bearer ...` on every API call.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"

router = APIRouter(tags=["dashboard"])


@router.get("/", include_in_schema=False)
def read_dashboard() -> FileResponse:
    """The dashboard's single page; views are picked by the URL hash (#/jobs/{id}, #/new, ...)."""
    # no-cache: the page is tiny and names its module files, so a deploy shows at once
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


def mount_static(app: FastAPI) -> None:
    """Serve api/static (scripts, styles, vendored uPlot) at /static."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
