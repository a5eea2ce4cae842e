"""What every command shares: its exit codes, and how it joins the parser."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Coroutine
from typing import Any

from syncd.config import Config

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_CONFIG = 0, 1, 2, 3
#: the command finished, but not everything it was asked to do was done and the admin
#: should look (`resync`: targets another replica leases were skipped; see --wait)
EXIT_ATTENTION = 4

#: a command: the loaded config and its parsed arguments in, an exit code out
Handler = Callable[[Config, argparse.Namespace], Coroutine[Any, Any, int]]
#: ``add(name, help)``: a subcommand's parser (with ``--config``) for its module to fill
AddCommand = Callable[[str, str], argparse.ArgumentParser]
