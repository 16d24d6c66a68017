import sys

from sfumato.core.cli import main

sys.exit(main())
