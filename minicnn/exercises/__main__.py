"""``python -m minicnn.exercises new NAME --out FILE`` / ``check FILE`` (same as ``minicnn exercise``)."""
import sys

from minicnn.exercises import main

sys.exit(main())
