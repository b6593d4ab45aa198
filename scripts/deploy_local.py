#!/usr/bin/env python
"""The ``fedtna-deploy`` console script from a checkout: ``python scripts/deploy_local.py --help``."""
from fedtna.deploy.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
