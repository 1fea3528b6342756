import sys

from ringmaster.cli import main

sys.exit(main())
