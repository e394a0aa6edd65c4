"""`python -m worldsim.cli ...` is `worldsim ...` (what torchrun launches: `torchrun ... -m worldsim.cli train ...`)."""

import sys

from worldsim.cli import main

sys.exit(main())
