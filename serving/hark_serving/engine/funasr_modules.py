"""funasr's SenseVoice code without funasr's package import.

`import funasr` runs `funasr/__init__.py`, which imports every one of funasr's
modules to register them (about 400, scikit-learn, transformers and
torch.distributed among them): about 5 s on a two-core machine, paid by every
`hark transcribe` and by every cold start of a Serve replica. Hark needs a
handful of them: the SenseVoiceSmall model, its frontend and tokenizer, and
the reading of a model directory.

`import_model_code()` puts a bare `funasr` package in `sys.modules` (the real
package directory, its `__init__` not run) and imports just those modules, which
register their classes in funasr's tables as they would anyway. Anything else
that asks for a name of the package itself (`from funasr import AutoModel`, as
the funasr fallback load and the FSMN VAD do) runs the real `__init__` then, on
first use, into the same module object, so it sees the whole package as usual.
Where funasr was imported already, nothing changes.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

from hark_serving.errors import ModelError

# What loading a SenseVoiceSmall directory and running it touch (see engine.loading and
# engine.sensevoice); each registers its class in funasr's tables when imported.
MODULES = (
    "funasr.register",
    "funasr.models.sense_voice.model",
    "funasr.frontends.wav_frontend",
    "funasr.tokenizer.sentencepiece_tokenizer",
    "funasr.utils.load_utils",
    "funasr.utils.misc",
    "funasr.download.download_model_from_hub",
)

_lock = threading.Lock()


def _bare_package() -> types.ModuleType:
    spec = importlib.util.find_spec("funasr")
    if spec is None or not spec.submodule_search_locations or spec.origin is None:
        raise ModelError("funasr is not installed; install hark with its dependencies")
    package = types.ModuleType("funasr")
    package.__spec__ = spec
    package.__file__ = spec.origin
    package.__path__ = list(spec.submodule_search_locations)
    package.__package__ = "funasr"
    origin = spec.origin
    done = threading.Event()

    def whole_package(name: str) -> Any:
        # PEP 562: a name the bare package lacks. Run the real __init__ once, then look
        # again; a name it does not define either is an AttributeError as usual.
        if name.startswith("__") or done.is_set():
            raise AttributeError(f"module 'funasr' has no attribute {name!r}")
        with _lock:
            if not done.is_set():
                done.set()
                with open(origin, encoding="utf-8") as f:
                    code = compile(f.read(), origin, "exec")
                exec(code, package.__dict__)  # the package's own __init__, as import would
        return getattr(package, name)

    vars(package)["__getattr__"] = whole_package
    return package


def import_model_code() -> None:
    """Import the funasr modules SenseVoice needs, without the rest of funasr."""
    with _lock:
        if "funasr" not in sys.modules:
            sys.modules["funasr"] = _bare_package()
    for name in MODULES:
        importlib.import_module(name)
