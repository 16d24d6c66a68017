"""sfumato for Krita: a docker and three actions that inpaint, refine and upscale the active
layer through the local sfumato daemon; every result is a new layer above the source.

Installed by `sfumato plugins install krita`, which vendors the bridge beside this file as
sfumato/bridge/. Krita's pykrita imports this package and registers what it finds; imported
anywhere else (tests, tools) it registers nothing.
"""

import importlib.util
import os
import sys


def _use_vendored_bridge() -> None:
    """An installed copy carries sfumato/bridge/ beside this file: it wins over anything else
    on the path (the package's modules import `sfumato.bridge`)."""
    here = os.path.dirname(os.path.abspath(__file__))
    if os.path.isdir(os.path.join(here, "sfumato", "bridge")) and here not in sys.path:
        sys.path.insert(0, here)


def _register_in_krita() -> None:
    from .extension import register

    register()


if __name__ == "sfumato_krita":  # imported by pykrita (or kritarunner), not as sfumato.plugins
    _use_vendored_bridge()
    if importlib.util.find_spec("krita") is not None:
        _register_in_krita()
