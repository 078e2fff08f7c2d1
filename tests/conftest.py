import os

os.environ.setdefault("HARNESS_TORCH_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from harness.runtime import configure_threads  # noqa: E402

configure_threads()
