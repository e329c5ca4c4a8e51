import sys

from amia.cli import main

sys.exit(main())
