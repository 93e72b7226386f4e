import sys

from bnnbench.cli import main

sys.exit(main())
