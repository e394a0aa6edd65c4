"""`python -m cli ...` is `worldsim ...` (what torchrun launches: `torchrun ... -m cli train ...`)."""

import sys

from cli import main

sys.exit(main())
