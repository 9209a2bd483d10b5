"""Entry point of the one-file binary (PyInstaller): the same ``goapp`` command as the
console script installed by pip."""

from goapp.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
