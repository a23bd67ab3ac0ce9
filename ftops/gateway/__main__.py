"""``python -m ftops.gateway [--host H] [--port P] [--workers N]``"""

import argparse
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ftops.settings")
django.setup()

from ftops.gateway.server import serve  # noqa: E402

parser = argparse.ArgumentParser(prog="python -m ftops.gateway", description="ftops' OpenAI-compatible gateway")
parser.add_argument("--host")
parser.add_argument("--port", type=int)
parser.add_argument("--workers", type=int)
parser.add_argument("--log-level", default="warning")
args = parser.parse_args()
serve(host=args.host, port=args.port, workers=args.workers, log_level=args.log_level)
