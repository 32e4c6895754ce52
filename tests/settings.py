"""The test suite's settings: the project's own (videoproject/settings.py), with a key only the
tests use, since the project refuses to start without one when DEBUG is off. Processes the
tests start inherit the key through the environment."""

import os

os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-" + "t" * 40)

from videoproject.settings import *  # noqa: E402, F403
