"""``python -m graphdel.cli``: the ``graphdel`` command (torchrun re-runs a command this way, see
:func:`graphdel.distributed.torchrun_command`)."""

import sys

from graphdel.cli import main

sys.exit(main())
