"""python3 -m pgp: the pgp command (pgp/cli.py)."""
import sys

from .cli import main

sys.exit(main())
