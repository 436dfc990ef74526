import sys

from sreval.cli import main

sys.exit(main())
