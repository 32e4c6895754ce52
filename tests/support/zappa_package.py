"""`zappa package STAGE ...`, run by the runtime virtualenv's python, with two changes that
leave the package's contents as they are:

- gzip level 1 instead of tarfile's 9: the same files in a third of the time (the level-9
  archive of the same project is about 10% smaller; its size is not what the tests measure);
- the slim handler's virtualenv (zappa, what it requires, and setuptools, at the versions
  installed) is linked from a seed the test fixture made beside the runtime virtualenv,
  instead of Zappa's `pip install` from the package index: tests download nothing.

Only the standard library and zappa are imported: this runs outside the project's venv.
"""

import os
import shutil
import sys
import zlib
from pathlib import Path

from zappa.cli import handle
from zappa.core import Zappa

SEED = "handler-venv-seed"  # under the runtime virtualenv; the fixture that makes it names it too


def link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:  # another file system
        shutil.copy2(source, destination)


def seeded_handler_venv(self, use_zappa_release=None) -> Path:
    """Where Zappa's own method makes it (`./handler_venv`, deleted once zipped)."""
    seed = Path(os.environ["VIRTUAL_ENV"]) / SEED
    return Path(shutil.copytree(seed, Path.cwd() / "handler_venv", copy_function=link_or_copy))


def level_1(real):
    return lambda level=-1, *args, **kwargs: real(1, *args, **kwargs)


if __name__ == "__main__":
    zlib.compressobj = level_1(zlib.compressobj)
    Zappa.create_handler_venv = seeded_handler_venv
    sys.argv = ["zappa", *sys.argv[1:]]
    handle()
