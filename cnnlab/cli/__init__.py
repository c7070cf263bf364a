"""The command line: :mod:`.main` dispatches ``cnnlab <command>`` to one module per sub-command.

Each module only parses arguments and calls the library; nothing outside this package imports it.
"""
