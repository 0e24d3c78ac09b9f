"""Allow `python -m reasoncli`."""

from reasoncli.cli.app import main

if __name__ == "__main__":
    main()
