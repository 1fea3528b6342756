"""``python -m ringmaster.options [--check] docs/options.md``: write (or check) its tables."""

import sys

from ringmaster.options import main

sys.exit(main(sys.argv[1:]))
