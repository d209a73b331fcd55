"""`python -m ml07lab ...` is the `ml07lab` console script."""
import sys

from ml07lab.cli import main

if __name__ == "__main__":
    sys.exit(main())
