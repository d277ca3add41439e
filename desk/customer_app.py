"""`desk customer`: the demo bank-customer chat client.

    python -m desk.customer_app --url ws://127.0.0.1:8765/ --name 张阿姨 --flags elderly

The code lives in the ``desk.customer`` package; this module is its stable
entry point: ``make_customer_app``, ``add_arguments`` and ``run``.
"""

from __future__ import annotations

import sys

from desk.customer import CustomerApp, add_arguments, main, make_customer_app, run

__all__ = ["CustomerApp", "add_arguments", "make_customer_app", "run"]

if __name__ == "__main__":
    sys.exit(main())
