import sys

from feature_assets.cli import main

sys.exit(main())
