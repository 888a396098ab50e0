"""Regenerate the command table of `mreg` (modelreg.cli._index.SUMMARY) from the real app.

    python docs/gen_cli_index.py && ruff format src/modelreg/cli/_index.py

Run it after adding a command or changing the first paragraph of a command's help;
tests/test_quality.py fails until the table matches the app.
"""

from modelreg.cli._index_gen import write_summary

if __name__ == "__main__":
    print(write_summary())
