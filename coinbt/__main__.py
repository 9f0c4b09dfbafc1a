import sys

from coinbt.cli import main

sys.exit(main())
