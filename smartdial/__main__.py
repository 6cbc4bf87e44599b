import sys

from smartdial.cli import main

sys.exit(main())
