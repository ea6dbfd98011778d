"""The web console: a static page (HTML, CSS, ES modules; no build step) served at `/`.

`install_console(app, settings)` mounts it on the API app; `jobs` reads
TranscriptionJobs for its read-only jobs view.
"""

from hark_serving.serve.console.routes import install_console

__all__ = ["install_console"]
