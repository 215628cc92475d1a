import sys

from lymphonet.cli import main

sys.exit(main())
