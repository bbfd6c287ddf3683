import sys

from nestgrad.cli import main

sys.exit(main())
