"""`python -m modelreg` runs the mreg command line."""

from modelreg.cli import main

if __name__ == "__main__":
    main()
