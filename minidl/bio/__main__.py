"""``python -m minidl.bio``: the ``minidl-bio`` command line."""

import sys

from minidl.bio.cli import main

sys.exit(main())
