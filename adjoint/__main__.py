import sys

from adjoint.cli import main

sys.exit(main())
