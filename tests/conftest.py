"""Shared test set-up: quiet TensorFlow. The checkout's root is on the path because `tests`
is a package (pytest puts the folder above a test package on `sys.path`), so tests import
`tests.*` and `benchmarks.*`; ganrl itself is installed (editable)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
