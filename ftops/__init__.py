"""ftops: FT-Ops for LLM tool calling.

Importing the package loads nothing else: pure modules (the training loop, parsers, the
model adapters) stay free of Django and Celery. The Celery app is created where Django
starts (``ftops.common.apps.CommonConfig.ready``), and ``celery -A ftops`` finds
``ftops.celery`` by itself.
"""

import os as _os

# MKL's strict reproducibility mode: its matrix products then give the same bits on any number
# of threads (AUTO keeps the fastest code path of this CPU; measured no slower here). Without
# it, on AVX-512 CPUs one and two threads build different base models, and the build follows
# the idle cores (``ftops.core.ml.base_model``). MKL reads it once, at its first call in the
# process, so it is set here, before anything in ftops imports torch. A value already in the
# environment wins.
_os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
