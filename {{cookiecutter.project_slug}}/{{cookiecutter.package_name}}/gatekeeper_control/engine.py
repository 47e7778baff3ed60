"""The flag engine this folder builds on: `gatekeeper.py`, the blog post's one module, beside the folder.

In an app's package (`myapp/gatekeeper.py` beside `myapp/gatekeeper_control/`) it is the package's
`gatekeeper`; in the post's flat layout (`gatekeeper.py` beside `app.py`) it is the top-level `gatekeeper`.
The engine itself never imports this folder.
"""

from __future__ import annotations

try:
    from .. import gatekeeper
except ImportError:  # the folder is a top-level package: the flat layout
    import gatekeeper  # type: ignore[no-redef]

__all__ = ["gatekeeper"]
