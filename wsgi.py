"""WSGI entry point for gunicorn: `gunicorn -w 2 wsgi:app`.

A configuration error (an unknown key, a bad key file or AUTHSVC_*_KEY) or a backend that does
not answer at start is one line on standard error, not a traceback. Under gunicorn the worker
then exits with gunicorn's "failed to boot" status (3), which stops gunicorn instead of
restarting workers that cannot start; run on its own, the README's exit codes (78, 69)."""

import sys

from authsvc import faults
from authsvc.settings import ConfigError, load_settings
from authsvc.store.db import SchemaNotCurrent
from authsvc.web import create_app

try:
    app = create_app()
except (ConfigError, SchemaNotCurrent, *faults.BACKEND_UNAVAILABLE) as exc:
    if isinstance(exc, ConfigError | SchemaNotCurrent):
        what = str(exc)
    else:
        settings = load_settings()
        kind, where = faults.unavailable_backend(exc, settings.database_url, settings.redis.url)
        what = f"the {kind} ({where}) does not answer at start ({type(exc).__name__})"
    print(f"authsvc: {what}", file=sys.stderr)
    raise SystemExit(3 if "gunicorn" in sys.modules
                     else 78 if isinstance(exc, ConfigError | SchemaNotCurrent) else 69) from None
