"""`python -m spacechat_plugin.cards --schema` writes the published card schema."""

import sys

from .validate import main

sys.exit(main())
