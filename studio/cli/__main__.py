"""`python -m studio.cli`: the same as the `seed-studio` script."""

from studio.cli import main

if __name__ == "__main__":
    main()
